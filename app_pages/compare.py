"""Compare: what a bottleneck costs (a code-size sweep against PCA), what noise costs, and models side by side."""
import pandas as pd
import streamlit as st

import aecore as ae
from aecore import sweeps, viz
from app_pages.common import (MAX_RUNS, add_run, context, data_key, dataset_family, load_dataset, load_option,
                          model_options, session_runs, wrapping_columns, wrapping_row)

REFRESH_S = 1.0  # how often a running sweep's table refreshes
EVAL_IMAGES = 500  # held-out images every comparison is measured on
TRAIN_CAPS = [250, 500, 1000, 2000, 5000, 10000]
NOISE_KINDS = ["gaussian", "salt-pepper", "masking"]
STATUS = {"running": "training"}


def job_table(jobs: dict) -> list[dict]:
    """Return one row per job: its status, place in the server's queue, progress and time left."""
    rows = []
    for label, job in jobs.items():
        place = job.queue_position
        eta = job.eta_seconds
        rows.append({"run": str(label), "status": STATUS.get(job.status, job.status),
                     "queue place": str(place) if place else "—", "progress": job.progress,
                     "time left": f"{eta:.0f} s" if eta is not None else "",
                     "note": job.error or ""})
    return rows


def is_running(state) -> bool:
    """Return True while any job of a sweep has not ended."""
    return state is not None and not all(j.done for j in state["jobs"].values())


def monitor(key: str, draw_results) -> None:
    """Show a sweep's jobs, refreshing every second while any runs, and its results as they arrive."""
    state = st.session_state.get(key)
    if state is None:
        return

    @st.fragment(run_every=REFRESH_S if is_running(state) else None)
    def live():
        state = st.session_state[key]
        running = is_running(state)
        st.dataframe(job_table(state["jobs"]), hide_index=True, width="stretch", key=f"{key}_table",
                     column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0,
                                                                                max_value=1.0, format="percent")})
        if running:
            st.button("Stop the sweep", key=f"{key}_stop", icon=":material/stop_circle:", on_click=stop_all,
                      args=(state["jobs"],))
        draw_results(state)
        if not running:
            keep_button(key, state)
        if not running and state.get("live"):
            state["live"] = False  # one last full run turns the refresh off
            st.rerun()

    live()


def stop_all(jobs: dict) -> None:
    """Ask every job of a sweep to stop; each keeps the weights it has."""
    for job in jobs.values():
        job.stop()


def keep(jobs: dict) -> None:
    """Add a sweep's trained models to this session's runs, so the sidebar and Side by side offer them."""
    for job in jobs.values():
        if finished_model(job) is not None and job.name not in session_runs():
            add_run(job)


def keep_button(key: str, state) -> None:
    """Offer to keep the sweep's models, once, as this session's runs."""
    kept = all(job.name in session_runs() for job in state["jobs"].values() if finished_model(job) is not None)
    if st.button("Kept as this session's runs" if kept else "Keep these models as this session's runs",
                 key=f"{key}_keep", disabled=kept, icon=":material/bookmark_add:",
                 help=f"They then appear in the sidebar's model list and in Side by side (at most {MAX_RUNS} runs "
                      "are kept; the oldest go first)"):
        keep(state["jobs"])
        st.rerun()  # the whole app, not just this fragment: the sidebar and Side by side list them at once


def next_number() -> int:
    """Return this session's next sweep number, so the runs of two sweeps never share a name."""
    st.session_state["cmp_count"] = st.session_state.get("cmp_count", 0) + 1
    return st.session_state["cmp_count"]


def start(key: str, jobs: dict, **state) -> None:
    """Stop the page's previous sweep, then queue every job of the new one at once."""
    old = st.session_state.get(key)
    if old is not None:
        stop_all(old["jobs"])
    for job in jobs.values():
        job.start()
    st.session_state[key] = {"jobs": jobs, "live": True, **state}


def finished_model(job):
    """Return a job's model once it has ended with at least one epoch (it holds its best weights), else None."""
    return job.model if job.usable else None


# ---- code size ----------------------------------------------------------------------------------------------------

