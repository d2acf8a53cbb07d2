"""What every page shares: the sidebar (data set, model, device), cached data and models, small helpers."""
from __future__ import annotations

import ctypes
import gc
import itertools
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

import aecore as ae
from aecore import sweeps

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "pretrained"
MAX_RUNS = 8  # runs kept per browser session; the oldest is dropped beyond this
MAX_UPLOADS = 4  # model files opened per browser session, likewise
METRIC_WIDTH = 170  # fixed, so a row of numbers wraps on a narrow window and does not jump as they change
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def as_text(value) -> str:
    """Return what a person typed or uploaded (a file name, a link's value) with Markdown's special characters
    escaped, so that st.error, st.warning and st.markdown show it as plain text: never a link, image or colour."""
    return _MARKDOWN.sub(r"\\\1", str(value))


@dataclass
class Context:
    dataset_name: str
    dataset: ae.ImageDataset
    model: ae.Autoencoder | None
    model_label: str | None


# the pages' settings, by widget key: Streamlit forgets a widget's value in a run that does not draw it (a run of
# another page), so `keep_page_settings` writes these back at the start of every run and a person finds each page
# as they left it. Buttons, uploads, charts and tables are not settings (and Streamlit refuses to set them). Those
# whose choices come from the data set have a key per data set (`data_key`), which these names begin.
PAGE_SETTINGS = (
    "lat_n", "lat_method", "lat_dims", "lat_perplexity", "lat_neighbors", "lat_min_dist", "lat_colour",
    "rec_order", "rec_count", "rec_class", "rec_start", "rec_foreign", "rec_fit", "rec_invert", "rec_tool", "rec_pen",
    "dn_kind", "dn_filter", "dn_other", "dn_level_gaussian", "dn_level_salt-pepper", "dn_level_masking",
    "vae_steps", "vae_start", "vae_temp", "vae_n", "vae_grid", "vae_anim", "vae_ms",
    "cmp_code_preset", "cmp_code_sizes", "cmp_code_epochs", "cmp_code_cap", "cmp_noise_preset", "cmp_noise_kind",
    "cmp_noise_level", "cmp_noise_code", "cmp_noise_epochs", "cmp_noise_cap", "cmp_noise_plain", "cmp_noise_sidebar",
    "cmp_models", "cmp_n", "cmp_kind", "cmp_level", "cmp_errors",
)


def keep_page_settings() -> None:
    """Keep every page's settings across visits to other pages (see PAGE_SETTINGS), each data set's its own."""
    for key in list(st.session_state):
        if key.split("@")[0] in PAGE_SETTINGS:
            st.session_state[key] = st.session_state[key]


def data_key(name: str) -> str:
    """Return the widget key of a page setting whose choices come from the data set (its size, classes, models).

    One key per data set: another data set gets new widgets at the page's defaults, and going back to the first finds
    its settings again. (Dropping a widget's key from the session state reset the value the page used, but the
    browser went on showing the old one.)
    """
    return f"{name}@{st.session_state.get('dataset_label', '')}"


def wrapping_row(gap: str = "medium"):
    """Return a row for elements of fixed widths (metrics with METRIC_WIDTH, a page's controls): side by side, and
    wrapping to the next line where the window is narrow, where st.columns would squeeze and cut them off."""
    return st.container(horizontal=True, gap=gap)


def wrapping_columns(key: str, min_widths: tuple[int, ...], gap: str = "medium") -> list:
    """Return containers side by side that share the row in proportion to min_widths, each at least its min width.

    Where the row is narrower than their sum (a narrow window, the sidebar open), each takes a line of its own at the
    row's full width, where st.columns would squeeze a chart into a strip. Streamlit has no such column, so a style
    rule sets the flex of each container's wrapper (`flex_style`).
    """
    row = st.container(horizontal=True, gap=gap, key=key)
    st.html(flex_style(key, min_widths))  # a style alone goes to Streamlit's event container: it takes no space
    return [row.container(key=f"{key}-{i}") for i in range(len(min_widths))]


