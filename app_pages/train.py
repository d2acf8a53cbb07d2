"""Train: pick an autoencoder type, tune it, and watch it learn live in a background job."""
from __future__ import annotations

import math
import re

import streamlit as st
import torch

import aecore as ae
from aecore import viz
from aecore.models import ACTIVATIONS, LOSSES, NOISES, SCHEDULES
from app_pages.common import (METRIC_WIDTH, add_run, as_text, context, dataset_family, load_dataset, session_runs,
                               wrapping_columns, wrapping_row)

MAX_TRAIN = 10_000  # a shared classroom server trains on at most this many images per run
MAX_VAL = 2_000
REFRESH_SECONDS = 1.0
PLOT_HEIGHT = 420

LABELS = {"vanilla": "vanilla", "deep": "deep", "conv": "convolutional", "sparse": "sparse",
          "denoising": "denoising", "vae": "variational", "conv-vae": "conv variational", "linear": "linear (PCA)"}
ALIASES = {"convolutional": "conv", "variational": "vae"}
MODEL_FIELDS = ("code_size", "hidden", "activation", "sparsity", "sparsity_weight", "sparsity_rho", "beta")
TRAIN_FIELDS = ("loss", "noise", "noise_level", "epochs", "batch_size", "lr", "schedule", "pretrain_epochs")
KEPT_ACROSS_TYPES = ("epochs", "batch_size", "lr", "schedule")  # a teacher's run length survives a type change
# the URL's short names; a link such as ?preset=vae&code=2&beta=4 opens those settings
QUERY = {"code_size": "code", "hidden": "layers", "activation": "act", "loss": "loss", "noise": "noise",
         "noise_level": "level", "sparsity": "penalty", "sparsity_weight": "weight", "sparsity_rho": "rho",
         "beta": "beta", "epochs": "epochs", "batch_size": "batch", "lr": "lr", "schedule": "schedule",
         "pretrain_epochs": "pretrain"}
BOUNDS = {"code_size": (1, 1024), "epochs": (1, 100), "batch_size": (1, 4096), "lr": (1e-5, 1.0),
          "noise_level": (0.0, 1.0), "sparsity_weight": (0.0, 10.0), "sparsity_rho": (0.01, 0.5),
          "beta": (0.0, 100.0), "pretrain_epochs": (0, 20)}
CHOICES = {"activation": [*ACTIVATIONS, "none"], "loss": list(LOSSES), "noise": [n for n in NOISES if n != "none"],
           "sparsity": ["l1", "kl"], "schedule": list(SCHEDULES)}
