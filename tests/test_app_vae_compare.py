"""AppTest of the VAE lab and Compare pages with real tiny models trained on digits."""
import base64
import io

import numpy as np
import plotly.io
import pytest
import torch
from PIL import Image
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

import aecore as ae
from conftest import ROOT, app_page

TIMEOUT = 120


def _job(name, preset, code, epochs, **train):
    ds = ae.load_dataset("digits")
    train_set, val = ds.split(0.9, seed=0)
    model_spec, train_spec = ae.preset(preset, ds.shape, model={"code_size": code}, train={"epochs": epochs, **train})
    job = ae.jobs.TrainingJob(name, "digits", train_set, val, model_spec, train_spec).start()
    job.join()
    assert job.status == "done", job.error
    return job


@pytest.fixture(scope="module")
def runs():
    collapsed = _job("collapsed-vae", "vae", 2, 1)
    with torch.no_grad():  # a head that outputs mean 0 and log-variance 0: the code is the prior
        collapsed.model.head.weight.zero_()
        collapsed.model.head.bias.zero_()
    return {
        "tiny-vae": _job("tiny-vae", "vae", 2, 5, batch_size=32, lr=3e-3),
        "tiny-vae3": _job("tiny-vae3", "vae", 3, 5, batch_size=32, lr=3e-3),
        "tiny-vae1": _job("tiny-vae1", "vae", 1, 2, batch_size=32),
        "tiny-ae": _job("tiny-ae", "deep", 4, 2),
        "collapsed-vae": collapsed,
    }


@pytest.fixture
def media(monkeypatch):
    """Return {file id: bytes} of every image and download the app stores while the test runs."""
    store = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        store[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    return store


def _file(media, url: str) -> bytes:
    return media[url.rsplit("/", 1)[-1].split(".")[0]]


def _picture(media, url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(_file(media, url))).convert("RGB"))


def _page(runs, page: str, model: str | None = "tiny-vae", keep=None) -> AppTest:
    return app_page({k: v for k, v in runs.items() if keep is None or k in keep}, page, model)


def _metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def _texts(at) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption])


def _array(values) -> np.ndarray:
    """Return a Plotly JSON array, which Plotly may send as base64 ("bdata") typed data."""
    if isinstance(values, dict) and "bdata" in values:
        flat = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
        return flat.reshape([int(n) for n in str(values["shape"]).split(",")]) if "shape" in values else flat
    return np.asarray(values)


def _image_with_caption(at, caption):
    return next(i for i in at.image if caption in i.captions)


def _charts(at) -> list:
    return [plotly.io.from_json(c.proto.spec) for c in at.get("plotly_chart")]


# ---- VAE lab ------------------------------------------------------------------------------------------------------

def test_vae_lab_shows_strips_kl_and_active_units(runs):
    at = _page(runs, "app_pages/vae_lab.py")
    assert at.title[0].value == "VAE lab"
    assert [t.label for t in at.tabs] == ["Interpolate", "Traverse", "Sample", "Manifold"]
    assert _metric(at, "Code size") == "2"
    assert _metric(at, "Active units") == "2 of 2"
    assert not at.error
    texts = _texts(at)
    for strip in ("Linear path in latent space", "Spherical path (slerp) in latent space", "Pixel cross-fade"):
        assert strip in texts
    charts = _charts(at)
    kl = next(c for c in charts if (c.layout.yaxis.title.text or "").startswith("KL"))
    assert sorted(kl.data[0].x) == ["z1", "z2"]
    assert (_array(kl.data[0].customdata) > 0.01).all()
    latent_map = next(c for c in charts if any(t.name == "spherical path" for t in c.data))
    points = np.concatenate([_array(t.customdata) for t in latent_map.data if t.customdata is not None])
    assert sorted(points.tolist()) == list(range(1797))  # every digit is on the map, by its index


def test_interpolation_steps_and_the_gif_and_png_exports(runs, media):
    at = _page(runs, "app_pages/vae_lab.py")
    at.slider(key="vae_steps").set_value(5).run()
    assert not at.exception
    buttons = {b.label: b for b in at.download_button}
    gif = _file(media, buttons["Download GIF"].proto.url)
    assert gif[:4] == b"GIF8"
    frames = Image.open(io.BytesIO(gif))
    assert frames.n_frames == 8  # five steps there and three back
    png = _file(media, buttons["Download PNG (all three strips)"].proto.url)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO(png)).size[0] > Image.open(io.BytesIO(png)).size[1]  # three rows of five