def flex_style(key: str, min_widths: tuple[int, ...]) -> str:
    """Return the <style> that gives the i-th container of the row `key` the flex `w 1 w px`, w = min_widths[i]."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", key) or not all(isinstance(w, int) and w > 0 for w in min_widths):
        raise ValueError(f"flex_style: a row needs a plain key and positive integer widths, not {key!r}, {min_widths}")
    rules = (f".st-key-{key} > :has(> .st-key-{key}-{i}) {{ flex: {w} 1 {w}px; }}" for i, w in enumerate(min_widths))
    return f"<style>{' '.join(rules)}</style>"


def dataset_family(name: str) -> str:
    """Return the data set a name refers to, so `idx:.../mnist` and `mnist` match the same models."""
    return Path(name[4:]).name if name.startswith("idx:") else name


def dataset_options() -> dict[str, str]:
    """Return {label: load_dataset name}: the embedded sets, IDX folders found in the data directory, downloads."""
    options = {name: name for name in ae.EMBEDDED}
    root = ae.data_dir()
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*idx3-ubyte*"))):
            options[f"{folder.name} (IDX files)"] = f"idx:{folder}"
    options.update({f"{name} (torchvision)": name for name in ae.DOWNLOADABLE})
    return options


@st.cache_resource(show_spinner="Loading the data set…", max_entries=8)
def load_dataset(name: str) -> ae.ImageDataset:
    """Return a data set, loaded once per server (read-only, shared by every session)."""
    return ae.load_dataset(name)


@st.cache_resource(max_entries=32)
def load_pretrained(path: str) -> ae.Autoencoder:
    """Return a pretrained model, loaded once per server."""
    return ae.load(path)


@st.cache_data(ttl=60)
def pretrained_cards() -> dict[str, dict]:
    """Return {readable name: {path, family, spec}} for the shipped models."""
    rows = {}
    for row in ae.cli.model_rows(PRETRAINED):
        if "error" not in row:
            label = f"{dataset_family(row['dataset'])} · {row['type']} · code {row['code']}"
            rows[label] = {"path": str(PRETRAINED / row["file"]), "family": dataset_family(row["dataset"])}
    return rows


def session_runs() -> dict:
    """Return this browser session's training runs, by name (its own: no session sees another's)."""
    return st.session_state.setdefault("runs", {})


@st.cache_resource
def umap_warm_up() -> threading.Thread | None:
    """Return the background thread, started once per server, that readies training and compiles UMAP early."""
    if os.environ.get("AECORE_WARM_UP", "1") == "0":  # the test suite trains on both cores instead
        return None

    def warm():
        # the first optimizer in a process imports torch._dynamo (seconds); do it before anyone presses Start
        torch.optim.Adam([torch.zeros(1, requires_grad=True)])
        seconds = ae.projection.warm_up_umap()
        # Streamlit's full collection after every run is off (.streamlit/config.toml: it held the GIL ~0.3 s a run);
        # Python's own full collections then scan every object, and wait until new long-lived objects reach a
        # quarter of them. Freezing what start-up made (modules, compiled code: ~0.7 M objects) keeps them out of
        # every later collection, so full collections come often and cost little, and garbage cycles stay few.
        gc.collect()
        gc.freeze()
        logging.getLogger("aecore").info("UMAP warmed up in %.1f s; %d start-up objects frozen", seconds,
                                         gc.get_freeze_count())

    thread = threading.Thread(target=warm, name="umap-warm-up", daemon=True)
    thread.start()
    return thread


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc's malloc_trim; elsewhere nothing to do).

    Freed tensors and pictures stay in glibc's per-thread arenas (training jobs and script runs are threads): in an
    hour-long soak they held 226 MiB of free memory that the server's RSS kept (docs/load-soak.md).
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


@st.cache_resource
def orphan_watchdog() -> threading.Thread:
    """Return the one server-wide thread that stops the training jobs of browser sessions that have closed, and
    every minute hands free heap memory back to the system."""
    def watch():
        for n in itertools.count(1):
            time.sleep(5)
            if Runtime.exists():
                ae.jobs.stop_orphaned(Runtime.instance().is_active_session)
            if n % 12 == 0:
                release_free_heap()

    thread = threading.Thread(target=watch, name="orphan-watchdog", daemon=True)
    thread.start()
    return thread


def add_run(job) -> None:
    """Keep a new run in this session, dropping finished ones beyond MAX_RUNS: those without usable weights (failed,
    or stopped before an epoch) first, then the oldest."""
    ctx = get_script_run_ctx()
    if ctx is not None:
        orphan_watchdog()
        ae.jobs.register(job, ctx.session_id)
    runs = session_runs()
    runs[job.name] = job
    finished = sorted((k for k, j in runs.items() if j.done), key=lambda k: runs[k].usable)  # stable: oldest first
    while len(runs) > MAX_RUNS and finished:
        dropped = finished.pop(0)
        what = "the oldest run" if runs[dropped].usable else "a run without trained weights"
        del runs[dropped]
        st.toast(f"Dropped {what}, {dropped}, to keep memory bounded.")


def model_options(family: str) -> dict[str, tuple[str, object]]:
    """Return {label: (kind, ref)} of the models for a data set: pretrained ones, then this session's runs."""
    options = {f"pretrained: {label}": ("pretrained", card["path"])
               for label, card in pretrained_cards().items() if card["family"] == family}
    for name, job in session_runs().items():
        # a run stopped before its first epoch has no trained weights to offer
        if dataset_family(job.dataset_name) == family and job.usable:
            options[f"this session: {name}"] = ("run", name)
    for name, model in session_uploads().items():
        if dataset_family(model.card["dataset"].get("name", "")) == family:
            options[f"opened: {name}"] = ("upload", name)
    return options


