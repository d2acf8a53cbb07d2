"""AppTest of the Train page: settings, the hourglass numbers, errors, links, and a real tiny training run."""
import gc
import time

import pytest
import torch
from streamlit.testing.v1 import AppTest

import aecore as ae
from conftest import ROOT

TIMEOUT = 120


def _train_page(dataset: str = "digits", query: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    if dataset != "digits":
        at.sidebar.selectbox(key="dataset_label").set_value(dataset).run()
    at.query_params.update(query or {})
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _labels(at: AppTest) -> set[str]:
    widgets = (at.number_input, at.slider, at.select_slider, at.selectbox, at.radio)
    return {w.label for group in widgets for w in group}


@pytest.mark.parametrize("dataset", ["digits", "sprites"])
def test_the_page_renders_with_its_main_widgets(dataset):
    at = _train_page(dataset)
    assert at.title[0].value == "Train an autoencoder"
    assert at.segmented_control(key="train_type").value == "conv"
    assert {"Code size", "Convolutional layers", "Epochs", "Batch size", "Learning rate",
            "Reconstruction loss"} <= _labels(at)
    assert _metric(at, "Code") == ("16" if dataset == "digits" else "32")
    assert _metric(at, "Compression") == ("4.0×" if dataset == "digits" else "32.0×")
    expected = ae.preset("conv", (1, 8, 8) if dataset == "digits" else (1, 32, 32))[0].param_count()
    assert _metric(at, "Parameters") == f"{expected:,}"
    start = next(b for b in at.button if b.label == "Start training")
    assert not start.disabled
    assert not at.error
    code = [c.value for c in at.code]
    assert code[0].startswith(f"python -m aecore train --dataset {dataset} --preset conv")
    assert code[1].startswith("import aecore as ae")


def test_code_size_changes_the_parameter_count_and_compression():
    at = _train_page()
    before = _metric(at, "Parameters")
    at.number_input(key="train_w_code_size").set_value(4).run()
    assert not at.exception
    assert _metric(at, "Parameters") != before
    assert _metric(at, "Parameters") == f"{ae.preset('conv', (1, 8, 8), model={'code_size': 4})[0].param_count():,}"
    assert _metric(at, "Compression") == "16.0×"
    assert at.query_params["code"] == "4"


def test_the_type_decides_which_options_show():
    at = _train_page()
    assert "β (weight of the KL term)" not in _labels(at)
    at.segmented_control(key="train_type").set_value("vae").run()
    labels = _labels(at)
    assert {"β (weight of the KL term)", "Hidden layers", "Nodes in layer 1"} <= labels
    assert "Convolutional layers" not in labels and "Noise level" not in labels
    assert _metric(at, "Code") == "8" and _metric(at, "Compression") == "8.0×"
    at.segmented_control(key="train_type").set_value("sparse").run()
    labels = _labels(at)
    assert {"Sparsity penalty", "Sparsity weight"} <= labels and "β (weight of the KL term)" not in labels
    at.radio(key="train_w_sparsity").set_value("kl").run()
    assert "Target activation ρ" in _labels(at)
    at.segmented_control(key="train_type").set_value("denoising").run()
    assert {"Noise added to the inputs", "Noise level"} <= _labels(at)
    at.segmented_control(key="train_type").set_value("linear").run()
    labels = _labels(at)
    assert "Activation" not in labels and "Reconstruction loss" not in labels and "Hidden layers" not in labels
    at.segmented_control(key="train_type").set_value("deep").run()
    assert "Layer-wise pretraining epochs" in _labels(at)
    assert not at.exception


def test_impossible_settings_show_one_sentence_and_disable_start():
    at = _train_page()
    at.number_input(key="train_w_code_size").set_value(100).run()
    assert not at.exception
    assert len(at.error) == 1
    assert at.error[0].value.startswith("Code size: 100 is larger than the input (64 values)")
    assert next(b for b in at.button if b.label == "Start training").disabled
    # a linear network cannot end in the sigmoid that cross-entropy needs
    at.number_input(key="train_w_code_size").set_value(16).run()
    at.selectbox(key="train_w_activation").set_value("none").run()
    assert at.error and at.error[0].value.startswith("Loss: binary cross-entropy needs a sigmoid output")
    assert next(b for b in at.button if b.label == "Start training").disabled
    # too many halvings for an 8x8 image
    at.selectbox(key="train_w_activation").set_value("relu").run()
    at.slider(key="train_w_layers").set_value(4).run()
    assert at.error and at.error[0].value.startswith("Layers: 8x8 cannot be halved 4 times")
    assert not at.exception


def test_a_link_opens_its_settings_and_bad_values_fall_back_with_a_warning():
    at = _train_page(query={"preset": "vae", "code": "2", "beta": "4", "epochs": "7", "lr": "0.003"})
    assert at.segmented_control(key="train_type").value == "vae"
    assert at.number_input(key="train_w_code_size").value == 2
    assert at.select_slider(key="train_w_beta").value == 4.0
    assert at.slider(key="train_w_epochs").value == 7
    assert at.select_slider(key="train_w_lr").value == 0.003
    assert not at.warning
    assert "--beta 4.0" in at.code[0].value and "--code-size 2" in at.code[0].value

    at = _train_page(query={"preset": "deep", "code": "lots", "lr": "-1", "layers": "64-32", "noise": "gaussian"})
    assert not at.exception
    assert at.segmented_control(key="train_type").value == "deep"
    assert at.number_input(key="train_w_code_size").value == ae.preset("deep", (1, 8, 8))[0].code_size
    assert at.select_slider(key="train_w_lr").value == 1e-3
    assert [at.select_slider(key=f"train_w_layer_{i}").value for i in range(2)] == [64, 32]
    warnings = " ".join(w.value for w in at.warning).replace("\\", "")  # as shown: Markdown escapes removed
    assert "code='lots'" in warnings and "lr='-1'" in warnings and "noise=gaussian does not apply" in warnings

    at = _train_page(query={"preset": "nonsense"})
    assert at.segmented_control(key="train_type").value == "conv" and "does not exist" in at.warning[0].value


def test_a_link_cannot_put_markdown_into_the_page():
    at = _train_page(query={"code": "![x](http://example.com/track.png) :red[big]", "preset": "<b>vae</b>"})
    shown = " ".join(w.value for w in at.warning)
    assert "\\!\\[x\\]\\(http" in shown and "\\:red\\[big\\]" in shown and "\\<b\\>vae" in shown
    assert "![x](" not in shown and ":red[" not in shown and "<b>" not in shown


def test_a_tiny_training_run_completes_joins_the_sidebar_and_downloads():
    at = _train_page(query={"preset": "conv", "code": "8", "epochs": "2"})
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception
    runs = at.session_state["runs"]
    assert list(runs) == ["conv z8 #1"]
    job = runs["conv z8 #1"]
    job.join(TIMEOUT)
    assert job.status == "done", job.error
    at.run()
    assert not at.exception
    assert len(job.history) == 2 and all("val" in h for h in job.history)
    assert any("Training finished" in s.value for s in at.success)
    download = at.download_button[0]
    assert download.label == "Download .safetensors"
    # the map of codes and the strip of reconstructions are there, with a slider over the two epochs
    assert at.slider(key="train_epoch").value == 2
    assert at.image and "after epoch 2" in at.image[0].captions[0]
    assert at.dataframe[0].value["status"].tolist() == ["done"]
    # the bytes offered are a checkpoint that loads back into the same model
    model = ae.load(at.session_state["train_final"]["conv z8 #1"][1])
    assert model.spec == job.model_spec and len(model.card["history"]) == 2
    x = job.val.images[:4]
    assert torch.allclose(model(x), job.model(x))
    # a second run gets its own name; the first stays in the table
    next(b for b in at.button if b.label == "Start training").click().run()
    assert list(at.session_state["runs"]) == ["conv z8 #1", "conv z8 #2"]
    at.session_state["runs"]["conv z8 #2"].stop()
    at.session_state["runs"]["conv z8 #2"].join(TIMEOUT)
    at.run()
    assert not at.exception
    # the finished runs join the sidebar's model list, drawn on every page
    assert "this session: conv z8 #1" in at.sidebar.selectbox(key="model_label").options


def test_start_is_disabled_while_a_run_trains_and_stop_keeps_the_weights():
    at = _train_page(query={"preset": "deep", "epochs": "100"})
    next(b for b in at.button if b.label == "Start training").click().run()
    job = at.session_state["runs"]["deep z16 #1"]
    assert next(b for b in at.button if b.label == "Start training").disabled
    deadline = time.time() + TIMEOUT
    while len(job.reports) < 2 and time.time() < deadline:  # stop after two epochs, however loaded the machine is
        time.sleep(0.05)
    at.button(key="train_stop").click().run()
    job.join(TIMEOUT)
    at.run()
    assert not at.exception
    assert job.status == "stopped" and len(job.history) < 100
    assert any(w.value.startswith("Stopped after") for w in at.warning)
    assert at.slider(key="train_epoch").max == len(job.reports)  # the last epoch trained, not the 100 asked for
    assert not next(b for b in at.button if b.label == "Start training").disabled
    assert at.download_button or not job.history


def test_the_run_shown_and_the_settings_survive_a_visit_to_another_page():
    at = _train_page(query={"preset": "linear", "epochs": "1"})
    for code in (4, 2):
        at.number_input(key="train_w_code_size").set_value(code).run()
        next(b for b in at.button if b.label == "Start training").click().run()
        for job in at.session_state["runs"].values():
            job.join(TIMEOUT)
        at.run()
    run_shown = next(s for s in at.selectbox if s.label == "Run shown")
    assert run_shown.value == "linear z2 #2"
    run_shown.set_value("linear z4 #1").run()
    at.switch_page("app_pages/reconstruct.py").run()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception
    assert next(s for s in at.selectbox if s.label == "Run shown").value == "linear z4 #1"
    assert at.subheader[0].value == "Run: linear z4 #1"
    assert at.segmented_control(key="train_type").value == "linear"
    assert at.number_input(key="train_w_code_size").value == 2
    assert [r for r in at.dataframe[0].value["run"]] == ["linear z4 #1", "linear z2 #2"]


@pytest.mark.parametrize("empty", [None, 3])
def test_a_session_keeps_at_most_eight_runs_and_drops_the_oldest_with_its_file(digits_split, empty):
    # `empty`: a run stopped before its first epoch, which has no weights to keep: it goes first
    from app_pages.common import MAX_RUNS

    train, val = digits_split
    old = {}
    for i in range(MAX_RUNS):
        model_spec, train_spec = ae.preset("vanilla", train.shape, train=dict(epochs=1))
        job = ae.jobs.TrainingJob(f"old #{i}", "digits", train, val, model_spec, train_spec)
        if i == empty:
            job.stop()
        job.start().join(TIMEOUT)
        old[job.name] = job
    assert [j.usable for j in old.values()].count(False) == (empty is not None)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["runs"] = dict(old)
    at.session_state["train_shown"] = "old #0"
    at.query_params.update({"preset": "vanilla", "epochs": "1"})
    at.run()
    at.switch_page("app_pages/train.py").run()
    assert "old #0" in at.session_state["train_final"]  # the shown run's file, made for its download button
    assert "old #0" in at.session_state["train_refreshed"]  # the page reran once for the finished run
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception
    runs = at.session_state["runs"]
    gone = "old #0" if empty is None else f"old #{empty}"
    assert len(runs) == MAX_RUNS and gone not in runs and {"old #1", "old #2"} <= set(runs)
    assert any(f"Dropped {'the oldest run' if empty is None else 'a run without trained weights'}, {gone}" in t.value
               for t in at.toast)
    new = runs[list(runs)[-1]]
    new.join(TIMEOUT)
    at.run()
    assert not at.exception
    assert set(at.session_state["train_final"]) <= set(runs)  # the dropped run's file went with it
    assert set(at.session_state["train_refreshed"]) <= set(runs)  # and so did its name


def _tracked(predicate) -> int:
    """Return how many objects the garbage collector tracks match predicate, after a full collection."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if predicate(o))


def _shown_run(at: AppTest, runs: dict, digits_split, name: str, epochs: int):
    """Start a vanilla run on digits, add it to the session's runs as the one shown, and return its job."""
    train, val = digits_split
    model_spec, train_spec = ae.preset("vanilla", train.shape, train=dict(epochs=epochs))
    runs[name] = job = ae.jobs.TrainingJob(name, "digits", train, val, model_spec, train_spec).start()
    at.session_state["runs"] = dict(runs)
    at.session_state["train_shown"] = name
    return job


def test_showing_run_after_run_does_not_pile_up_page_state(digits_split):
    # Streamlit keeps a session's widget metadata for every widget key it has seen, callbacks included (and through
    # them the page's whole namespace): a key per run made each run a session trained stay in memory for good
    def train_page(o) -> bool:
        return (type(o) is dict and o.get("__name__") == "__main__"
                and str(o.get("__file__", "")).endswith("train.py"))

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    runs, alive = {}, []
    for i in range(4):
        _shown_run(at, runs, digits_split, f"run #{i}", epochs=1).join(TIMEOUT)
        at.switch_page("app_pages/train.py").run()
        assert not at.exception
        assert any(b.label == "Use it on every page" for b in at.button)  # the finished run's panel, with its callback
        at.switch_page("app_pages/denoise.py").run()  # another page: the Train page's widgets are gone now
        alive.append(_tracked(train_page))
    assert alive[-1] <= alive[0], alive


def test_training_run_after_run_keeps_one_widget_per_control(digits_split):
    # Streamlit keeps a session's widget metadata for every widget id it has seen; an unkeyed widget's id changes
    # with its label, help and options (a slider's with its range), so Start (whose help names the run still
    # training), Run shown (whose options list the runs) and the epoch slider (a key per run, its range growing
    # each epoch) made new widgets with every run and epoch: +68 a minute in a 2-hour soak of 20 students
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    runs, known = {}, []
    for i in range(4):
        job = _shown_run(at, runs, digits_split, f"run #{i}", epochs=500)
        while len(job.reports) < 2:
            time.sleep(0.05)
        at.switch_page("app_pages/train.py").run()  # drawn while the run trains: Start's help names it
        while len(job.reports) < 4:
            time.sleep(0.05)
        at.run()  # and again two epochs later: the epoch slider has more epochs to show
        job.stop()
        job.join(TIMEOUT)
        assert not at.exception
        start = next(b for b in at.button if b.label == "Start training")
        assert start.disabled and job.name in start.help
        assert i == 0 or next(s for s in at.selectbox if s.label == "Run shown").options[0] == job.name
        assert next(s for s in at.slider if s.label == "Epoch shown").value >= 4
        known.append(_tracked(lambda o: type(o).__name__ == "WidgetMetadata"))
    assert known[-1] <= known[1], known
    # the slider spans the run's 500 epochs but stops at the last one trained
    next(s for s in at.slider if s.label == "Epoch shown").set_value(400).run()
    assert next(s for s in at.slider if s.label == "Epoch shown").value == len(job.reports) < 400
