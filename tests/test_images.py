import io
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

import aecore as ae
from aecore.images import (MAX_PIXELS, FrameStyle, canvas_to_tensor, decode, frame_style, image_to_tensor,
                           resize_batch)
from aecore.metrics import fingerprint, noise_sweep, percentile_of
from aecore.noise import gaussian_filter, median_filter

SHAPES = [(1, 8, 8), (1, 28, 28), (1, 32, 32), (3, 32, 32)]


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def ink_on_paper(size=(300, 200), mode="L", ink=20, paper=255) -> Image.Image:
    """A dark digit-like stroke (a 7) on light paper, like a photo of handwriting."""
    img = Image.new(mode, size, paper if mode == "L" else (paper,) * len(mode))
    w, h = size
    fill = ink if mode == "L" else (ink,) * len(mode)
    ImageDraw.Draw(img).line([(w * 0.4, h * 0.2), (w * 0.6, h * 0.2), (w * 0.47, h * 0.85)], fill=fill,
                             width=max(2, h // 14))
    return img


def check(prepared, shape):
    t = prepared.tensor
    assert t.shape == (1, *shape) and t.dtype == torch.float32
    assert float(t.min()) >= 0 and float(t.max()) <= 1
    assert prepared.description.endswith(".")


# ---- formats and modes: each converts to the model's shape, range and dtype

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fmt,mode,size", [
    ("PNG", "L", (300, 200)), ("PNG", "RGB", (17, 45)), ("JPEG", "RGB", (640, 480)), ("JPEG", "L", (9, 9)),
    ("BMP", "RGB", (120, 121)), ("TIFF", "RGB", (64, 32)), ("WEBP", "RGB", (200, 300)), ("PNG", "1", (80, 60)),
    ("PPM", "RGB", (40, 40)), ("PNG", "L", (2, 3)), ("PNG", "RGB", (1500, 90)),
])
def test_every_common_format_converts(fmt, mode, size, shape):
    data = encode(ink_on_paper(size, mode="RGB" if mode == "RGB" else "L").convert(mode), fmt)
    check(image_to_tensor(data, shape), shape)


def test_a_photo_of_dark_ink_on_paper_becomes_a_light_digit_on_black():
    p = image_to_tensor(encode(ink_on_paper(), "JPEG"), (1, 8, 8))
    x = p.tensor[0, 0]
    assert "inverted" in p.description and "cropped" in p.description
    assert x.max() == 1.0  # the strongest stroke at full contrast, as in the digits data
    assert x[:, 0].max() < 0.2 and x[:, -1].max() < 0.2  # a 7 is narrower than tall: dark margins left and right
    assert x[0].mean() > 0.4  # the bar of the 7 along the top row
    assert x[-1].max() > 0.5  # and its foot reaches the bottom: the digit spans the frame, like the data's


def test_a_real_digit_photographed_comes_back_as_itself(digits):
    """A digit of the data set, blown up to a 'photo' (dark on light, wide margins), converts back close to itself.

    Up to a one-pixel shift: a stroke 5 pixels wide has no exact centre in 8, and the data's digits are not centred.
    """
    for i in range(20):
        original = digits.images[i, 0]
        big = Image.fromarray(((1 - original.numpy()) * 255).astype(np.uint8)).resize((160, 160), Image.NEAREST)
        paper = Image.new("L", (400, 300), 255)
        paper.paste(big, (130, 70))
        x = image_to_tensor(encode(paper), (1, 8, 8), style=frame_style(digits.images)).tensor[0, 0]
        best = max(np.corrcoef(x.roll(shift, 1).flatten(), original.flatten())[0, 1] for shift in (-1, 0, 1))
        assert best > 0.9, i


