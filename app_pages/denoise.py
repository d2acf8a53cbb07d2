"""Denoise: add noise, see what the model removes, and compare it with a plain autoencoder and a classical filter."""
from functools import partial

import streamlit as st
import torch

import aecore as ae
from aecore import viz
from aecore.metrics import fingerprint, noise_sweep
from aecore.noise import LEVEL_MAX, gaussian_filter, median_filter
from app_pages.common import (data_key, dataset_family, load_option, model_options, require_model, train_spec_of,
                               wrapping_columns)

SAMPLE = 200  # images the PSNR and SSIM are averaged over
SHOWN = 8
CELL = 88  # pixels per shown image: 8×8 digits at 11×, scaled without blur
STEP = 0.05  # the level slider's step; the charts measure every position of the slider
NOISE_NAMES = {"gaussian": "Gaussian", "salt-pepper": "salt and pepper", "masking": "masking"}
LEVEL_MEANS = {"gaussian": "the standard deviation of the added noise",
               "salt-pepper": "the share of pixels set to black or white",
               "masking": "the share of pixels dropped to black"}
FILTERS = {"median filter 3×3": partial(median_filter, size=3),
           "Gaussian blur σ=1": partial(gaussian_filter, sigma=1.0)}
THIS = "this model"


def sample(ds: ae.ImageDataset) -> torch.Tensor:
    """Return an evenly spaced sample of the data set's images."""
    return ds.images[::max(1, -(-len(ds) // SAMPLE))]


def trained_models(ctx) -> dict[str, tuple]:
    """Return {label: (model, TrainSpec, kind)} for every model of this data set that fits its images."""
    found = {}
    for label, (kind, ref) in model_options(dataset_family(ctx.dataset_name)).items():
        try:
            model = load_option(kind, ref)
            spec = train_spec_of(kind, ref, model)
        except (ValueError, KeyError):  # a damaged pretrained file or a run dropped meanwhile: leave it out
            continue
        if model.spec.input_shape == ctx.dataset.shape:
            found[label] = (model, spec, kind)
    return found


def training_words(spec: ae.TrainSpec) -> str:
    """Return how a model was trained, in words."""
    if is_plain(spec):
        return "trained on clean images only, not as a denoiser"
    return f"a denoising autoencoder, trained on {spec.noise} noise at level {spec.noise_level:g}"


def is_plain(spec: ae.TrainSpec) -> bool:
    """Return True for a model trained without noise."""
    return spec.noise == "none" or spec.noise_level <= 0


def colour_of(series: str) -> str:
    """Return a series' colour by its role: noisy input, this model, the other model, the classical filter."""
    role = {"noisy input": 0, THIS: 1}.get(series, 3 if series in FILTERS else 2)
    return viz.PALETTE[[0, 5, 2, 3][role]]


def levels_for(kind: str) -> list[float]:
    """Return the noise levels the charts sweep for a kind of noise: every position of the level slider above zero,
    so that a move of the slider finds its numbers measured."""
    return [round(STEP * k, 3) for k in range(1, round(LEVEL_MAX[kind] / STEP) + 1)]


def denoisers(models: dict, filter_name: str) -> dict:
    """Return {series name: function from noisy images to denoised images}."""
    out = {name: partial(ae.reconstruct, m) for name, m in models.items()}
    out[filter_name] = FILTERS[filter_name]
    return out


# Cache keys: each model's aecore.metrics.fingerprint (a hash of its spec and weights; id() could be reused by a
# new model) with the series names, plus the data set's name; the models and images go unhashed (leading _).
@st.cache_data(max_entries=32, ttl=3600, show_spinner="Measuring every denoiser at every noise level…")
def sweep(_models: dict, model_keys: tuple, _dataset, dataset_name: str, kind: str, filter_name: str) -> dict:
    """Return PSNR and SSIM per level for the noisy input, the models and the filter."""
    return noise_sweep(sample(_dataset), kind, levels_for(kind), denoisers(_models, filter_name))


@st.cache_data(max_entries=256, ttl=3600, show_spinner=False)
def at_level(_models: dict, model_keys: tuple, _dataset, dataset_name: str, kind: str, filter_name: str,
             level: float) -> dict:
    """Return PSNR and SSIM at one level, {metric: {series: value}}: read from the sweep where it measured that level
    (the same noisy images: noise_sweep seeds each level alike), else measured."""
    levels, on_grid = levels_for(kind), round(level, 3)
    if on_grid in levels:
        r, i = sweep(_models, model_keys, _dataset, dataset_name, kind, filter_name), levels.index(on_grid)
    else:
        r, i = noise_sweep(sample(_dataset), kind, [level], denoisers(_models, filter_name)), 0
    return {metric: {k: v[i] for k, v in series.items()} for metric, series in r.items()}


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def _collapsed(_model, model_key: str, _dataset, dataset_name: str) -> bool:
    x = sample(_dataset)
    return ae.metrics.spread(x, ae.reconstruct(_model, x)) < ae.metrics.COLLAPSED_SPREAD


def collapsed(model, ds: ae.ImageDataset, dataset_name: str) -> bool:
    """Return True when the model gives nearly one image for every input (aecore.metrics.spread): a poor default to
    compare with."""
    return _collapsed(model, fingerprint(model), ds, dataset_name)


def comparison_rank(entry: tuple, model, ds: ae.ImageDataset, dataset_name: str) -> tuple:
    """Return how fit an entry of `trained_models` is to be the default comparison, lower first: not collapsed, then
    the same architecture, bottleneck and code size as the model, then a run of this session."""
    other, _, kind = entry
    return (collapsed(other, ds, dataset_name), other.spec.arch != model.spec.arch,
            other.spec.variational != model.spec.variational, other.spec.code_size != model.spec.code_size,
            kind != "run")


@st.fragment
def level_view(models: dict, keys: tuple, ds: ae.ImageDataset, dataset_name: str, kind: str, filter_name: str,
               default: float) -> None:
    """The level slider with what depends on it: the images and the numbers at that level."""
    level = st.slider("Noise level", 0.0, LEVEL_MAX[kind], default, STEP, key=f"dn_level_{kind}",
                      help=f"For {NOISE_NAMES[kind]} noise, {LEVEL_MEANS[kind]}. Moving it redraws this part of the "
                      "page only.")
    clean = ds.images[:SHOWN]
    noisy = ae.add_noise(clean, kind, level, torch.Generator().manual_seed(0))
    rows = {"noisy input": noisy, **{name: fn(noisy) for name, fn in denoisers(models, filter_name).items()},
            "clean original": clean}
    # one element each for the pictures and the numbers: as columns, labels, images and metrics (45 elements) the
    # browser's work on them took longer than the server's run (docs/latency.md)
    st.html(viz.labelled_rows_html({name: viz.tile(images, ncols=SHOWN, cell=CELL) for name, images in rows.items()}))
    now = at_level(models, keys, ds, dataset_name, kind, filter_name, level)
    clean_note = "; without noise it is the clean image, whose PSNR is infinite" if level == 0 else ""
    st.markdown(f"**At level {level:.2f}** ({LEVEL_MEANS[kind]}), averaged over {len(sample(ds))} images (the change "
                f"is against the noisy input{clean_note}):"
                f"\n\n{numbers_table(now, clean_input=level == 0)}")


def numbers_table(now: dict, clean_input: bool = False) -> str:
    """Return a Markdown table of each series' PSNR and SSIM at one level, and their change against the noisy input
    (green where better, red where worse). Where the input is the clean image (`clean_input`), its PSNR is infinite:
    shown as ∞, with no PSNR changes against it."""
    def change(metric: str, name: str, digits: int, unit: str) -> str:
        if name == "noisy input" or (metric == "psnr" and clean_input):
            return ""
        d = now[metric][name] - now[metric]["noisy input"]
        return f":{'green' if d > 0 else 'red' if d < 0 else 'gray'}[{d:+.{digits}f}{unit}]"

    def psnr(name: str) -> str:
        return "∞" if clean_input and name == "noisy input" else f"{now['psnr'][name]:.2f} dB"

    rows = ["| | PSNR | change | SSIM | change |", "| --- | ---: | ---: | ---: | ---: |"]
    rows += [f"| **{name}** | {psnr(name)} | {change('psnr', name, 2, ' dB')} | "
             f"{now['ssim'][name]:.3f} | {change('ssim', name, 3, '')} |" for name in now["psnr"]]
    return "\n".join(rows)


def sweep_charts(models: dict, keys: tuple, ds: ae.ImageDataset, dataset_name: str, kind: str,
                 filter_name: str) -> None:
    """PSNR and SSIM of every series against the noise level; outside the slider's fragment, so a move of the
    slider does not redraw them (it would cost a third of the move)."""
    curves = sweep(models, keys, ds, dataset_name, kind, filter_name)
    xs = levels_for(kind)
    left, right = wrapping_columns("dn_charts", (320, 320))
    for col, metric, unit in ((left, "psnr", "PSNR (dB), higher is better"),
                              (right, "ssim", "SSIM, higher is better")):
        fig = viz.curves_figure(xs, curves[metric], "noise level", unit,
                                title=f"{metric.upper()} against noise level")
        for trace in fig.data:  # one colour per role, whichever series are present
            trace.line.color = colour_of(trace.name)
        fig.update_layout(height=340)
        col.plotly_chart(fig, width="stretch", config={"displayModeBar": False}, key=f"dn_chart_{metric}")


st.title("Denoise")
ctx = require_model()
model, ds = ctx.model, ctx.dataset
found = trained_models(ctx)
mine = found.get(ctx.model_label, (model, ae.TrainSpec(), "run"))[1]
st.caption(f"Add noise to the {dataset_family(ctx.dataset_name)} images and pass them through "
           f"**{ctx.model_label}**, {training_words(mine)}. A denoising autoencoder is trained to map noisy inputs "
           "to clean targets, so it learns what the images should look like rather than copying every pixel.")
left, mid, right = wrapping_columns("dn_choices", (200, 220, 240))
kind = left.selectbox("Noise", list(NOISE_NAMES), format_func=NOISE_NAMES.get, key="dn_kind")
filter_name = mid.selectbox("Classical baseline", list(FILTERS), key="dn_filter",
                            help="A filter that knows nothing about the data: the bar a learnt denoiser should clear.")
others = {label: v for label, v in found.items() if label != ctx.model_label}
# the natural comparison is the other kind (a plain model for a denoising one, and the reverse), best of the same
# architecture and code size, so that the noise in training is the one difference; this session's runs first
preferred = [label for label, (_, spec, _) in others.items() if is_plain(spec) != is_plain(mine)]
choices = ["nothing", *others]
default = 0
if preferred and st.session_state.get(data_key("dn_other")) not in choices:  # a standing choice makes the default moot:
    # rank only then, since the collapse check fingerprints every candidate (about 10 ms for six MNIST models)
    default = choices.index(min(preferred, key=lambda label: comparison_rank(others[label], model, ds,
                                                                             ctx.dataset_name)))
other_label = right.selectbox("Compare with", choices, key=data_key("dn_other"), index=default,
                              help="Another model of this data set: pretrained, or trained in this session.")
models = {THIS: model}
if other_label != "nothing":
    other, other_spec, _ = others[other_label]
    name = ("plain autoencoder" if is_plain(other_spec) else
            "denoising autoencoder" if is_plain(mine) else "other denoising model")
    models[name] = other
    st.caption(f"The **{name}** row is {other_label}, {training_words(other_spec)}.")
if is_plain(mine) and not preferred:
    st.info("This model never saw noise while training. Train a **denoising** one on the Train page (type "
            "'denoising') to see the difference; it will appear under *Compare with*.")
elif not is_plain(mine) and not preferred:
    st.caption("No plain autoencoder of this data set to compare with yet: one trained on the Train page (type "
               "'conv' or 'deep', no noise) would appear under *Compare with*.")
keys = tuple((name, fingerprint(m)) for name, m in models.items())
# start where this model was trained, when it was trained on this kind of noise; else at a third of the range
trained_level = mine.noise_level if mine.noise == kind and mine.noise_level > 0 else None
default = trained_level or round(round(0.3 * LEVEL_MAX[kind] / STEP) * STEP, 2)
level_view(models, keys, ds, ctx.dataset_name, kind, filter_name, min(float(default), LEVEL_MAX[kind]))
sweep_charts(models, keys, ds, ctx.dataset_name, kind, filter_name)
