"""Outside images into model inputs: uploaded files, drawings and other data sets, as (N, C, H, W) in [0, 1].

Every refusal is a ValueError whose message is one sentence a person can act on.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

MAX_BYTES = 20 * 2**20  # the same as Streamlit's maxUploadSize in .streamlit/config.toml
MAX_PIXELS = 25_000_000  # checked from the header, before any pixel is decoded (a decompression bomb stops here)
WORK_SIDE = 512  # images are shrunk to at most this side before any float maths, so memory stays small
# Only plain raster formats: Pillow's EPS plugin would run Ghostscript on a user's file. (A phone's MPO opens as JPEG.)
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM", "ICO")
FORMAT_NAMES = "PNG, JPEG, GIF, BMP, WebP, TIFF or PPM"
CONTENT_THRESHOLD = 0.25  # a pixel this far from the background colour counts as content (ink)
Image.init()  # register every plugin now: Image.open(formats=...) looks the names up without doing it


@dataclass(frozen=True)
class FrameStyle:
    """How a data set's images sit in their frame: background brightness and the share of the frame content fills."""

    background: float = 0.0
    fill: float = 1.0


@dataclass
class Prepared:
    """A model input made from an outside image, with what was done to it, in words."""

    tensor: torch.Tensor  # (1, C, H, W) float32 in [0, 1]
    notes: list[str] = field(default_factory=list)
    picture: np.ndarray | None = None  # the source as (h, w, 3) uint8, at most WORK_SIDE, for a preview

    @property
    def description(self) -> str:
        """Return the notes as one sentence."""
        text = "; ".join(self.notes)
        return text[:1].upper() + text[1:] + "." if text else ""


def frame_style(images: torch.Tensor, sample: int = 500) -> FrameStyle:
    """Return the typical background brightness and content size (fraction of the side) of a data set's images."""
    x = images[:sample].mean(1)  # (N, H, W), channels averaged
    border = torch.cat([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], dim=1)
    background = float(border.median())
    ink = (x - background).abs() > CONTENT_THRESHOLD
    h, w = x.shape[1:]
    rows, cols = ink.any(2), ink.any(1)
    has = rows.any(1)
    if not has.any():
        return FrameStyle(background, 1.0)
    fill = torch.maximum(_span(rows[has]) / h, _span(cols[has]) / w)
    return FrameStyle(round(background, 3), float(fill.median()))


def _span(mask: torch.Tensor) -> torch.Tensor:
    """Return, per row of a (N, L) mask, the distance from its first True to its last True, inclusive."""
    m = mask.float()
    return mask.shape[1] - m.argmax(1) - m.flip(1).argmax(1)


def _open(data: bytes) -> tuple[Image.Image, list[str]]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError("The upload is not a file's bytes.")
    if len(data) == 0:
        raise ValueError("The file is empty.")
    if len(data) > MAX_BYTES:
        raise ValueError(f"The file is larger than {MAX_BYTES // 2**20} MB; please upload a smaller image.")
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:
        raise ValueError(f"The image is too large to open safely (over {MAX_PIXELS / 1e6:.0f} megapixels).") from None
    except Exception:
        raise ValueError(f"This file is not an image that can be read ({FORMAT_NAMES}).") from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ValueError(f"The image is {w:,}×{h:,} pixels, more than the {MAX_PIXELS / 1e6:.0f} megapixels allowed; "
                         "please upload a smaller image.")
    notes = [f"read a {w}×{h} {img.format} image"]
    try:
        frames = getattr(img, "n_frames", 1)  # counting frames reads the file: a damaged one can fail here
    except Exception:
        raise ValueError("The image file is damaged or truncated, so its pixels cannot be read.") from None
    if frames > 1:
        notes.append(f"used the first of its {frames} frames")
    return img, notes


def _upright(img: Image.Image, notes: list[str]) -> Image.Image:
    """Return the image turned as its EXIF orientation says: phones store photos sideways and tag them."""
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # unreadable EXIF: keep the pixels as stored
        return img
    if orientation in (1, None) or not isinstance(orientation, int):
        return img
    notes.append("turned it upright, as its camera tag says")
    return ImageOps.exif_transpose(img)


def _pixels(img: Image.Image, notes: list[str]) -> np.ndarray:
    """Return the first frame as (h, w, 4) float32 RGBA in [0, 1], upright, shrunk to at most WORK_SIDE."""
    img.seek(0)
    img.draft(None, (WORK_SIDE, WORK_SIDE))  # JPEG: decode at a reduced scale, far less memory and time
    img = _upright(img, notes)
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit and float images: Pillow's 8-bit conversion would clip them, so scale by their own range
        gray = img.convert("F")
        gray.thumbnail((WORK_SIDE, WORK_SIDE))
        a = np.asarray(gray, dtype=np.float32)
        top = float(a.max()) if a.size else 0.0
        a = np.clip(a / (65535.0 if top > 255 else 255.0 if top > 1 else 1.0), 0, 1)
        return np.dstack([a, a, a, np.ones_like(a)])
    rgba = img.convert("RGBA")  # palette (with its transparency), 1-bit, CMYK, LA, RGB all land here
    rgba.thumbnail((WORK_SIDE, WORK_SIDE))
    return np.asarray(rgba, dtype=np.float32) / 255.0


