from streamlit.testing.v1 import AppTest

from conftest import ROOT


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


def test_home_renders_on_each_embedded_data_set():
    at = _app().run()
    assert not at.exception
    assert at.title[0].value == "Autoencoder Explorer"
    assert at.sidebar.selectbox(key="dataset_label").value == "digits"
    for label in ("sprites", "digits"):
        at.sidebar.selectbox(key="dataset_label").select(label).run()
        assert not at.exception
        assert any("compression" in c.value for c in at.caption), "the hourglass caption is missing"
        assert any("Device:" in c.value for c in at.sidebar.caption)


def test_the_hourglass_follows_the_chosen_model():
    at = _app().run()
    models = at.sidebar.selectbox(key="model_label")
    if models.options:  # the shipped models for digits, when pretrained/ holds some
        codes = set()
        for option in models.options:
            at.sidebar.selectbox(key="model_label").select(option).run()
            assert not at.exception
            codes.add(next(c.value for c in at.caption if "compression" in c.value))
        assert len(codes) > 1 or len(models.options) == 1


def test_a_data_set_that_cannot_be_loaded_gets_a_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("AECORE_DATA_DIR", str(tmp_path))
    at = _app().run()
    at.sidebar.selectbox(key="dataset_label").select("mnist (torchvision)").run()
    assert not at.exception
    assert any("digits" in e.value for e in at.sidebar.error)
