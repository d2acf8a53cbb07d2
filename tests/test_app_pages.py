"""AppTest of the Reconstruct and Denoise pages with real tiny models trained on digits and sprites."""
import io
import json
import re

import pytest
import torch
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

import aecore as ae
import app_pages.common
from conftest import app_page

RECONSTRUCT, DENOISE = "app_pages/reconstruct.py", "app_pages/denoise.py"


def _job(name, dataset, preset, epochs, n=None, **train):
    ds = ae.load_dataset(dataset)
    ds = ds.subset(slice(0, n)) if n else ds
    train_set, val = ds.split(0.9, seed=0)
    model_spec, train_spec = ae.preset(preset, ds.shape, model={"code_size": 8},
                                       train={"epochs": epochs, "batch_size": 64, **train})
    return ae.jobs.TrainingJob(name, dataset, train_set, val, model_spec, train_spec).start()


@pytest.fixture(scope="module")
def runs():
    # dense models: on two CPU cores they learn these sets in seconds, where conv ones take many times longer
    jobs = [_job("tiny-digits", "digits", "deep", 15, lr=3e-3),
            _job("tiny-digits-denoising", "digits", "deep", 15, lr=3e-3, noise="gaussian", noise_level=0.3),
            _job("tiny-sprites", "sprites", "deep", 5, n=3000, lr=3e-3)]
    for job in jobs:
        job.join()
        assert job.status == "done", job.error
    return {job.name: job for job in jobs}


@pytest.fixture
def no_pretrained(tmp_path, monkeypatch):
    """An empty pretrained/ folder: the sidebar offers this session's runs only."""
    monkeypatch.setattr(app_pages.common, "PRETRAINED", tmp_path)
    app_pages.common.pretrained_cards.clear()
    yield
    app_pages.common.pretrained_cards.clear()


def _page(runs, page, model="tiny-digits", dataset="digits") -> AppTest:
    return app_page(runs, page, model, dataset)


def _metric(at, label) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _numbers(at) -> dict[str, dict[str, str]]:
    """Return the Denoise page's table of numbers at the slider's level: {series: {psnr, psnr change, ssim, ssim
    change: cell}}."""
    text = next(m.value for m in at.markdown if "| PSNR |" in m.value)
    head, _, *rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]
    assert head[1:] == ["PSNR", "change", "SSIM", "change"], head
    return {row[0].strip("*"): dict(zip(("psnr", "psnr change", "ssim", "ssim change"), row[1:])) for row in rows}


def _psnr(at, series) -> str:
    return _numbers(at)[series]["psnr"]


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _html_pictures(at) -> list[str]:
    """Return the page's HTML elements that show pictures (not the layout styles of its wrapping columns)."""
    return [h.proto.body for h in at.get("html") if "<img " in h.proto.body]


@pytest.mark.parametrize("dataset,model", [("digits", "tiny-digits"), ("sprites", "tiny-sprites")])
def test_reconstruct_renders_with_its_widgets(runs, dataset, model):
    at = _page(runs, RECONSTRUCT, model, dataset)
    assert at.title[0].value == "Reconstruct"
    assert not at.error
    for label in ("Mean MSE", "Mean PSNR", "Mean SSIM"):
        assert _metric(at, label)
    assert _metric(at, "Images scored") == ("1,797" if dataset == "digits" else "2,000")
    assert at.button_group(key="rec_order") and at.selectbox(key=f"rec_class@{dataset}")
    assert at.number_input(key="rec_index") and at.file_uploader(key="rec_upload")
    tabs = {t.label for t in at.tabs}
    assert {"Grid", "One image", "Your own image", "Data it has never seen", "Upload a picture"} <= tabs
    assert ("Draw one" in tabs) == (dataset in ("digits", "sprites"))  # one-channel data: a canvas too
    grid, never_seen = _html_pictures(at)
    assert grid.count("<img ") == 16 and grid.count("<figcaption") == 16
    assert re.search(r">#0( · [^<]+)?<br>\d+\.\d dB</figcaption>", grid)  # number, class and PSNR under each
    assert never_seen.count("<img ") == 8 and len(re.findall(r">\d+\.\d dB</figcaption>", never_seen)) == 8
    assert len(at.image) >= 3  # the large image, its reconstruction and error


