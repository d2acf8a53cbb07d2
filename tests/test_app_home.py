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
            code = option.rsplit("code ", 1)[1]  # the sidebar says it too, as a long name is cut short in the box
            assert any(f"code of {code} · " in c.value and "parameters" in c.value for c in at.sidebar.caption)
        assert len(codes) > 1 or len(models.options) == 1


def test_each_data_set_remembers_its_model():
    at = _app().run()
    digits_models = at.sidebar.selectbox(key="model_label").options
    sprites = at.sidebar.selectbox(key="dataset_label").select("sprites").run().sidebar.selectbox(key="model_label")
    if len(digits_models) < 2 or len(sprites.options) < 2:
        raise AssertionError("pretrained/ should hold two models of each embedded data set")
    at.sidebar.selectbox(key="model_label").select(sprites.options[1]).run()
    at.sidebar.selectbox(key="dataset_label").select("digits").run()
    at.sidebar.selectbox(key="model_label").select(digits_models[1]).run()
    at.sidebar.selectbox(key="dataset_label").select("sprites").run()
    assert at.sidebar.selectbox(key="model_label").value == sprites.options[1]
    at.sidebar.selectbox(key="dataset_label").select("digits").run()
    assert not at.exception and at.sidebar.selectbox(key="model_label").value == digits_models[1]


def test_a_data_set_that_cannot_be_loaded_gets_a_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("AECORE_DATA_DIR", str(tmp_path))
    at = _app().run()
    at.sidebar.selectbox(key="dataset_label").select("mnist (torchvision)").run()
    assert not at.exception
    assert any("digits" in e.value for e in at.sidebar.error)



def test_a_model_file_opens_and_a_bad_one_is_refused_with_a_reason(digits):
    import pickle

    import aecore as ae

    model_spec, train_spec = ae.preset("conv", digits.shape, train=dict(epochs=1))
    good = ae.to_bytes(ae.build_model(model_spec), train_spec=train_spec,
                       dataset={"name": "digits", "shape": list(digits.shape)})
    for name, data in [("evil.safetensors", pickle.dumps({"a": 1})), ("cut.safetensors", good[: len(good) // 2])]:
        at = _app().run()
        at.sidebar.file_uploader(key="model_file").set_value((name, data, "application/octet-stream")).run()
        assert not at.exception
        assert any(e.value.replace("\\", "").startswith(name) for e in at.sidebar.error), name  # as shown
        assert not any(o.startswith("opened:") for o in at.sidebar.selectbox(key="model_label").options)
    at = _app().run()
    at.sidebar.file_uploader(key="model_file").set_value(("mine.safetensors", good, "application/octet-stream")).run()
    assert not at.exception and not at.sidebar.error and not at.sidebar.info
    assert at.sidebar.selectbox(key="model_label").value == "opened: mine.safetensors"
    # a model of another data set joins that data set's list, and the sidebar says so
    sprites = ae.to_bytes(ae.build_model(ae.preset("deep", (3, 32, 32))[0]), dataset={"name": "sprites"})
    at.sidebar.file_uploader(key="model_file").set_value(("other.safetensors", sprites, "application/octet-stream"))
    at.run()
    assert not at.exception and at.sidebar.selectbox(key="model_label").value == "opened: mine.safetensors"
    shown = [i.value.replace("\\", "") for i in at.sidebar.info]  # as shown: the file name's Markdown escaped
    assert shown == ["other.safetensors was trained on sprites: it is in that data set's model list."]
    assert not at.exception
    assert any("13,809 parameters" in c.value or f"{model_spec.param_count():,} parameters" in c.value
               for c in at.caption)