def decode(data: bytes) -> tuple[np.ndarray, list[str]]:
    """Return an image file's first frame as (h, w, 4) RGBA float32 in [0, 1] and notes; ValueError if unreadable."""
    img, notes = _open(data)
    try:
        pixels = _pixels(img, notes)
    except MemoryError:
        raise ValueError("The image is too large to decode; please upload a smaller image.") from None
    except Exception:
        # a malformed file can make Pillow raise almost any exception type; they all mean the same to a person
        raise ValueError("The image file is damaged or truncated, so its pixels cannot be read.") from None
    if pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise ValueError("The image has no pixels.")
    return pixels, notes


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _composite(rgba: np.ndarray, notes: list[str], on: float | None = None) -> np.ndarray:
    """Return RGB with transparency flattened onto black or white, whichever the visible content stands out on."""
    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    if alpha.min() >= 0.999:
        return rgb
    if on is None:
        weight = float(alpha.sum())
        content = float((_luminance(rgb) * alpha[..., 0]).sum() / weight) if weight > 0 else 1.0
        on = 1.0 if content < 0.5 else 0.0
        notes.append(f"put its transparent parts on {'white' if on else 'black'} so its "
                     f"{'dark' if on else 'light'} content shows")
    return rgb * alpha + on * (1 - alpha)


def _channels(rgb: np.ndarray, c: int, notes: list[str]) -> np.ndarray:
    """Return (c, h, w): grey for one channel (or any count but three), colour for three."""
    if c == 3:
        return rgb.transpose(2, 0, 1)
    if np.ptp(rgb, axis=2).max() > 1e-3:
        notes.append("converted it to grey")
    return np.repeat(_luminance(rgb)[None], c, axis=0)