def test_picking_by_class_and_by_upload(runs):
    at = _page(runs, "app_pages/vae_lab.py")
    at.radio(key="vae_src_A__0").set_value("Class").run()
    at.selectbox(key="vae_cls_A_digits").set_value(7).run()
    assert not at.exception
    assert any(c.startswith("A: image") and c.endswith("· 7") for i in at.image for c in i.captions)
    at.radio(key="vae_src_B__0").set_value("Upload").run()
    assert "Pick both images" in "\n".join(i.value for i in at.info)
    picture = np.full((40, 40), 255, dtype=np.uint8)
    picture[8:32, 18:23] = 0  # a dark "1" on white paper
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG")
    at.file_uploader(key="vae_up_B").set_value(("one.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and not at.error
    assert any("B: your upload" in c for i in at.image for c in i.captions)
    at.file_uploader(key="vae_up_B").set_value(("bad.png", b"not an image", "image/png")).run()
    assert not at.exception
    assert "not an image" in at.error[0].value


def test_the_state_a_map_click_sets_picks_both_ends(runs):
    at = _page(runs, "app_pages/vae_lab.py")
    # what on_map_click stores for two clicks: a new index and a new widget version for each end
    for end, index in (("A", 42), ("B", 1000)):
        at.session_state[f"vae_idx_{end}"] = index
        at.session_state[f"vae_idx_{end}__version"] = 1
    at.run()
    assert not at.exception
    captions = [c for i in at.image for c in i.captions]
    assert any(c.startswith("A: image 42 ·") for c in captions)
    assert any(c.startswith("B: image 1000 ·") for c in captions)
    assert at.number_input(key="vae_idx_A__1").value == 42


def test_a_traversal_slider_changes_the_decoded_image(runs, media):
    at = _page(runs, "app_pages/vae_lab.py")
    caption = "The start (left) and the decoded code"
    before = _image_with_caption(at, caption).value[0]
    assert _metric(at, "Change from the start (MSE per pixel)") == "0.0000"
    slider = next(s for s in at.slider if s.label.startswith("z1 ·"))
    slider.set_value(3.0 if slider.value < 0 else -3.0).run()
    assert not at.exception
    after = _image_with_caption(at, caption).value[0]
    assert after != before
    assert not np.array_equal(_picture(media, after), _picture(media, before))
    assert float(_metric(at, "Change from the start (MSE per pixel)")) > 0
    at.button(key="vae_reset").click().run()
    assert _metric(at, "Change from the start (MSE per pixel)") == "0.0000"


def test_sampling_with_a_new_seed_changes_the_samples(runs):
    at = _page(runs, "app_pages/vae_lab.py")
    assert "seed 0" in _texts(at)
    at.button(key="vae_new").click().run()
    assert "seed 1" in _texts(at)
    at.slider(key="vae_temp").set_value(0.0).run()
    assert not at.exception


def test_the_manifold_grid_of_a_2d_code(runs, media):
    at = _page(runs, "app_pages/vae_lab.py")
    assert "The whole latent plane" in _texts(at)
    grids = [i for i in at.image if not i.captions or not i.captions[0]]
    big = max((_picture(media, i.value[0]) for i in grids), key=lambda a: a.size)
    assert big.shape[0] == big.shape[1] and big.shape[0] > 15 * 8
    cell = (big.shape[0] + 1) // 15
    assert not np.array_equal(big[:cell - 1, :cell - 1], big[-cell + 1:, -cell + 1:])  # opposite corners differ
    at.slider(key="vae_grid").set_value(5).run()
    assert not at.exception


def test_a_wider_code_gets_a_slice_and_a_pca_map(runs):
    at = _page(runs, "app_pages/vae_lab.py", model="tiny-vae3")
    assert "A slice through the two most informative dimensions" in _texts(at)
    latent_map = next(c for c in _charts(at) if any(t.name == "linear path" for t in c.data))
    assert latent_map.layout.xaxis.title.text.startswith("PC 1")


def test_a_one_dimensional_code_gets_a_line_not_a_sphere(runs):
    at = _page(runs, "app_pages/vae_lab.py", model="tiny-vae1")
    texts = _texts(at)
    assert "Linear path in latent space" in texts and "Spherical path" not in texts
    assert any("no plane to map" in i.value for i in at.info)


def test_a_collapsed_posterior_is_called_out(runs):
    at = _page(runs, "app_pages/vae_lab.py", model="collapsed-vae")
    assert _metric(at, "Active units") == "0 of 2"
    assert "posterior has collapsed" in at.error[0].value


def test_a_model_that_is_not_a_vae_gets_one_sentence(runs):
    at = _page(runs, "app_pages/vae_lab.py", model="tiny-ae")
    assert "needs a variational model" in at.info[0].value
    assert "pick one in the sidebar" in at.info[0].value and "vae" in at.info[0].value
    assert not at.tabs


def test_the_vae_lab_works_on_sprites():
    ds = ae.load_dataset("sprites").subset(slice(0, 400))
    train_set, val = ds.split(0.9, seed=0)
    model_spec, train_spec = ae.preset("vae", ds.shape, model={"code_size": 4, "hidden": (64,)},
                                       train={"epochs": 2, "batch_size": 32, "lr": 3e-3})
    job = ae.jobs.TrainingJob("sprites-vae", "sprites", train_set, val, model_spec, train_spec).start()
    job.join()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["runs"] = {"sprites-vae": job}
    at.run()
    at.selectbox(key="dataset_label").set_value("sprites").run()
    at.selectbox(key="model_label").set_value("this session: sprites-vae").run()
    at.switch_page("app_pages/vae_lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert _metric(at, "Code size") == "4"
    assert at.radio(key="vae_src_A__0").options == ["Index", "Class", "Upload"]
    at.radio(key="vae_src_A__0").set_value("Class").run()
    assert at.selectbox(key="vae_cls_A_sprites").options == ["square", "ellipse", "heart"]
    latent_map = next(c for c in _charts(at) if any(t.name == "linear path" for t in c.data))
    assert {t.name for t in latent_map.data} >= {"square", "ellipse", "heart"}
    assert not at.exception


# ---- Compare ------------------------------------------------------------------------------------------------------

def _finish(at, key):
    for job in at.session_state[key]["jobs"].values():
        job.join()
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def test_compare_renders_its_three_tabs(runs):
    at = _page(runs, "app_pages/compare.py")
    assert [t.label for t in at.tabs] == ["Code size", "Noise level", "Side by side"]
    assert at.multiselect(key="cmp_code_sizes@digits").value == [2, 4, 8, 16, 32]


def test_a_code_size_sweep_plots_its_curve_beside_pca(runs):
    at = _page(runs, "app_pages/compare.py")
    at.multiselect(key="cmp_code_sizes@digits").set_value([2, 8])
    at.slider(key="cmp_code_epochs").set_value(1)
    at.select_slider(key="cmp_code_cap").set_value(250)
    at.button(key="cmp_code_go").click().run()
    assert not at.exception
    state = at.session_state["cmp_code"]
    assert set(state["jobs"]) == {2, 8} and state["n_train"] == 250
    _finish(at, "cmp_code")
    assert state["live"] is False
    chart = next(c for c in _charts(at) if (c.layout.title.text or "").startswith("What the bottleneck costs"))
    assert [t.name for t in chart.data] == ["deep autoencoder", "PCA with as many components"]
    ae_curve, pca_curve = chart.data[0].y, chart.data[1].y
    assert all(v is not None and 0 < v < 0.2 for v in ae_curve)
    assert pca_curve[1] < pca_curve[0]  # PCA with more components rebuilds better
    table = next(d.value for d in at.dataframe if "PCA MSE" in d.value.columns)
    assert list(table["code size"]) == [2, 8]
    at.button(key="cmp_code_keep").click().run()
    assert not at.exception
    assert {"sweep 1 deep z2", "sweep 1 deep z8"} <= set(at.session_state["runs"])
    assert at.button(key="cmp_code_keep").disabled
    assert "this session: sweep 1 deep z8" in at.multiselect(key="cmp_models@digits").options
    assert "this session: sweep 1 deep z8" in at.sidebar.selectbox(key="model_label").options


def test_a_noise_sweep_tests_across_levels(runs):
    at = _page(runs, "app_pages/compare.py")
    at.slider(key="cmp_noise_epochs").set_value(1)
    at.select_slider(key="cmp_noise_cap").set_value(250)
    at.button(key="cmp_noise_go").click().run()
    _finish(at, "cmp_noise")
    curves = at.session_state["cmp_noise"]["curves"]
    assert list(curves) == ["noisy input", "denoising (gaussian 0.3)", "plain (no noise)"]
    assert curves["noisy input"][0] == 0 and curves["noisy input"][-1] > curves["noisy input"][1]
    chart = next(c for c in _charts(at) if (c.layout.title.text or "").startswith("What noise costs"))
    assert [t.name for t in chart.data] == list(curves)
    assert "noisy input" in _texts(at) and "plain (no noise)" in _texts(at)


def test_two_models_side_by_side_get_one_metrics_table(runs):
    at = _page(runs, "app_pages/compare.py")
    at.multiselect(key="cmp_models@digits").set_value(["this session: tiny-vae", "this session: tiny-ae"]).run()
    assert not at.exception
    table = next(d.value for d in at.table if "SSIM" in d.value.columns)
    assert list(table["model"]) == ["tiny-vae", "tiny-ae"]
    assert {"MSE", "PSNR (dB)", "SSIM", "parameters", "code size"} <= set(table.columns)
    assert list(table["code size"]) == [2, 4]
    assert (table["MSE"] > 0).all() and (table["SSIM"] <= 1).all()
    at.selectbox(key="cmp_kind").set_value("gaussian").run()
    strips = len(at.image)  # the inputs, then each model's outputs
    at.toggle(key="cmp_errors").set_value(True).run()
    assert not at.exception
    assert "corrupted by gaussian noise" in _texts(at)
    assert len(at.image) == strips + 2  # each model's error map comes under its outputs, which stay
    assert "tiny-vae: its outputs, and under them their error against the clean images" in _texts(at)


def test_side_by_side_needs_two_models(runs):
    at = _page(runs, "app_pages/compare.py", keep={"tiny-vae"})
    pickers = [m for m in at.multiselect if m.key == "cmp_models@digits"]
    if not pickers:  # no pretrained digits model besides the one run
        assert any("needs two models" in i.value for i in at.info)
    else:
        pickers[0].set_value(["this session: tiny-vae"]).run()
        assert any("Pick two or more" in i.value for i in at.info)


def test_an_opened_model_file_works_side_by_side_and_on_denoise(runs):
    # a file opened in the sidebar is listed with the runs: every page that loads list entries must load it too
    job = runs["tiny-ae"]
    card = ae.TrainSpec(**{**job.train_spec.to_dict(), "noise": "gaussian", "noise_level": 0.4})
    data = ae.to_bytes(job.model, train_spec=card, dataset={"name": "digits", "shape": [1, 8, 8]})
    at = _page(runs, "app_pages/compare.py")
    at.sidebar.file_uploader(key="model_file").set_value(("mine.safetensors", data, "application/octet-stream")).run()
    at.multiselect(key="cmp_models@digits").set_value(["opened: mine.safetensors", "this session: tiny-vae"]).run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.table if "SSIM" in d.value.columns)
    assert list(table["model"]) == ["mine.safetensors", "tiny-vae"]
    at.switch_page("app_pages/denoise.py").run()
    assert not at.exception
    assert "trained on gaussian noise at level 0.4" in _texts(at)  # read from the file's card
    assert at.slider(key="dn_level_gaussian").value == 0.4


def test_a_run_that_outputs_one_image_for_all_is_called_out_when_it_finishes(runs):
    # the collapsed VAE decodes every image from the prior's mean: one output whatever the input; tiny-vae varies
    at = _page(runs, "app_pages/train.py", keep={"collapsed-vae", "tiny-vae"})
    at.selectbox(key="train_run_shown").set_value("collapsed-vae").run()
    assert not at.exception
    assert any("same average image for every input" in w.value and "smaller β" in w.value for w in at.warning)
    at.selectbox(key="train_run_shown").set_value("tiny-vae").run()
    assert not at.exception and at.subheader[0].value == "Run: tiny-vae"
    assert not any("average image" in w.value for w in at.warning)