def test_worst_first_reorders_the_grid(runs):
    at = _page(runs, RECONSTRUCT)
    in_order = at.dataframe[0].value
    assert list(in_order["image"]) == list(range(16))
    at.button_group(key="rec_order").set_value("worst first").run()
    assert not at.exception
    worst = at.dataframe[0].value
    assert list(worst["image"]) != list(range(16))
    assert list(worst["PSNR (dB)"]) == sorted(worst["PSNR (dB)"])  # lowest PSNR first
    assert worst["PSNR (dB)"].iloc[0] < in_order["PSNR (dB)"].min()
    assert any("hardest" in m.value for m in at.markdown)
    at.button_group(key="rec_order").set_value("best first").run()
    best = at.dataframe[0].value
    assert best["PSNR (dB)"].iloc[0] > worst["PSNR (dB)"].iloc[-1]
    assert any("The 16 best-copied images for this model" in m.value for m in at.markdown)
    histogram = at.get("plotly_chart")[0].proto.spec  # where the shown lie: at or right of the lowest shown PSNR
    assert "at or right of this line" in histogram
    at.selectbox(key="rec_class@digits").select("3").run()
    assert set(at.dataframe[0].value["class"]) == {"3"}


def test_pick_any_image(runs):
    at = _page(runs, RECONSTRUCT)
    first = _metric(at, "PSNR")  # starts at the worst image
    at.number_input(key="rec_index").set_value(0).run()
    assert not at.exception
    assert _metric(at, "PSNR") != first
    assert float(_metric(at, "PSNR").split()[0]) > float(first.split()[0])


def test_upload_your_own_image(runs):
    at = _page(runs, RECONSTRUCT)
    paper = Image.new("L", (300, 200), 255)
    ImageDraw.Draw(paper).line([(120, 40), (180, 40), (140, 170)], fill=20, width=14)
    at.file_uploader(key="rec_upload").set_value(("seven.png", _png(paper), "image/png")).run()
    assert not at.exception and not at.error
    seen = next(m.value for m in at.markdown if m.value.startswith("**What the model sees.**"))
    assert "inverted" in seen and "8×8" in seen
    assert _metric(at, "Error percentile").endswith("%")


@pytest.mark.parametrize("name,data,reason", [
    ("empty.png", b"", "empty"),
    ("digit.png", b"this is a text file, not a picture", "not an image"),
    ("cut.png", _png(Image.new("RGB", (64, 64), (9, 9, 9)))[:90], "damaged or truncated"),
])
def test_bad_uploads_get_a_sentence_and_the_page_goes_on(runs, name, data, reason):
    at = _page(runs, RECONSTRUCT)
    at.file_uploader(key="rec_upload").set_value((name, data, "image/png")).run()
    assert not at.exception
    assert any(reason in e.value and e.value.replace("\\", "").startswith(name) for e in at.error)  # as shown
    assert _metric(at, "Mean PSNR")  # the rest of the page is still there


def test_canvas_is_offered_for_one_channel_models_and_clears(runs):
    at = _page(runs, RECONSTRUCT)
    assert any("Draw in white" in i.value for i in at.info)  # an untouched canvas asks for a drawing
    at.button(key="rec_clear").click().run()
    assert not at.exception and at.session_state["rec_canvas_n"] == 1


def test_data_the_model_never_saw_is_copied_worse(runs):
    at = _page(runs, RECONSTRUCT)
    own = float(_metric(at, "PSNR on digits (its own data)").split()[0])
    other = float(_metric(at, "PSNR on sprites (never seen)").split()[0])
    assert other < own
    at = _page(runs, RECONSTRUCT, "tiny-sprites", "sprites")
    assert float(_metric(at, "PSNR on digits (never seen)").split()[0]) < float(
        _metric(at, "PSNR on sprites (its own data)").split()[0])


