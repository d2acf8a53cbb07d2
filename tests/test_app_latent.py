"""AppTest of the Latent space page with real tiny models trained on digits and sprites."""
import base64
import io

import numpy as np
import plotly.io
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import aecore as ae
from conftest import ROOT

TIMEOUT = 180


def _job(name, dataset, train_set, val, code, hidden, epochs):
    model_spec, train_spec = ae.preset("deep", train_set.shape, model={"code_size": code, "hidden": hidden},
                                       train={"epochs": epochs, "lr": 3e-3})
    job = ae.jobs.TrainingJob(name, dataset, train_set, val, model_spec, train_spec).start()
    job.join()
    assert job.status == "done", job.error
    return job


@pytest.fixture(scope="module")
def runs():
    digits = ae.load_dataset("digits").split(0.9, seed=0)
    sprites = ae.load_dataset("sprites", n=1500).split(0.9, seed=0)
    return {"lat-digits": _job("lat-digits", "digits", *digits, 4, (32,), 4),
            "lat-sprites": _job("lat-sprites", "sprites", *sprites, 6, (64,), 2)}


def _app(runs, dataset="digits", model="lat-digits") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["runs"] = runs
    at.session_state["dataset_label"] = dataset
    at.session_state["model_label"] = f"this session: {model}"
    at.run()  # app.py first: it draws the sidebar the page reads
    at.switch_page("app_pages/latent.py").run()
    _ok(at)
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _figure(at: AppTest):
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    return plotly.io.from_json(charts[0].proto.spec)


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label))


def _array(values) -> np.ndarray:
    """Return a figure's array, decoding Plotly's base64 typed-array form ({"dtype", "bdata"})."""
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).reshape(values.get("shape", -1))
    return np.asarray(values)


def _points(fig) -> dict[int, tuple]:
    """Return {sample row: coordinates} over every trace of mapped points (marks have customdata -1)."""
    found = {}
    for t in fig.data:
        axes = [_array(v) for v in (t.x, t.y, *(() if getattr(t, "z", None) is None else (t.z,)))]
        for j, row in enumerate(_array(t.customdata).reshape(-1)):
            if row >= 0:
                found[int(row)] = tuple(float(a[j]) for a in axes)
    return found