def code_results(state) -> None:
    """The reconstruction error against code size, beside PCA's, filling in as jobs finish."""
    for k, job in state["jobs"].items():
        model = finished_model(job)
        if model is not None and k not in state["mse"]:
            state["mse"][k] = sweeps.heldout_mse(model, state["test"])
    sizes = list(state["jobs"])
    series = {f"{state['preset']} autoencoder": [state["mse"].get(k) for k in sizes],
              "PCA with as many components": state["pca"]}
    fig = viz.sweep_figure(sizes, series, "code size (values in the bottleneck, log scale)", "held-out MSE per pixel",
                           title=f"What the bottleneck costs on {dataset_family(state['dataset'])}")
    st.plotly_chart(fig, width="stretch", key="cmp_code_fig")
    rows = sweeps.code_size_rows(sizes, state["mse"], state["pca"], state["input_size"])
    st.dataframe(rows, hide_index=True, width="stretch", key="cmp_code_rows",
                 column_config={"compression": st.column_config.NumberColumn(format="%.1f×"),
                                "autoencoder MSE": st.column_config.NumberColumn(format="%.5f"),
                                "PCA MSE": st.column_config.NumberColumn(format="%.5f"),
                                "autoencoder / PCA": st.column_config.NumberColumn(format="%.2f")})
    st.caption(f"Both are measured on the same {len(state['test'])} held-out images and fitted on the same "
               f"{state['n_train']} training images. Where the autoencoder's curve lies below PCA's, its "
               "non-linear code keeps more than the best linear code of that size; PCA catches up as the code grows.")


SETTING_WIDTH = 270  # a sweep's settings, in rows that wrap on a narrow window (wrapping_row)
PRESETS = list(ae.PRESETS)
# the presets' descriptions go in the help of a sweep form's "Model type" box, which would cut them short
PRESET_HELP = "  \n".join(f"**{p}**: {ae.PRESET_DESCRIPTIONS[p]}" for p in PRESETS)


def code_size_tab(ctx) -> None:
    """Settings for a code-size sweep, its live jobs and its curve."""
    st.markdown("Train one small model per code size, all at once in the background, and compare how well each "
                "rebuilds held-out images with **PCA** keeping the same number of values — the curve that shows "
                "what a bottleneck costs.")
    shape = ctx.dataset.shape
    with st.form("cmp_code_form"):
        row = wrapping_row()
        name = row.selectbox("Model type", PRESETS, index=PRESETS.index("deep"), key="cmp_code_preset",
                             width=SETTING_WIDTH, help=PRESET_HELP)
        options = sweeps.code_sizes_for(shape, "deep")
        sizes = row.multiselect("Code sizes", options, default=[k for k in (2, 4, 8, 16, 32) if k in options],
                                key=data_key("cmp_code_sizes"), width=380)  # room for the five sizes chosen at first
        row = wrapping_row()
        epochs = row.slider("Epochs", 1, 100, 20, key="cmp_code_epochs", width=SETTING_WIDTH)
        cap = row.select_slider("Training images (at most)", TRAIN_CAPS, 2000, key="cmp_code_cap", width=SETTING_WIDTH)
        go = st.form_submit_button("Train the sweep", type="primary", icon=":material/play_arrow:", key="cmp_code_go")
    if go:
        if not sizes:
            st.warning("Pick at least one code size.")
        else:
            train, test = sweeps.holdout(ctx.dataset, cap, EVAL_IMAGES)
            try:
                jobs = sweeps.code_size_jobs(name, ctx.dataset_name, train, test, sizes, epochs,
                                             prefix=f"sweep {next_number()}")
            except ValueError as e:
                st.error(str(e))
            else:
                start("cmp_code", jobs, preset=name, dataset=ctx.dataset_name, train=train, test=test, mse={},
                      pca=sweeps.pca_curve(train, test, list(jobs)), n_train=len(train),
                      input_size=ctx.dataset.images[0].numel())
    state = st.session_state.get("cmp_code")
    if state is None or state["dataset"] != ctx.dataset_name:
        if state is not None:
            st.info(f"The last sweep ran on {dataset_family(state['dataset'])}; train a new one for "
                    f"{dataset_family(ctx.dataset_name)}.")
        sizes = sorted(st.session_state.get(data_key("cmp_code_sizes")) or [])
        if sizes:
            curve = pca_preview(ctx.dataset_name, st.session_state.get("cmp_code_cap", 2000), tuple(sizes))
            fig = viz.sweep_figure(sizes, {"PCA with as many components": curve},
                                   "code size (values in the bottleneck, log scale)", "held-out MSE per pixel",
                                   title=f"PCA's curve on {dataset_family(ctx.dataset_name)}")
            st.plotly_chart(fig, width="stretch", key="cmp_code_preview")
            st.caption("PCA needs no training, so its curve is here already; the autoencoder's joins it as each "
                       "model of the sweep finishes.")
        return
    monitor("cmp_code", code_results)