def _border(x: np.ndarray) -> np.ndarray:
    """Return the median colour of the outer frame (5% of each side, at least one pixel), per channel."""
    c, h, w = x.shape
    bh, bw = max(1, h // 20), max(1, w // 20)
    frame = np.concatenate([x[:, :bh].reshape(c, -1), x[:, -bh:].reshape(c, -1),
                            x[:, :, :bw].reshape(c, -1), x[:, :, -bw:].reshape(c, -1)], axis=1)
    return np.median(frame, axis=1)


def _content_box(x: np.ndarray, background: np.ndarray) -> tuple[slice, slice] | None:
    ink = (np.abs(x - background[:, None, None]) > CONTENT_THRESHOLD).any(0)
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if rows.size == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _place(x: np.ndarray, shape, fill: float, pad_value: np.ndarray) -> torch.Tensor:
    """Return x scaled (aspect kept) so its longer side spans `fill` of the frame, centred on pad_value."""
    c, h, w = shape
    src = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    scale = min(h * fill / src.shape[2], w * fill / src.shape[3])
    nh, nw = max(1, min(h, round(src.shape[2] * scale))), max(1, min(w, round(src.shape[3] * scale)))
    small = F.interpolate(src, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    out = torch.tensor(pad_value, dtype=torch.float32).view(1, c, 1, 1).repeat(1, 1, h, w)
    top, left = (h - nh) // 2, (w - nw) // 2
    out[:, :, top:top + nh, left:left + nw] = small
    return out.clamp_(0, 1).contiguous()


def _restretch(t: torch.Tensor, background: float) -> torch.Tensor:
    """Return t with its strongest pixel back at full contrast: shrinking thin strokes averages them down."""
    ink = float(t.max()) if background < 0.5 else float(t.min())
    target = 1.0 if background < 0.5 else 0.0
    if abs(ink - background) < 1e-3:
        return t
    return (background + (t - background) / (ink - background) * (target - background)).clamp_(0, 1)


def prepare(rgba: np.ndarray, shape, invert: str | bool = "auto", fit: str = "content",
            style: FrameStyle = FrameStyle(), notes: list[str] | None = None) -> Prepared:
    """Return a (1, C, H, W) model input from RGBA pixels: flattened, grey or colour, inverted as needed, fitted.

    invert: "auto" inverts a one-channel image whose border brightness is the opposite of the data set's
    background (digits are light on dark, so dark ink on white paper is inverted); True or False force it.
    fit: "content" crops to what differs from the border, stretches its contrast and scales it to the share of the
    frame the data set's content fills (style.fill); "whole" keeps the whole picture, letterboxed.
    """
    if fit not in ("content", "whole"):
        raise ValueError(f"fit must be 'content' or 'whole', got {fit!r}.")
    if invert not in ("auto", True, False):
        raise ValueError(f"invert must be 'auto', True or False, got {invert!r}.")
    c, h, w = shape
    notes = list(notes or [])
    rgb = _composite(np.asarray(rgba, dtype=np.float32), notes)
    picture = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    x = _channels(rgb, c, notes)
    border = _border(x)
    light_border = float(border.mean()) > 0.5
    if invert == "auto":
        invert = c == 1 and light_border != (style.background > 0.5)
        if invert:
            notes.append(f"inverted it, because its border is {'light' if light_border else 'dark'} and the "
                         f"model's images are {'light' if light_border else 'dark'} shapes on "
                         f"{'dark' if light_border else 'light'}")
    elif invert:
        notes.append("inverted it, as asked")
    if invert:
        x, border = 1.0 - x, 1.0 - border
    fill, box = 1.0, None
    if fit == "content":
        box = _content_box(x, border)
        if box is None:
            notes.append("found nothing but background to crop to, so kept the whole picture")
        else:
            x = x[:, box[0], box[1]]
            fill = style.fill
            notes.append("cropped it to its content")
            if c == 1:  # background to the data set's background, the strongest stroke to full contrast
                lo, back = float(border[0]), style.background
                ink, ink_target = (float(x.max()), 1.0) if back < 0.5 else (float(x.min()), 0.0)
                if abs(ink - lo) > 1e-3:
                    x = back + (x - lo) / (ink - lo) * (ink_target - back)
                border = np.array([back], dtype=np.float32)
                notes.append("stretched its contrast")
    tensor = _place(np.clip(x, 0, 1), shape, fill, np.clip(border, 0, 1))
    if fit == "content" and c == 1 and box is not None:
        tensor = _restretch(tensor, style.background)
    notes.append(f"scaled it to {h}×{w}" + (f" ({c} channels)" if c > 1 else "") + ", centred, keeping its shape")
    return Prepared(tensor, notes, picture)


def image_to_tensor(data: bytes, shape, invert: str | bool = "auto", fit: str = "content",
                    style: FrameStyle = FrameStyle()) -> Prepared:
    """Return an uploaded image file as a model input of `shape` (C, H, W); ValueError with a reason if refused."""
    rgba, notes = decode(data)
    return prepare(rgba, shape, invert=invert, fit=fit, style=style, notes=notes)


def canvas_to_tensor(rgba: np.ndarray, shape, style: FrameStyle = FrameStyle()) -> Prepared:
    """Return a drawing (H, W, 4) uint8 RGBA, light strokes on a dark or transparent canvas, as a model input."""
    a = np.asarray(rgba)
    if a.ndim != 3 or a.shape[2] != 4 or a.size == 0:
        raise ValueError("The drawing should be an RGBA picture.")
    a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
    rgb = _composite(a, [], on=0.0)  # a canvas is drawn light on dark: its empty parts are black
    if rgb.max() - rgb.min() < CONTENT_THRESHOLD:
        raise ValueError("The canvas is empty: draw something on it first.")
    opaque = np.dstack([rgb, np.ones(rgb.shape[:2], dtype=np.float32)])
    return prepare(opaque, shape, invert=False, fit="content", style=style, notes=["your drawing"])


def _as_rgba(img: np.ndarray) -> np.ndarray:
    """Return one (C, H, W) image as opaque (H, W, 4) RGBA: three channels as colour, any other count as grey."""
    rgb = img.transpose(1, 2, 0) if img.shape[0] == 3 else np.repeat(img.mean(0)[..., None], 3, axis=2)
    return np.dstack([rgb, np.ones(img.shape[1:], dtype=np.float32)])


def resize_batch(images: torch.Tensor, shape, style: FrameStyle | None = None) -> torch.Tensor:
    """Return images (N, C, H, W) fitted to another shape (C, H, W), channels adapted and aspect kept.

    With a style, each image is framed like the target data set's: cropped to its content, scaled to the share of
    the frame that content fills there, centred (so sprites become digit-sized shapes, not specks). Without one,
    each whole image is scaled and centred on black.
    """
    c, h, w = shape
    x = images
    if x.shape[1] != c:
        grey = x[:, :3].mul(torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True) \
            if x.shape[1] == 3 else x.mean(1, keepdim=True)
        x = grey.repeat(1, c, 1, 1)
    if style is not None:
        if len(x) == 0:
            return x.new_zeros((0, c, h, w))
        return torch.cat([prepare(_as_rgba(img), shape, invert="auto", fit="content", style=style).tensor
                          for img in x.numpy()])
    if tuple(x.shape[2:]) == (h, w):
        return x.contiguous()
    scale = min(h / x.shape[2], w / x.shape[3])
    nh, nw = max(1, min(h, round(x.shape[2] * scale))), max(1, min(w, round(x.shape[3] * scale)))
    small = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    out = torch.zeros((len(x), c, h, w), dtype=torch.float32)
    top, left = (h - nh) // 2, (w - nw) // 2
    out[:, :, top:top + nh, left:left + nw] = small
    return out.clamp_(0, 1).contiguous()