def test_no_model_gives_a_hint_not_a_failure(monkeypatch):
    import app_pages.common

    monkeypatch.setattr(app_pages.common, "pretrained_cards", lambda: {})
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["runs"] = {}
    at.run()
    at.switch_page("app_pages/latent.py").run()
    _ok(at)
    assert any("Pick a model" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_digits_map_by_pca_then_tsne_with_its_quality(runs):
    at = _app(runs)
    fig = _figure(at)
    assert [t.name for t in fig.data] == [str(k) for k in range(10)]
    assert sorted(_points(fig)) == list(range(1797))  # every digit is on the map, each traceable to its row
    assert 0.5 < float(_metric(at, "Trustworthiness")) <= 1
    codes, pca, pixels = (float(_metric(at, label).rstrip("%")) for label in
                          ("k-NN: codes (4-D)", "k-NN: PCA (4-D)", "k-NN: pixels (64-D)"))
    assert 50 < codes <= 100 and 30 < pca <= 100 and pixels > 90
    at.segmented_control(key="lat_method").set_value("tsne").run()
    _ok(at)
    assert at.slider(key="lat_perplexity").value == 30
    tsne = _figure(at)
    assert _points(tsne)[0] != _points(fig)[0] and len(_points(tsne)) == 1797
    assert float(_metric(at, "Trustworthiness")) > 0.9  # t-SNE keeps neighbourhoods better than a linear map
    at.slider(key="lat_perplexity").set_value(10).run()
    _ok(at)
    assert _points(_figure(at))[0] != _points(tsne)[0]
    at.segmented_control(key="lat_method").set_value("pca").run()
    at.segmented_control(key="lat_dims").set_value(3).run()
    _ok(at)
    three = _figure(at)
    assert {t.type for t in three.data} == {"scatter3d"} and len(_points(three)[5]) == 3
    assert any("3-D map turns" in i.value for i in at.info)
    assert any(b.label.startswith("Download the codes") for b in at.get("download_button"))


def test_a_smaller_sample_maps_fewer_points(runs):
    at = _app(runs)
    at.select_slider(key="lat_n@digits").set_value(500).run()
    _ok(at)
    assert len(_points(_figure(at))) == 500
    assert "Scored on 500 of the mapped images" in " ".join(c.value for c in at.caption)


def test_one_image_shows_its_neighbours_in_code_and_pixel_space(runs):
    at = _app(runs)
    at.number_input(key="lat_lookup").set_value(5).run()
    _ok(at)
    text = " ".join(m.value for m in at.markdown)
    assert "**Image #5**" in text
    assert "code space: what the model considers alike" in text and "pixel space" in text
    assert "share its label" in text
    assert any(t.name == "image #5" for t in _figure(at).data)
    neighbours = [c for i in at.image for c in i.captions if c.startswith("#")]
    assert len(neighbours) == 2 and all(len(c.split(" · ")) == 8 for c in neighbours)
    assert "#5 " not in neighbours[0] + " "  # the image itself is left out of its neighbours


def test_an_image_placed_on_a_pca_map_lands_on_its_own_point(runs):
    at = _app(runs)
    at.number_input(key="lat_place_index").set_value(7).run()
    _ok(at)
    fig = _figure(at)
    star = next(t for t in fig.data if t.name == "image #7")
    assert list(_array(star.customdata)) == [-1]
    # on digits the sample is every image, and PCA places a mapped image exactly on its own point
    assert np.allclose((_array(star.x)[0], _array(star.y)[0]), _points(fig)[7], atol=1e-4)
    assert any("image #7 and its reconstruction" in c for i in at.image for c in i.captions)
    at.segmented_control(key="lat_method").set_value("tsne").run()
    _ok(at)
    assert any(t.name == "image #7" for t in _figure(at).data)


def test_an_upload_is_placed_and_a_bad_one_gets_a_sentence(runs):
    at = _app(runs)
    at.segmented_control(key="lat_source").set_value("an upload").run()
    picture = np.zeros((40, 40), dtype=np.uint8)
    picture[8:32, 18:22] = 255  # a light stroke on black: a "1"
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG")
    at.file_uploader(key="lat_upload").set_value(("one.png", buf.getvalue(), "image/png")).run()
    _ok(at)
    assert any(t.name == "one.png" for t in _figure(at).data)
    assert any("one.png and its reconstruction" in c for i in at.image for c in i.captions)
    at.file_uploader(key="lat_upload").set_value(("notes.png", b"not an image", "image/png")).run()
    assert not at.exception
    assert "notes.png" in at.error[0].value.replace("\\", "")  # as shown, Markdown escapes removed
    assert not any(t.name == "notes.png" for t in _figure(at).data)


def test_sprites_colour_by_true_factors_and_error(runs):
    at = _app(runs, "sprites", "lat-sprites")
    options = at.selectbox(key="lat_colour@sprites").options
    assert options[0] == "label" and options[-1] == "reconstruction error"
    assert {f"true factor: {name}" for name in ("shape", "scale", "rotation", "x", "y")} <= set(options)
    assert [t.name for t in _figure(at).data] == ["square", "ellipse", "heart"]
    assert len(_points(_figure(at))) == 5000
    assert float(_metric(at, "k-NN: codes (6-D)").rstrip("%")) > 40
    at.selectbox(key="lat_colour@sprites").set_value("true factor: scale").run()
    _ok(at)
    fig = _figure(at)
    assert len(fig.data) == 1 and fig.data[0].marker.colorbar.title.text == "scale"
    scales = {round(float(v), 3) for v in ae.data.SPRITE_SCALES}
    assert {round(float(v), 3) for v in _array(fig.data[0].marker.color)} <= scales
    at.selectbox(key="lat_colour@sprites").set_value("reconstruction error").run()
    _ok(at)
    assert _figure(at).data[0].marker.colorbar.title.text == "reconstruction MSE"


def test_the_pages_settings_survive_a_visit_to_another_page(runs):
    at = _app(runs)
    at.button_group(key="lat_dims").set_value(3).run()
    at.selectbox(key="lat_colour@digits").select("reconstruction error").run()
    at.switch_page("app_pages/reconstruct.py").run()
    at.button_group(key="rec_order").set_value("worst first").run()
    assert not at.exception
    at.switch_page("app_pages/latent.py").run()  # Streamlit drops the values of widgets a run does not draw
    assert at.button_group(key="lat_dims").value == 3 and at.selectbox(key="lat_colour@digits").value == "reconstruction error"
    assert not at.exception
    at.switch_page("app_pages/reconstruct.py").run()
    assert at.button_group(key="rec_order").value == "worst first"
    at.switch_page("app_pages/denoise.py").run()
    at.slider(key="dn_level_gaussian").set_value(0.5).run()
    at.switch_page("app_pages/latent.py").run()
    at.switch_page("app_pages/denoise.py").run()
    assert at.slider(key="dn_level_gaussian").value == 0.5 and not at.exception


def test_every_kept_setting_is_a_settable_widget_of_a_page():
    """PAGE_SETTINGS names keys that pages give to widgets with a value a person sets (not buttons, uploads, charts)."""
    import ast

    from app_pages.common import PAGE_SETTINGS

    settable = {"selectbox", "multiselect", "slider", "select_slider", "segmented_control", "radio", "number_input",
                "checkbox", "toggle"}
    from aecore.models import NOISES

    kinds = {}
    for path in (ROOT / "app_pages").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                for k in node.keywords:
                    if k.arg == "key" and isinstance(k.value, ast.Constant):
                        kinds[k.value.value] = node.func.attr
                    elif k.arg == "key" and isinstance(k.value, ast.Call) and ast.unparse(k.value.func) == "data_key":
                        kinds[k.value.args[0].value] = node.func.attr  # one key per data set, named after this
                    elif k.arg == "key" and ast.unparse(k.value) == "f'dn_level_{kind}'":  # one slider per noise
                        kinds.update({f"dn_level_{kind}": node.func.attr for kind in NOISES if kind != "none"})
    assert {key: kinds.get(key) for key in PAGE_SETTINGS if kinds.get(key) not in settable} == {}


def test_settings_that_come_from_the_data_set_start_afresh_with_another(runs):
    """Each data set has its own widgets for them (a new key), so the browser shows the values the page uses."""
    at = _app(runs)
    at.select_slider(key="lat_n@digits").set_value(500).run()
    at.button_group(key="lat_dims").set_value(3).run()
    at.selectbox(key="dataset_label").select("sprites").run()
    at.switch_page("app_pages/latent.py").run()
    assert not at.exception
    assert at.select_slider(key="lat_n@sprites").value == 5000  # the page's default for 10,000 sprites
    assert at.button_group(key="lat_dims").value == 3  # not a matter of the data set: kept
    assert len(_points(_figure(at))) == 5000
    at.selectbox(key="dataset_label").select("digits").run()
    at.switch_page("app_pages/latent.py").run()
    assert at.select_slider(key="lat_n@digits").value == 500 and len(_points(_figure(at))) == 500  # as left


def test_a_session_opened_on_a_page_keeps_its_first_change():
    """A link straight to the page: the first run draws the sidebar after the settings are kept, so the data set is
    not known yet; the person's first change must not count as a change of data set."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.switch_page("app_pages/latent.py").run()
    at.select_slider(key="lat_n@digits").set_value(500).run()
    assert not at.exception and at.select_slider(key="lat_n@digits").value == 500