@st.cache_data(max_entries=16, show_spinner=False)
def pca_preview(dataset_name: str, cap: int, sizes: tuple) -> list[float]:
    """Return PCA's curve on a data set's held-out images, before any model has trained."""
    train, test = sweeps.holdout(load_dataset(dataset_name), cap, EVAL_IMAGES)
    return sweeps.pca_curve(train, test, sizes)


# ---- noise level --------------------------------------------------------------------------------------------------

def noise_results(state) -> None:
    """The error against the clean images at each test noise level: noisy input, plain and denoising models."""
    if is_running(state):
        st.caption("The curves appear when both models have trained.")
        return
    if "curves" not in state:
        models = {label: m for label, job in state["jobs"].items() if (m := finished_model(job)) is not None}
        state["models"] = models
        state["curves"] = sweeps.noise_curves(models, state["test"], state["kind"], sweeps.NOISE_LEVELS)
    curves = dict(state["curves"])
    ctx = context()
    model = ctx.model if ctx is not None else None
    include = model is not None and model.spec.input_shape == tuple(state["test"].shape) and st.checkbox(
        f"Also test the sidebar's model ({ctx.model_label})", key="cmp_noise_sidebar")
    if include:
        curves.update({f"sidebar: {ctx.model_label}": sweeps.noise_curves(
            {"m": model}, state["test"], state["kind"], sweeps.NOISE_LEVELS)["m"]})
    fig = viz.sweep_figure(sweeps.NOISE_LEVELS, curves, f"test noise level ({state['kind']})",
                           "MSE per pixel against the clean images", log_x=False,
                           mark=(state["level"], f"trained at {state['level']:g}"),
                           title=f"What noise costs on {dataset_family(state['dataset'])}")
    st.plotly_chart(fig, width="stretch", key="cmp_noise_fig")
    level = st.select_slider("Show examples at noise level", sweeps.NOISE_LEVELS, value=min(
        sweeps.NOISE_LEVELS, key=lambda v: abs(v - state["level"])), key="cmp_noise_show")
    clean = state["test"].images[:10]
    noisy = sweeps.noisy_inputs(clean, state["kind"], level)
    rows = {"clean": clean, "noisy input": noisy} | {label: ae.reconstruct(m, noisy)
                                                     for label, m in state["models"].items()}
    if include:
        rows[f"sidebar: {ctx.model_label}"] = ae.reconstruct(model, noisy)
    for label, images in rows.items():
        st.caption(label)
        st.image(viz.tile(images, ncols=10, cell=56), output_format="PNG")