def test_animated_gif_uses_its_first_frame():
    first = Image.new("L", (40, 40), 0)
    ImageDraw.Draw(first).rectangle([10, 10, 30, 30], fill=255)
    frames = [first, Image.new("L", (40, 40), 0), Image.new("L", (40, 40), 128)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    p = image_to_tensor(buf.getvalue(), (1, 32, 32), fit="whole")
    assert "first of its 3 frames" in p.description
    x = p.tensor[0, 0]
    assert x[16, 16] > 0.9 and x[1, 1] < 0.1  # the square of the first frame, not the blank second one


def test_sixteen_bit_keeps_its_range():
    gradient = np.tile(np.linspace(0, 65535, 64), (64, 1)).astype(np.uint16)
    img = Image.fromarray(gradient)
    assert img.mode == "I;16"
    p = image_to_tensor(encode(img), (1, 8, 8), invert=False, fit="whole")
    row = p.tensor[0, 0, 4]
    assert row[0] < 0.1 and row[-1] > 0.9 and 0.3 < float(row.mean()) < 0.7  # scaled by 65535, not clipped at 255
    mid = image_to_tensor(encode(Image.fromarray(np.full((20, 20), 32768, np.uint16))), (1, 8, 8), invert=False,
                          fit="whole").tensor
    assert torch.allclose(mid, torch.full_like(mid, 0.5), atol=0.01)


def test_palette_with_transparency_and_cmyk():
    pal = Image.new("P", (50, 50), 0)
    pal.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    ImageDraw.Draw(pal).ellipse([10, 10, 40, 40], fill=1)
    check(image_to_tensor(encode(pal, transparency=0), (1, 8, 8)), (1, 8, 8))
    p = image_to_tensor(encode(pal), (1, 28, 28))  # black ellipse on white, opaque
    assert "inverted" in p.description
    cmyk = Image.new("CMYK", (40, 30), (0, 0, 0, 0))  # no ink at all: white
    t = image_to_tensor(encode(cmyk, "JPEG"), (3, 32, 32), invert=False, fit="whole").tensor
    assert t.min() > 0.95
    t = image_to_tensor(encode(Image.new("CMYK", (40, 30), (0, 0, 0, 255)), "TIFF"), (1, 8, 8), invert=False,
                        fit="whole").tensor
    assert t.max() < 0.05  # full black ink


def test_rgba_is_put_on_the_background_its_content_stands_out_on():
    dark = Image.new("RGBA", (60, 90), (0, 0, 0, 0))
    ImageDraw.Draw(dark).line([(30, 10), (30, 80)], fill=(0, 0, 0, 255), width=8)
    p = image_to_tensor(encode(dark), (1, 8, 8))
    assert "on white" in p.description and "inverted" in p.description
    bar = p.tensor[0, 0, :, 3:5].max(1).values
    assert (bar > 0.6).all() and p.tensor[0, 0, :, 0].max() < 0.1  # a light upright bar on black
    light = Image.new("RGBA", (60, 90), (0, 0, 0, 0))
    ImageDraw.Draw(light).line([(30, 10), (30, 80)], fill=(255, 255, 255, 255), width=8)
    p = image_to_tensor(encode(light), (1, 8, 8))
    assert "on black" in p.description and "inverted" not in p.description
    assert (p.tensor[0, 0, :, 3:5].max(1).values > 0.6).all()


def test_invert_and_fit_can_be_forced():
    data = encode(ink_on_paper())
    auto = image_to_tensor(data, (1, 8, 8), fit="whole").tensor
    never = image_to_tensor(data, (1, 8, 8), invert=False, fit="whole").tensor
    assert torch.allclose(auto, 1 - never, atol=1e-5)
    whole = image_to_tensor(data, (1, 28, 28), fit="whole").tensor[0, 0]
    assert whole[:4].max() < 0.05  # a 3:2 picture letterboxed in a square leaves empty rows
    with pytest.raises(ValueError):
        image_to_tensor(data, (1, 8, 8), fit="stretch")
    with pytest.raises(ValueError):
        image_to_tensor(data, (1, 8, 8), invert="sometimes")


def test_a_sideways_phone_photo_is_turned_upright():
    img = ink_on_paper((300, 200))  # a 7, upright
    sideways = img.transpose(Image.Transpose.ROTATE_90)  # stored on its side, as a phone does
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    p = image_to_tensor(encode(sideways, "JPEG", exif=exif.tobytes()), (1, 8, 8))
    assert "upright" in p.description
    assert torch.allclose(p.tensor, image_to_tensor(encode(img, "JPEG"), (1, 8, 8)).tensor, atol=0.15)


def test_colour_models_keep_colour():
    img = Image.new("RGB", (30, 30), (200, 30, 30))
    t = image_to_tensor(encode(img), (3, 32, 32), fit="whole").tensor
    assert t[0, 0].mean() > 0.7 and t[0, 1].mean() < 0.2  # red stays red; colour pictures are never inverted


# ---- drawings from the canvas

def canvas_with(draw) -> np.ndarray:
    img = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    draw(ImageDraw.Draw(img))
    return np.asarray(img)


def test_a_drawn_one_becomes_a_sensible_8x8_and_28x28_digit():
    rgba = canvas_with(lambda d: d.line([(140, 40), (140, 240)], fill=(255, 255, 255, 255), width=24))
    x = canvas_to_tensor(rgba, (1, 8, 8)).tensor[0, 0]
    assert x.max() == 1.0 and (x.max(1).values > 0.5).all()  # the stroke spans every row, like the data's digits
    assert x[:, :2].max() < 0.05 and x[:, -2:].max() < 0.05  # and sits in the middle columns
    mnist_like = FrameStyle(background=0.0, fill=20 / 28)  # MNIST: a 20-pixel box centred in 28
    y = canvas_to_tensor(rgba, (1, 28, 28), mnist_like).tensor[0, 0]
    rows = torch.nonzero(y.max(1).values > 0.3).flatten()
    assert 3 <= int(rows[0]) <= 5 and 22 <= int(rows[-1]) <= 24
    assert abs(float((y.sum(0) * torch.arange(28)).sum() / y.sum()) - 13.5) < 1  # centred


def test_an_opaque_black_canvas_works_and_an_empty_one_is_refused():
    rgba = canvas_with(lambda d: d.rectangle([0, 0, 279, 279], fill=(0, 0, 0, 255)))
    with pytest.raises(ValueError, match="empty"):
        canvas_to_tensor(rgba, (1, 8, 8))
    with pytest.raises(ValueError, match="empty"):
        canvas_to_tensor(np.zeros((280, 280, 4), np.uint8), (1, 8, 8))
    rgba = canvas_with(lambda d: (d.rectangle([0, 0, 279, 279], fill=(0, 0, 0, 255)),
                                  d.ellipse([60, 60, 200, 220], outline=(255, 255, 255, 255), width=20)))
    check(canvas_to_tensor(rgba, (1, 8, 8)), (1, 8, 8))
    with pytest.raises(ValueError):
        canvas_to_tensor(np.zeros((280, 280), np.uint8), (1, 8, 8))


# ---- refusals: each a ValueError with a reason

def huge_png_header(width=20_000, height=20_000) -> bytes:
    """A valid PNG signature and IHDR claiming a huge size, with one tiny IDAT: a few dozen bytes."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"hello, I am a text file named digit.png\n", "not an image"),
    (encode(ink_on_paper())[:200], "damaged or truncated"),
    (huge_png_header(), "megapixels"),
    (huge_png_header(6000, 6000), "megapixels"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),  # EPS would run Ghostscript
])
def test_bad_files_are_refused_with_a_reason(data, reason):
    with pytest.raises(ValueError, match=reason) as e:
        image_to_tensor(data, (1, 8, 8))
    message = str(e.value)
    assert message.endswith(".") and "\n" not in message and len(message) < 200


def test_the_size_limits():
    assert 20_000 * 20_000 > MAX_PIXELS >= 4000 * 3000  # a phone photo passes, a bomb does not
    with pytest.raises(ValueError, match="MB"):
        image_to_tensor(b"\0" * (21 * 2**20), (1, 8, 8))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_raise_nothing_but_value_error(data):
    try:
        check(image_to_tensor(data, (1, 8, 8)), (1, 8, 8))
    except ValueError as e:
        assert str(e)


VALID = [encode(ink_on_paper((60, 40)), fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")]


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the corrupt EXIF and TIFF tags we make
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
       st.integers(8, 10_000))
def test_damaged_images_raise_nothing_but_value_error(data, flips, keep):
    """Valid files with bytes changed and their end cut: the decoder's odd corners, not just random noise."""
    damaged = bytearray(data[:keep])
    for pos, value in flips:
        if pos < len(damaged):
            damaged[pos] = value
    try:
        check(image_to_tensor(bytes(damaged), (1, 28, 28)), (1, 28, 28))
    except ValueError as e:
        assert str(e)


def test_decode_gives_rgba_in_range_and_shrinks_large_images():
    pixels, notes = decode(encode(ink_on_paper((1200, 900))))
    assert pixels.shape == (384, 512, 4) and pixels.dtype == np.float32  # shrunk before any float maths
    assert 0 <= pixels.min() and pixels.max() <= 1 and "1200×900" in notes[0]


# ---- data sets into another model's shape, and their framing

def test_frame_style_of_the_embedded_sets(digits):
    d = frame_style(digits.images)
    s = frame_style(ae.load_dataset("sprites", n=500).images)
    assert d.background == 0 and d.fill > 0.9  # digits fill their 8×8 frame
    assert s.background == 0 and 0.2 < s.fill < 0.6  # sprites are small shapes in 32×32


def test_resize_batch_between_data_sets(digits):
    sprites = ae.load_dataset("sprites", n=64)
    small = resize_batch(sprites.images, (1, 8, 8), frame_style(digits.images))
    assert small.shape == (64, 1, 8, 8) and small.dtype == torch.float32
    assert (small.flatten(1).max(1).values > 0.9).all()  # each shape framed to fill the digit frame, not a speck
    plain = resize_batch(sprites.images, (1, 8, 8))
    assert plain.shape == (64, 1, 8, 8) and plain.mean() < small.mean()
    big = resize_batch(digits.images[:10], (1, 32, 32), frame_style(sprites.images))
    assert big.shape == (10, 1, 32, 32) and big[:, :, :4].max() < 0.05  # digit-sized shapes centred in 32×32
    colour = resize_batch(digits.images[:3], (3, 32, 32))
    assert colour.shape == (3, 3, 32, 32) and torch.equal(colour[:, 0], colour[:, 1])
    grey = resize_batch(torch.rand(2, 3, 16, 16), (1, 8, 8))
    assert grey.shape == (2, 1, 8, 8) and 0 <= grey.min() and grey.max() <= 1
    assert resize_batch(digits.images[:0], (1, 8, 8), frame_style(digits.images)).shape == (0, 1, 8, 8)


# ---- classical baselines, noise sweeps and the small metric helpers the pages use

def test_classical_filters_remove_noise_they_suit():
    clean = ae.load_dataset("sprites", n=100).images
    g = torch.Generator().manual_seed(0)
    speckled = ae.add_noise(clean, "salt-pepper", 0.1, g)
    fuzzy = ae.add_noise(clean, "gaussian", 0.3, torch.Generator().manual_seed(0))
    for f, noisy in ((median_filter, speckled), (gaussian_filter, fuzzy)):
        out = f(noisy)
        assert out.shape == noisy.shape and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
        assert ae.psnr(clean, out).mean() > ae.psnr(clean, noisy).mean() + 3
    assert torch.equal(median_filter(clean), median_filter(clean.clone()))


def test_noise_sweep_measures_each_denoiser_on_the_same_noise(digits):
    clean = digits.images[:60]
    levels = [0.1, 0.3, 0.6]
    r = noise_sweep(clean, "gaussian", levels, {"median": median_filter, "identity": lambda x: x})
    assert set(r) == {"psnr", "ssim"} and list(r["psnr"]) == ["noisy input", "median", "identity"]
    assert all(len(v) == 3 for m in r.values() for v in m.values())
    assert r["psnr"]["identity"] == r["psnr"]["noisy input"]  # the same noisy images for every denoiser
    assert r["psnr"]["noisy input"][0] > r["psnr"]["noisy input"][1] > r["psnr"]["noisy input"][2]
    assert r == noise_sweep(clean, "gaussian", levels, {"median": median_filter, "identity": lambda x: x})
    alone = noise_sweep(clean, "gaussian", [0.3], {"median": median_filter})  # a level measures alike in any sweep
    assert alone["psnr"]["median"] == r["psnr"]["median"][1:2] and alone["ssim"]["median"] == r["ssim"]["median"][1:2]


def test_percentile_and_fingerprint():
    values = torch.arange(100, dtype=torch.float32)
    assert percentile_of(values, 50.0) == 50.0 and percentile_of(values, 1000.0) == 100.0
    assert percentile_of(values[:0], 1.0) == 0.0
    spec = ae.preset("conv", (1, 8, 8))[0]
    a, b = ae.build_model(spec, seed=0), ae.build_model(spec, seed=0)
    assert fingerprint(a) == fingerprint(b) and len(fingerprint(a)) == 16
    with torch.no_grad():
        b.head.bias[0] += 1e-3
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a) != fingerprint(ae.build_model(spec, seed=1))