def load_option(kind: str, ref) -> ae.Autoencoder:
    """Return the model of an entry of `model_options`: a pretrained file, a run of this session or an opened file."""
    if kind == "pretrained":
        return load_pretrained(ref)
    return session_runs()[ref].model if kind == "run" else session_uploads()[ref]


def train_spec_of(kind: str, ref, model: ae.Autoencoder) -> ae.TrainSpec:
    """Return how the model of an entry of `model_options` was trained (a run's spec, else its file's card)."""
    return session_runs()[ref].train_spec if kind == "run" else model.card["train_spec"]


def session_uploads() -> dict:
    """Return the models this browser session opened from .safetensors files, by file name."""
    return st.session_state.setdefault("uploads", {})


def _open_uploaded_model() -> None:
    # a callback runs before the script, so the new model is in the list (and selected) when the sidebar is drawn
    file = st.session_state.get("model_file")
    st.session_state.pop("model_file_error", None)
    st.session_state.pop("model_file_note", None)
    if file is None:
        return
    try:
        model = ae.load(file.getvalue())
    except ae.CheckpointError as e:
        st.session_state["model_file_error"] = f"{as_text(file.name)}: {e}"
        return
    uploads = session_uploads()
    uploads[file.name] = model
    while len(uploads) > MAX_UPLOADS:
        uploads.pop(next(iter(uploads)))
    family = dataset_family(dataset_options().get(st.session_state.get("dataset_label"), "digits"))
    own = dataset_family(model.card["dataset"].get("name", ""))
    if own == family:
        st.session_state["model_label"] = f"opened: {file.name}"
    else:  # it joins another data set's list: say where, or the file seems to have done nothing
        trained_on = as_text(own) if own else "an unnamed data set"
        st.session_state["model_file_note"] = (f"{as_text(file.name)} was trained on {trained_on}: it is in that data "
                                               "set's model list.")


def open_model_file() -> None:
    """Offer to open a .safetensors model file; a file that is not a valid model gets a sentence saying why."""
    st.file_uploader("Open a model file", type=["safetensors"], key="model_file", on_change=_open_uploaded_model,
                     help="A model downloaded from the Train page. Only safetensors is read: nothing in the file "
                          "is ever executed. It joins the model list of the data set it was trained on.")
    if "model_file_error" in st.session_state:
        st.error(st.session_state["model_file_error"])
    if "model_file_note" in st.session_state:
        st.info(st.session_state["model_file_note"])


def sidebar() -> Context | None:
    """Draw the shared sidebar and return the chosen data set and model, or None when the data set fails."""
    with st.sidebar:
        options = dataset_options()
        label = st.selectbox("Data set", list(options), key="dataset_label",
                             help="digits and sprites are embedded; others are read from the data directory")
        name = options[label]
        try:
            ds = load_dataset(name)
        except (FileNotFoundError, ValueError) as e:
            st.error(str(e))
            return None
        st.caption(f"{len(ds):,} images of {ds.shape[1]}×{ds.shape[2]}, {ds.shape[0]} channel(s)"
                   + (f", {len(ds.classes)} classes" if ds.classes else ""))
        models = model_options(dataset_family(name))
        model = model_label = None
        if models:
            # each data set remembers its model: going digits -> mnist -> digits finds the digits model chosen before
            chosen = st.session_state.setdefault("model_by_family", {})
            family = dataset_family(name)
            if st.session_state.get("model_label") not in models and chosen.get(family) in models:
                st.session_state["model_label"] = chosen[family]
            model_label = chosen[family] = st.selectbox("Model", list(models), key="model_label")
            kind, ref = models[model_label]
            try:
                model = load_option(kind, ref)
            except ae.CheckpointError as e:  # a listed file that was removed or replaced since the list was made
                st.error(f"This model could not be loaded: {e}")
                model = None
            if model is not None and model.spec.input_shape != ds.shape:
                st.error(f"This model takes {model.spec.input_shape} images; the data set has {ds.shape}.")
                model = None
            if model is not None:  # the box cuts a long name short, code size included
                st.caption(f"{sweeps.describe(model.spec)} · code of {model.spec.code_size} · "
                           f"{model.spec.param_count():,} parameters")
        else:
            st.info("No model for this data set yet: train one on the Train page.")
        with st.expander("Open a model file"):
            open_model_file()
        device = ae.pick_device()
        st.caption(f"Device: {device.type} · {torch.get_num_threads()} thread(s) · "
                   f"{ae.jobs.MAX_JOBS} training job(s) at once")
    return Context(name, ds, model, model_label)


def context() -> Context | None:
    """Return what the sidebar chose on this run (None when the data set could not be loaded)."""
    return st.session_state.get("ctx")


def require_model() -> Context:
    """Return the context when a model is chosen; otherwise say what to do and stop the page."""
    ctx = context()
    if ctx is None:
        st.stop()
    if ctx.model is None:
        st.info("Pick a model in the sidebar, or train one on the **Train** page first.")
        st.page_link("app_pages/train.py", label="Go to Train", icon=":material/model_training:")
        st.stop()
    return ctx