def noise_tab(ctx) -> None:
    """Settings for a denoising model trained at one level and tested across levels."""
    st.markdown("Train a **denoising** model at one noise level (and the same model without noise), then test both "
                "across levels: how much of the noise does each remove, and how far from its training level does "
                "the denoiser still help?")
    with st.form("cmp_noise_form"):
        row = wrapping_row()
        name = row.selectbox("Model type", PRESETS, index=PRESETS.index("deep"), key="cmp_noise_preset",
                             width=SETTING_WIDTH, help=PRESET_HELP)
        kind = row.selectbox("Noise", NOISE_KINDS, key="cmp_noise_kind", width=SETTING_WIDTH,
                             help="gaussian: the level is the standard deviation; salt-pepper and masking: the "
                                  "fraction of pixels hit")
        level = row.slider("Training noise level", 0.05, 0.8, 0.3, 0.05, key="cmp_noise_level", width=SETTING_WIDTH)
        # one row for all six: two rows of three wrapped into 2 + 1 + 2 + 1 on a window too narrow for three
        code = row.number_input("Code size", 1, ctx.dataset.images[0].numel(),
                                min(32, max(1, ctx.dataset.images[0].numel() // 4)), key=data_key("cmp_noise_code"),
                                width=SETTING_WIDTH)
        epochs = row.slider("Epochs", 1, 100, 20, key="cmp_noise_epochs", width=SETTING_WIDTH)
        cap = row.select_slider("Training images (at most)", TRAIN_CAPS, 2000, key="cmp_noise_cap", width=SETTING_WIDTH)
        plain = st.checkbox("Also train the same model without noise", True, key="cmp_noise_plain")
        go = st.form_submit_button("Train and test", type="primary", icon=":material/play_arrow:", key="cmp_noise_go")
    if go:
        train, test = sweeps.holdout(ctx.dataset, cap, EVAL_IMAGES)
        try:
            jobs = sweeps.noise_jobs(name, ctx.dataset_name, train, test, kind, level, code, epochs, plain=plain,
                                     prefix=f"noise {next_number()}")
        except ValueError as e:
            st.error(str(e))
        else:
            start("cmp_noise", jobs, dataset=ctx.dataset_name, test=test, kind=kind, level=level)
    state = st.session_state.get("cmp_noise")
    if state is not None and state["dataset"] != ctx.dataset_name:
        st.info(f"The last noise sweep ran on {dataset_family(state['dataset'])}; train a new one for "
                f"{dataset_family(ctx.dataset_name)}.")
        return
    monitor("cmp_noise", noise_results)


# ---- side by side -------------------------------------------------------------------------------------------------

def side_by_side_tab(ctx) -> None:
    """Two or more models on the very same inputs, their metrics in one table."""
    options = model_options(dataset_family(ctx.dataset_name))
    if len(options) < 2:
        st.info("Side by side needs two models for this data set: train another on the Train page, or run a "
                "sweep and keep its models as this session's runs.")
        return
    default = [ctx.model_label] if ctx.model_label in options else []
    default += [label for label in options if label not in default][:2 - len(default)]
    chosen = st.multiselect("Models", list(options), default=default, key=data_key("cmp_models"))
    c1, c2, c3, c4 = wrapping_columns("cmp_controls", (180, 200, 180, 170))
    n = c1.slider("Images shown", 4, 16, 8, key="cmp_n")
    kind = c2.selectbox("Corrupt the inputs", ["none"] + NOISE_KINDS, key="cmp_kind")
    level = c3.slider("Noise level", 0.0, 0.8, 0.3, 0.05, key="cmp_level", disabled=kind == "none")
    errors = c4.toggle("Show error maps", key="cmp_errors", help="Under each model's outputs, their error against "
                       "the clean images. Blue: the output is darker; red: brighter; white: right")
    if len(chosen) < 2:
        st.info("Pick two or more models to compare.")
        return
    models = {}
    for label in chosen:
        model = load_option(*options[label])
        if model.spec.input_shape != ctx.dataset.shape:
            st.warning(f"{label} takes {model.spec.input_shape} images, not this data set's {ctx.dataset.shape}; "
                       "it is left out.")
            continue
        models[label.split(": ", 1)[-1]] = model
    if len(models) < 2:
        return
    _, test = sweeps.holdout(ctx.dataset, max_test=EVAL_IMAGES)
    clean = test.images
    inputs = sweeps.noisy_inputs(clean, kind, level) if kind != "none" else clean
    memo = st.session_state.setdefault("cmp_memo", {})
    key = (ctx.dataset_name, tuple((k, id(m)) for k, m in models.items()), kind, level)
    if key not in memo:
        memo.clear()
        with st.spinner("Measuring each model on the held-out images…"):
            memo[key] = sweeps.compare_models(models, clean, inputs)
    rows, outputs = memo[key]
    styled = _styled(rows)
    st.table(styled.hide(axis="index"))  # static: a few rows, every column in view at any width
    noise = f", corrupted by {kind} noise at {level:g}" if kind != "none" else ""
    st.caption(f"Measured on {len(clean)} held-out images{noise}; the best value of each metric is highlighted. "
               "MSE per pixel (lower is better), PSNR in dB and SSIM (higher is better).")
    st.caption("input" + (" (corrupted)" if kind != "none" else ""))
    st.image(viz.tile(inputs[:n], ncols=n, cell=64), output_format="PNG")
    for label, out in outputs.items():
        st.caption(label + (": its outputs, and under them their error against the clean images" if errors else ""))
        st.image(viz.tile(out[:n], ncols=n, cell=64), output_format="PNG")
        if errors:
            st.image(viz.tile(viz.error_rgb(out[:n] - clean[:n]), ncols=n, cell=64), output_format="PNG")


def _styled(rows):
    """Return the metrics table with the best value of each metric highlighted."""
    frame = pd.DataFrame(rows)
    best = "background-color: #d6eadf"
    return (frame.style.highlight_min(subset=["MSE"], props=best)
            .highlight_max(subset=["PSNR (dB)", "SSIM"], props=best)
            .format({"MSE": "{:.5f}", "PSNR (dB)": "{:.2f}", "SSIM": "{:.3f}", "parameters": "{:,}"}))


ctx = context()
st.title("Compare")
if ctx is None:
    st.stop()
tab_code, tab_noise, tab_side = st.tabs(["Code size", "Noise level", "Side by side"])
with tab_code:
    code_size_tab(ctx)
with tab_noise:
    noise_tab(ctx)
with tab_side:
    side_by_side_tab(ctx)