@pytest.mark.parametrize("dataset,model", [("digits", "tiny-digits-denoising"), ("sprites", "tiny-sprites")])
def test_denoise_renders_with_its_widgets(runs, dataset, model):
    at = _page(runs, DENOISE, model, dataset)
    assert at.title[0].value == "Denoise"
    assert at.selectbox(key="dn_kind").options and at.selectbox(key="dn_filter").options
    assert at.slider(key="dn_level_gaussian").value == 0.3
    numbers = _numbers(at)
    for name in ("noisy input", "this model", "median filter 3×3"):
        assert numbers[name]["psnr"].endswith(" dB") and 0 < float(numbers[name]["ssim"]) <= 1
    for change in ("psnr change", "ssim change"):  # against the noisy input, coloured by its sign
        assert numbers["this model"][change].startswith((":green[+", ":red[-")) and not numbers["noisy input"][change]
    assert len(at.get("plotly_chart")) == 2  # PSNR and SSIM against the level
    pictures = _html_pictures(at)[0]
    labels = ("noisy input", "this model", "median filter 3×3", "clean original")
    assert all(f'alt="{label}"' in pictures for label in labels)
    assert pictures.count('src="data:image/png;base64,') >= 4  # lossless: JPEG blurs the sharp pixels


def test_the_noise_slider_changes_the_psnr_shown(runs):
    at = _page(runs, DENOISE, "tiny-digits-denoising")
    before = {n: _psnr(at, n) for n in ("noisy input", "this model")}
    at.slider(key="dn_level_gaussian").set_value(0.8).run()
    assert not at.exception
    after = {n: _psnr(at, n) for n in ("noisy input", "this model")}
    assert after["this model"] != before["this model"]
    assert float(after["noisy input"].split()[0]) < float(before["noisy input"].split()[0])


def test_the_numbers_at_the_slider_are_the_charts_numbers_there(runs):
    # every position of the slider is a point of the charts: a move reads the numbers the charts were drawn from
    at = _page(runs, DENOISE, "tiny-digits-denoising")
    for level in (0.3, 0.85, 0.0):
        at.slider(key="dn_level_gaussian").set_value(level).run()
        assert not at.exception
        shown = {n: _psnr(at, n) for n in ("noisy input", "this model")}
        if level:
            psnr_chart = next(c for c in at.get("plotly_chart") if "PSNR" in c.proto.spec)
            trace = next(t for t in json.loads(psnr_chart.proto.spec)["data"] if t["name"] == "this model")
            assert float(shown["this model"].split()[0]) == round(trace["y"][trace["x"].index(level)], 2)
        else:  # below the charts' first level, measured apart: no noise, so the input is the original image
            assert shown["noisy input"] == "∞"  # identical images (aecore.metrics.psnr caps them at 100 dB)
            assert float(shown["this model"].split()[0]) < 100
            numbers = _numbers(at)["this model"]
            assert numbers["psnr change"] == "" and numbers["ssim change"].startswith(":")  # none against infinity


def test_a_denoising_model_is_compared_with_a_plain_one(runs):
    at = _page(runs, DENOISE, "tiny-digits-denoising")
    assert at.selectbox(key="dn_other@digits").value == "this session: tiny-digits"
    assert _psnr(at, "plain autoencoder")
    at = _page(runs, DENOISE, "tiny-digits")  # and the other way round
    assert at.selectbox(key="dn_other@digits").value == "this session: tiny-digits-denoising"
    assert _psnr(at, "denoising autoencoder")
    for kind in ("salt-pepper", "masking"):
        at.selectbox(key="dn_kind").select(kind).run()
        assert not at.exception
        assert at.slider(key=f"dn_level_{kind}") and _psnr(at, "this model")


def test_a_collapsed_model_is_not_the_default_to_compare_with(runs):
    flat = _job("tiny-digits-flat", "digits", "deep", 1)
    flat.join()
    with torch.no_grad():  # the last layer's weights zeroed: one output image whatever the input
        flat.model.decoder[-2].weight.zero_()
    at = _page({"tiny-digits-flat": flat, **runs}, DENOISE, "tiny-digits-denoising")
    assert not at.exception
    assert at.selectbox(key="dn_other@digits").value == "this session: tiny-digits"
    assert "this session: tiny-digits-flat" in at.selectbox(key="dn_other@digits").options  # still there to pick


def test_a_plain_model_alone_gets_a_hint(runs, no_pretrained):
    at = _page({"tiny-digits": runs["tiny-digits"]}, DENOISE)
    assert any("never saw noise" in i.value for i in at.info)
    assert at.selectbox(key="dn_other@digits").value == "nothing"


@pytest.mark.parametrize("page", [RECONSTRUCT, DENOISE])
def test_without_a_model_the_pages_give_a_hint(no_pretrained, page):
    at = _page({}, page, model=None)
    assert any("Pick a model" in i.value for i in at.info)
    assert not at.metric and not _html_pictures(at)