MAX_LAYERS = 4
DENSE_WIDTHS = [8, 16, 32, 64, 128, 256, 512, 1024]
CONV_CHANNELS = [4, 8, 16, 32, 64]
LRS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
BATCHES = [16, 32, 64, 128, 256, 512, 1024]
SPARSITY_WEIGHTS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0]
BETAS = [0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
FIELD_NAMES = {"code_size": "Code size", "hidden": "Layers", "input_shape": "Layers", "activation": "Activation",
               "loss": "Loss", "noise_level": "Noise level", "sparsity_weight": "Sparsity weight",
               "sparsity_rho": "Target activation", "beta": "Beta", "epochs": "Epochs", "batch_size": "Batch size",
               "lr": "Learning rate", "pretrain_epochs": "Layer-wise pretraining", "sparsity": "Sparsity"}
W = "train_w_"  # prefix of the option widgets' keys, cleared when the type changes


# ---------------------------------------------------------------- settings: defaults, URL, validation

def applicable(name: str) -> set[str]:
    """Return the options that apply to a preset (only these are shown, put in the URL and passed on)."""
    base, train = ae.PRESETS[name]
    opts = {"code_size", "epochs", "batch_size", "lr", "schedule"}
    if base.get("hidden"):
        opts.add("hidden")
    if base.get("activation", "relu") is not None:
        opts |= {"activation", "loss"}
    if train.get("noise"):
        opts |= {"noise", "noise_level"}
    if base.get("sparsity"):
        opts |= {"sparsity", "sparsity_weight", "sparsity_rho"}
    if base.get("bottleneck") == "variational":
        opts.add("beta")
    if name == "deep":
        opts.add("pretrain_epochs")
    return opts


def defaults(name: str, shape) -> dict:
    """Return the settings of a preset on this input shape."""
    model_spec, train_spec = ae.preset(name, shape)
    d = {"preset": name}
    d.update({k: getattr(model_spec, k) for k in MODEL_FIELDS})
    d.update({k: getattr(train_spec, k) for k in TRAIN_FIELDS})
    return d


def _parse(field: str, text: str):
    """Return a URL value as the option's type, or raise ValueError when it is not a valid value."""
    if field == "hidden":
        widths = tuple(int(v) for v in re.split(r"[-,\s]+", text.strip()) if v)
        if not 1 <= len(widths) <= MAX_LAYERS or not all(1 <= v <= 1024 for v in widths):
            raise ValueError
        return widths
    if field in CHOICES:
        if text not in CHOICES[field]:
            raise ValueError
        return None if text == "none" else text
    lo, hi = BOUNDS[field]
    value = int(text) if isinstance(lo, int) else float(text)
    if not lo <= value <= hi:
        raise ValueError
    return value


def settings_from_query(query: dict, shape) -> tuple[dict, list[str]]:
    """Return the settings a link asks for, and one warning per value that could not be used."""
    warnings = []
    name = ALIASES.get(query.get("preset", "conv"), query.get("preset", "conv"))
    if name not in ae.PRESETS:
        warnings.append(f"The link asks for the type {as_text(repr(query['preset']))}, which does not exist; "
                        f"showing convolutional instead (types: {', '.join(ae.PRESETS)}).")
        name = "conv"
    settings = defaults(name, shape)
    fields = applicable(name)
    for field, short in QUERY.items():
        if short not in query:
            continue
        if field not in fields:
            warnings.append(f"The link's {short}={as_text(query[short])} does not apply to a {LABELS[name]} autoencoder; "
                            "it is ignored.")
            continue
        try:
            settings[field] = _parse(field, query[short])
        except ValueError:
            shown = settings[field] if not isinstance(settings[field], tuple) else "-".join(map(str, settings[field]))
            what = FIELD_NAMES.get(field, field).lower()
            warnings.append(f"The link's {short}={as_text(repr(query[short]))} is not a valid {what}; using the default, {shown}.")
    return settings, warnings


def to_query(settings: dict) -> dict[str, str]:
    """Return the URL parameters of the settings that apply to their type."""
    params = {"preset": settings["preset"]}
    for field in sorted(applicable(settings["preset"]), key=list(QUERY).index):
        value = settings[field]
        params[QUERY[field]] = ("-".join(map(str, value)) if isinstance(value, tuple)
                                else "none" if value is None else f"{value:g}" if isinstance(value, float)
                                else str(value))
    return params


def build_specs(settings: dict, shape) -> tuple[ae.ModelSpec, ae.TrainSpec]:
    """Return the validated specs of the settings (the preset, with only its applicable options changed)."""
    fields = applicable(settings["preset"])
    model = {k: settings[k] for k in MODEL_FIELDS if k in fields}
    train = {k: settings[k] for k in TRAIN_FIELDS if k in fields}
    return ae.preset(settings["preset"], shape, model=model, train=train)


def sentence(error: ValueError) -> str:
    """Return a spec's error ('field: message') as one readable sentence."""
    field, _, message = str(error).partition(": ")
    text = f"{FIELD_NAMES.get(field, field.replace('_', ' ').capitalize())}: {message}" if message else str(error)
    return text if text.endswith(".") else text + "."


# ---------------------------------------------------------------- widgets

def _key(field: str, value) -> str:
    """Return the widget key of an option, seeded with its current value when the widget is new."""
    key = W + field
    if key not in st.session_state:
        st.session_state[key] = value
    return key


def _with(options: list, value) -> list:
    return sorted(set(options) | {value})


def _type_changed() -> None:
    ctx = context()
    old = st.session_state["train_settings"]
    new = defaults(st.session_state["train_type"], ctx.dataset.shape if ctx else (1, 28, 28))
    new.update({k: old[k] for k in KEPT_ACROSS_TYPES})
    st.session_state["train_settings"] = new
    for key in [k for k in st.session_state if k.startswith(W)]:
        del st.session_state[key]


def layer_controls(s: dict) -> None:
    """Draw the layer count and the width of each layer (nodes for dense models, channels for conv ones)."""
    conv = ae.PRESETS[s["preset"]][0]["arch"] == "conv"
    count = st.slider("Convolutional layers" if conv else "Hidden layers", 1, MAX_LAYERS,
                      key=_key("layers", len(s["hidden"])),
                      help="each conv layer halves the image side" if conv else "the decoder mirrors these layers")
    widths, choices = [], CONV_CHANNELS if conv else DENSE_WIDTHS
    for i in range(count):
        previous = widths[-1] if widths else choices[-1]
        fallback = min(choices, key=lambda c: abs(c - (previous * 2 if conv else previous // 2)))
        start = s["hidden"][i] if i < len(s["hidden"]) else fallback
        key = _key(f"layer_{i}", start)
        widths.append(st.select_slider(f"{'Channels' if conv else 'Nodes'} in layer {i + 1}",
                                       _with(choices, st.session_state[key]), key=key))
    s["hidden"] = tuple(widths)


def model_controls(s: dict, fields: set[str], input_size: int) -> None:
    """Draw the model options that apply to the chosen type."""
    s["code_size"] = st.number_input("Code size", 1, BOUNDS["code_size"][1], step=1,
                                     key=_key("code_size", s["code_size"]),
                                     help=f"values in the bottleneck; an image here has {input_size:,}")
    if "hidden" in fields:
        layer_controls(s)
    if "activation" in fields:
        names = CHOICES["activation"]
        s["activation"] = st.selectbox("Activation", names, key=_key("activation", s["activation"] or "none"),
                                       help="'none' makes every layer linear (and then needs the MSE loss)")
        s["activation"] = None if s["activation"] == "none" else s["activation"]
    if "sparsity" in fields:
        s["sparsity"] = st.radio("Sparsity penalty", CHOICES["sparsity"], horizontal=True,
                                 key=_key("sparsity", s["sparsity"]),
                                 format_func={"l1": "L1 on the code", "kl": "KL towards a target"}.get)
        s["sparsity_weight"] = st.select_slider("Sparsity weight", _with(SPARSITY_WEIGHTS, s["sparsity_weight"]),
                                                key=_key("sparsity_weight", s["sparsity_weight"]),
                                                format_func=lambda v: f"{v:g}")
        if s["sparsity"] == "kl":
            s["sparsity_rho"] = st.slider("Target activation ρ", *BOUNDS["sparsity_rho"], step=0.01,
                                          key=_key("sparsity_rho", s["sparsity_rho"]),
                                          help="the mean activation each code unit is pushed towards")
    if "beta" in fields:
        s["beta"] = st.select_slider("β (weight of the KL term)", _with(BETAS, s["beta"]),
                                     key=_key("beta", s["beta"]), format_func=lambda v: f"{v:g}",
                                     help="β > 1 trades sharper images for a tidier, more disentangled code")


def train_controls(s: dict, fields: set[str]) -> None:
    """Draw the training options that apply to the chosen type."""
    if "loss" in fields:
        s["loss"] = st.radio("Reconstruction loss", CHOICES["loss"], horizontal=True, key=_key("loss", s["loss"]),
                             format_func={"bce": "binary cross-entropy", "mse": "mean squared error"}.get)
    else:
        st.caption("Loss: mean squared error (a linear output has no sigmoid for cross-entropy).")
    if "noise" in fields:
        s["noise"] = st.selectbox("Noise added to the inputs", CHOICES["noise"], key=_key("noise", s["noise"]))
        s["noise_level"] = st.slider("Noise level", 0.0, 1.0, step=0.05, key=_key("noise_level", s["noise_level"]))
    s["epochs"] = st.slider("Epochs", *BOUNDS["epochs"], key=_key("epochs", s["epochs"]))
    s["batch_size"] = st.select_slider("Batch size", _with(BATCHES, s["batch_size"]),
                                       key=_key("batch_size", s["batch_size"]))
    s["lr"] = st.select_slider("Learning rate", _with(LRS, s["lr"]), key=_key("lr", s["lr"]),
                               format_func=lambda v: f"{v:g}")
    s["schedule"] = st.radio("Learning-rate schedule", CHOICES["schedule"], horizontal=True,
                             key=_key("schedule", s["schedule"]),
                             help="cosine decays the rate to zero by the last epoch")
    if "pretrain_epochs" in fields:
        s["pretrain_epochs"] = st.slider("Layer-wise pretraining epochs", *BOUNDS["pretrain_epochs"],
                                         key=_key("pretrain_epochs", s["pretrain_epochs"]),
                                         help="first train each layer alone as a shallow autoencoder (0: off)")


def shape_panel(model_spec: ae.ModelSpec | None, error: str | None) -> None:
    """Draw the hourglass and its numbers, or the reason the settings cannot be trained."""
    if model_spec is None:
        st.error(error)
        return
    st.plotly_chart(viz.hourglass_figure(model_spec, height=240), width="stretch",
                    config={"displayModeBar": False}, key="train_hourglass")
    numbers = st.container(horizontal=True)  # metrics as wide as their numbers, so a six-digit count is not cut
    n = model_spec.param_count()
    numbers.metric("Parameters", f"{n:,}" if n < 1_000_000 else f"{n / 1e6:.2f} M",
                   help=f"{n:,} weights and biases the training will tune", width="content")
    numbers.metric("Compression", f"{model_spec.input_size / model_spec.code_size:.1f}×",
                   help="input size / code size; below 1 the code is overcomplete (only sparse models may be)",
                   width="content")
    numbers.metric("Code", f"{model_spec.code_size:,}", help="values in the bottleneck", width="content")
    st.caption(f"{model_spec.input_size:,} input values → a code of {model_spec.code_size:,} → "
               f"{model_spec.input_size:,} output values.")
    if error:
        st.error(error)


# ---------------------------------------------------------------- runs

@st.cache_resource(max_entries=4, show_spinner="Splitting the data set…")
def training_split(name: str) -> tuple[ae.ImageDataset, ae.ImageDataset, int, int]:
    """Return the (train, validation) images a run uses, capped for a shared server, and both uncapped sizes."""
    train, val = load_dataset(name).split(0.9, seed=0)
    return train.subset(slice(0, MAX_TRAIN)), val.subset(slice(0, MAX_VAL)), len(train), len(val)


def start_run(ctx, settings: dict, model_spec: ae.ModelSpec, train_spec: ae.TrainSpec) -> None:
    """Start a background training job on the sidebar's data set and make it the run shown."""
    runs = session_runs()
    count = st.session_state.get("train_count", 0)
    name = None
    while name is None or name in runs:
        count += 1
        name = f"{settings['preset']} z{model_spec.code_size} #{count}"
    st.session_state["train_count"] = count
    train, val, _, _ = training_split(ctx.dataset_name)
    job = ae.jobs.TrainingJob(name, ctx.dataset_name, train, val, model_spec, train_spec)
    st.session_state.setdefault("train_presets", {})[name] = settings["preset"]
    add_run(job.start())
    st.session_state["train_shown"] = name


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


def _last_val(job) -> float | None:
    history = job.history_so_far
    return history[-1].get("val", history[-1]["train"])["total"] if history else None


def runs_table() -> None:
    """Draw this session's runs with their status and final validation loss."""
    rows = []
    for name, job in session_runs().items():
        val = _last_val(job)
        rows.append({"run": name, "data set": dataset_family(job.dataset_name), "status": job.status,
                     "epochs": f"{len(job.reports)}/{job.train_spec.epochs}",
                     "val loss": None if val is None else round(val, 4),
                     "parameters": f"{job.model_spec.param_count():,}",
                     "time": _duration(job.finished - job.started if job.started and job.finished else None)})
    if rows:
        st.subheader("This session's runs")
        st.dataframe(rows, hide_index=True, width="stretch")


def status_line(job) -> None:
    """Draw the job's state, progress bar, epoch and ETA."""
    epochs, done = job.train_spec.epochs, len(job.reports)
    if job.status == "queued":
        st.info(f"Waiting for a free training slot: number {job.queue_position} in the queue "
                f"(this server trains {ae.jobs.MAX_JOBS} model(s) at once).")
    elif job.status == "running":
        phase = ("Layer-wise pretraining…" if job.train_spec.pretrain_epochs and not done
                 else f"Epoch {min(done + 1, epochs)} of {epochs} running"
                 + ("" if done else ": the curves and pictures appear when it ends"))
        st.progress(job.progress, text=f"{phase} · {done} done · about {_duration(job.eta_seconds)} left"
                    if done else phase)
    elif job.status == "failed":
        st.error(job.error or "Training failed.")
    elif job.status == "stopped":
        st.warning(f"Stopped after {done} of {epochs} epochs; the weights of epoch {job.best_epoch}, the best so far, "
                   "are kept." if job.best_epoch else f"Stopped before the first epoch ended.")
    else:
        st.progress(1.0, text=f"All {epochs} epochs done in {_duration(job.finished - job.started)}")


def live_metrics(job) -> None:
    """Draw the latest epoch's numbers."""
    last = job.reports[-1]
    row = wrapping_row()
    row.metric("Epoch", f"{last['epoch']} / {job.train_spec.epochs}", width=METRIC_WIDTH)
    row.metric("Train loss", f"{last['train']['total']:.4g}", width=METRIC_WIDTH)
    row.metric("Validation loss", f"{last['val']['total']:.4g}" if "val" in last else "–", width=METRIC_WIDTH)
    row.metric("Samples / second", f"{last['samples_per_s']:,.0f}", width=METRIC_WIDTH)


def shown_terms(history: list[dict]) -> list[dict]:
    """Return the history without the total when it is the reconstruction term alone (one line, not two on top)."""
    if not history or set(history[0]["train"]) != {"reconstruction", "total"}:
        return history
    drop = lambda terms: {k: v for k, v in terms.items() if k != "total"}  # noqa: E731
    return [{**h, **{split: drop(h[split]) for split in ("train", "val") if split in h}} for h in history]


def epoch_picker(job) -> int:
    """Return the epoch to show: the latest unless the slider was moved back, which then stays put."""
    # a run stopped early ends at its last epoch trained, else the slider would offer epochs that never came
    n, total = len(job.reports), len(job.reports) if job.done else max(job.train_spec.epochs, len(job.reports))
    if total == 1:
        return 1
    # one key for every run, and the run's whole length as the range: Streamlit keeps a session's widget metadata for
    # every widget id it has seen, and a slider's id changes with its range, so a key per run, or a range growing
    # with each epoch, made a new widget every epoch of every run (a stopped run's one change of range adds one)
    state = st.session_state
    seen_run, seen_n = state.get("train_epoch_seen", (None, None))
    if seen_run != job.name or state.get("train_epoch") in (None, seen_n) or state["train_epoch"] > n:
        state["train_epoch"] = n  # another run, a new epoch while the latest was shown, or one not trained yet
    state["train_epoch_seen"] = (job.name, n)
    return st.slider("Epoch shown", 1, total, key="train_epoch",
                     help="scrub back to watch the codes and images form; it stops at the latest epoch trained")


def epoch_views(job) -> None:
    """Draw the loss curves, the code map and the reconstructions strip at the chosen epoch."""
    epoch = epoch_picker(job)
    report = job.reports[epoch - 1]
    left, right = wrapping_columns("train_charts", (420, 280))
    with left:
        fig = viz.loss_figure(shown_terms(job.history_so_far), title="Loss per image (train solid, validation dashed)")
        fig.add_vline(x=epoch, line=dict(color="#999999", dash="dot"))
        fig.update_layout(height=PLOT_HEIGHT)
        st.plotly_chart(fig, width="stretch", key=f"train_loss_{job.name}")
    with right:
        frame = report["map"]
        labels = job.val.labels[:len(frame)].numpy() if job.val.labels is not None else None
        ranges = viz.frame_ranges([r["map"] for r in job.reports])
        st.plotly_chart(viz.scatter_figure(frame, labels, job.val.classes, ranges=ranges, height=PLOT_HEIGHT,
                                           title=f"Codes of {len(frame)} validation images, epoch {epoch}"),
                        width="stretch", key=f"train_map_{job.name}")
    strip = viz.tile(torch.cat([report["inputs"], report["reconstructions"]]), ncols=len(report["inputs"]), cell=72)
    st.image(strip, caption=f"Validation inputs (top) and their reconstructions (bottom) after epoch {epoch}",
             output_format="PNG")


def preset_of(job) -> str:
    """Return the type a run of this session was started as."""
    return st.session_state.get("train_presets", {}).get(job.name, job.model_spec.arch)


def _use_model(name: str) -> None:
    st.session_state["model_label"] = f"this session: {name}"


def _follow_run_shown() -> None:
    st.session_state["train_shown"] = st.session_state["train_run_shown"]


def finished_panel(job) -> None:
    """Draw the final metrics, the download and the way to the other pages."""
    finals = st.session_state.setdefault("train_final", {})  # run name: (metrics, model file bytes)
    for gone in set(finals) - set(session_runs()):  # runs dropped beyond MAX_RUNS take their files with them
        del finals[gone]
    if job.name not in finals:
        metrics = ae.evaluate(job.model, job.val)
        dataset = {"name": job.dataset_name, "shape": list(job.model_spec.input_shape), "classes": job.val.classes}
        extra = {"preset": preset_of(job), "trained_in": "Autoencoder Explorer"}
        finals[job.name] = (metrics, ae.to_bytes(job.model, train_spec=job.train_spec, history=job.history,
                                                 dataset=dataset, metrics=metrics, extra=extra))
    metrics, data = finals[job.name]
    if job.status == "done":
        st.success(f"Training finished: {job.name} is in the sidebar's model list as “this session: {job.name}”.")
    if metrics["spread"] < ae.metrics.COLLAPSED_SPREAD:
        st.warning(f"The reconstructions barely change from one image to the next ({metrics['spread']:.1%} of the "
                   "inputs' variation): the model gives nearly the same average image for every input. More epochs "
                   "help a model that has barely started; one that collapsed needs a lower learning rate than "
                   f"{job.train_spec.lr:g}" + (" or a smaller β." if job.model_spec.variational else "."))
    if job.best_epoch != len(job.history):
        st.info(f"The model keeps the weights of epoch {job.best_epoch}, where the validation loss was lowest.",
                icon=":material/history:")
    row = wrapping_row()
    row.metric("Training time", _duration(job.finished - job.started), width=METRIC_WIDTH)
    row.metric("MSE", f"{metrics['mse']:.4f}", help="mean squared error per pixel on the validation images",
               width=METRIC_WIDTH)
    row.metric("PSNR", f"{metrics['psnr']:.1f} dB", help="peak signal-to-noise ratio: higher is better",
               width=METRIC_WIDTH)
    row.metric("SSIM", f"{metrics['ssim']:.3f}", help="structural similarity: 1 is a perfect copy", width=METRIC_WIDTH)
    actions = st.container(horizontal=True, vertical_alignment="center")
    # the run panel's widgets keep one key whichever run is shown: Streamlit keeps a session's widget metadata (with
    # its callbacks, and through them this page's whole namespace) for every key it has seen, so a key per run grew
    # a session's memory with every run it trained
    file_name = f"{dataset_family(job.dataset_name)}-{re.sub(r'[^A-Za-z0-9]+', '-', job.name).strip('-')}.safetensors"
    actions.download_button("Download .safetensors", data, file_name=file_name, mime="application/octet-stream",
                            icon=":material/download:", on_click="ignore", key="train_dl")
    ctx = context()
    if ctx and dataset_family(ctx.dataset_name) == dataset_family(job.dataset_name):
        if actions.button("Use it on every page", key="train_use", on_click=_use_model, args=(job.name,),
                          help="selects this model in the sidebar"):
            st.rerun()
    actions.page_link("app_pages/reconstruct.py", label="Reconstruct with it", icon=":material/compare:")
    actions.page_link("app_pages/denoise.py", label="Denoise with it", icon=":material/auto_fix_high:")


def run_panel() -> None:
    """Draw the shown run: status, progress, live curves, code map, reconstructions; reruns the app once it ends."""
    job = session_runs().get(st.session_state.get("train_shown"))
    if job is None:
        st.info("Press **Start training** to train this model here and watch it learn, epoch by epoch.")
        return
    refreshed = st.session_state.setdefault("train_refreshed", set())
    refreshed &= set(session_runs())  # names of runs dropped beyond MAX_RUNS go with them
    if job.done and job.name not in refreshed:
        refreshed.add(job.name)
        st.rerun()  # the whole app, so the sidebar lists the new model and the page stops refreshing
    head = st.container(horizontal=True, vertical_alignment="center")  # the button keeps its width, the name wraps
    head.subheader(f"Run: {job.name}")
    if not job.done and head.button("Stop", icon=":material/stop_circle:", key="train_stop",
                                    help="ends training after the current step and keeps the best weights so far"):
        job.stop()
    status_line(job)
    if job.reports:
        live_metrics(job)
    if job.usable:
        finished_panel(job)
    if job.reports:
        epoch_views(job)
    runs_table()


# ---------------------------------------------------------------- the page

ctx = context()
st.title("Train an autoencoder")
if ctx is None:
    st.info("Pick a data set that loads in the sidebar to train a model on it.")
    st.stop()
shape = ctx.dataset.shape
if "train_settings" not in st.session_state:
    st.session_state["train_settings"], st.session_state["train_link_warnings"] = settings_from_query(
        dict(st.query_params), shape)
link_warnings = st.session_state.pop("train_link_warnings", [])
if link_warnings:
    st.warning("This link asked for settings that cannot be used:\n" + "\n".join(f"- {w}" for w in link_warnings),
               icon=":material/link_off:")
settings = st.session_state["train_settings"]

if "train_type" not in st.session_state:
    st.session_state["train_type"] = settings["preset"]
kind = st.segmented_control("Type", list(ae.PRESETS), required=True, format_func=LABELS.get, key="train_type",
                            on_change=_type_changed)
settings["preset"] = kind
description = ae.PRESET_DESCRIPTIONS[kind]
st.caption(description[0].upper() + description[1:] + ".")
fields = applicable(kind)

# fixed widths, so that on a narrow window the shape moves below the controls instead of squeezing all three
top = st.container(horizontal=True, gap="small")
controls = top.container(horizontal=True, gap="small", width=436)  # all three side by side from 1280 px wide
col_model, col_train, col_shape = controls.container(width=210), controls.container(width=210), top.container(width=360)
with col_model:
    st.markdown("**Model**")
    model_controls(settings, fields, math.prod(shape))
with col_train:
    st.markdown("**Training**")
    train_controls(settings, fields)

train_set, val_set, full_train, full_val = training_split(ctx.dataset_name)
model_spec = train_spec = error = None
try:
    model_spec, train_spec = build_specs(settings, shape)
    ae.jobs.check_settings(model_spec, train_spec, len(train_set))
except ValueError as e:
    error = sentence(e)
busy = [j.name for j in session_runs().values() if not j.done]
with col_shape:
    st.markdown("**Shape**")
    shape_panel(model_spec, error)
    # a key, like every widget here whose label, help or options name a run: without one Streamlit makes a new
    # widget (and keeps its metadata for the session's life) each time they change
    if st.button("Start training", type="primary", icon=":material/play_arrow:", disabled=bool(error or busy),
                 help=f"{busy[0]} is still training: stop it or let it finish" if busy else None, width="stretch",
                 key="train_start"):
        start_run(ctx, settings, model_spec, train_spec)
        st.rerun()  # so Start is drawn disabled while the run trains
    capped = full_train > len(train_set)
    st.caption(f"On **{dataset_family(ctx.dataset_name)}**: {len(train_set):,} training images"
               + (f" (the first {MAX_TRAIN:,} of {full_train:,})" if capped else "")
               + f", {len(val_set):,} for validation.")

with st.expander("Show the code", icon=":material/code:"):
    if error:
        st.info("Fix the settings first: " + error)
    else:
        st.markdown("The command line, trained on the same split:")
        st.code(ae.cli.train_command(ctx.dataset_name, kind, model_spec, train_spec), language="bash", wrap_lines=True)
        if capped:
            st.caption(f"The command trains on all {full_train:,} training images; the Python below caps them as "
                       "this page does.")
        st.markdown("The same run in Python:")
        st.code(ae.cli.python_snippet(ctx.dataset_name, kind, model_spec, train_spec,
                                      max_train=MAX_TRAIN if capped else None,
                                      max_val=MAX_VAL if full_val > MAX_VAL else None),
                language="python")

runs = session_runs()
if len(runs) > 1:
    names = list(runs)[::-1]
    shown = st.session_state.get("train_shown")
    # the widget follows train_shown, which also survives visits to other pages (a widget's own state does not)
    st.session_state["train_run_shown"] = shown if shown in names else names[0]
    st.session_state["train_shown"] = st.selectbox("Run shown", names, key="train_run_shown",
                                                   on_change=_follow_run_shown)

any_running = any(not j.done for j in runs.values())
st.fragment(run_every=REFRESH_SECONDS if any_running else None)(run_panel)()

params = to_query(settings)
if dict(st.query_params) != params:
    st.query_params.from_dict(params)
