"""Sweeps and comparisons: what a bottleneck costs against PCA, what noise costs, and models side by side."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from .data import ImageDataset
from .jobs import TrainingJob
from .metrics import image_metrics, mse, reconstruct
from .models import Autoencoder, ModelSpec, preset
from .noise import add_noise

HOLDOUT_FRACTION = 0.9  # the Train page and the CLI train on split(0.9, seed=0), so its rest is held out for all
CODE_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256)
NOISE_LEVELS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def holdout(ds: ImageDataset, max_train: int | None = None, max_test: int | None = None,
            seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """Return (train, test): the app's split of a data set, each capped at a number of images."""
    train, test = ds.split(HOLDOUT_FRACTION, seed=seed)
    if max_train is not None:
        train = train.subset(slice(0, max_train))
    if max_test is not None:
        test = test.subset(slice(0, max_test))
    return train, test


def code_sizes_for(input_shape, preset_name: str, sizes=CODE_SIZES) -> list[int]:
    """Return the code sizes a preset can take for this input (a code no larger than the image, unless sparse)."""
    ok = []
    for k in sizes:
        try:
            preset(preset_name, input_shape, model={"code_size": k})
        except ValueError:
            continue
        ok.append(k)
    return ok


def _spec_pair(preset_name: str, input_shape, n_train: int, epochs: int, seed: int, batch_size: int | None,
               model=None, train=None):
    m, t = preset(preset_name, input_shape, model=model, train={"epochs": epochs, "seed": seed, **(train or {})})
    # a capped training set may be smaller than the batch, which fit() refuses
    return m, replace(t, batch_size=min(batch_size or t.batch_size, n_train))


def code_size_jobs(preset_name: str, dataset_name: str, train: ImageDataset, val: ImageDataset | None,
                   code_sizes, epochs: int = 20, seed: int = 0, batch_size: int | None = 32,
                   prefix: str = "sweep") -> dict[int, TrainingJob]:
    """Return one unstarted training job per code size, all of one preset; ValueError names a size it cannot take."""
    jobs = {}
    for k in sorted(set(int(k) for k in code_sizes)):
        try:
            model_spec, train_spec = _spec_pair(preset_name, train.shape, len(train), epochs, seed, batch_size,
                                                model={"code_size": k})
        except ValueError as e:
            raise ValueError(f"Code size {k} does not fit the {preset_name} preset here: {e}") from None
        jobs[k] = TrainingJob(f"{prefix} {preset_name} z{k}", dataset_name, train, val, model_spec, train_spec)
    return jobs


def noise_jobs(preset_name: str, dataset_name: str, train: ImageDataset, val: ImageDataset | None, kind: str,
               level: float, code_size: int | None = None, epochs: int = 20, seed: int = 0,
               batch_size: int | None = 32, plain: bool = True, prefix: str = "noise") -> dict[str, TrainingJob]:
    """Return unstarted jobs: a denoising model trained at one noise level and, if asked, its twin without noise."""
    model = {"code_size": int(code_size)} if code_size else None
    runs = {f"denoising ({kind} {level:g})": {"noise": kind, "noise_level": float(level)}}
    if plain:
        runs["plain (no noise)"] = {"noise": "none", "noise_level": 0.0}
    jobs = {}
    for label, noise in runs.items():
        model_spec, train_spec = _spec_pair(preset_name, train.shape, len(train), epochs, seed, batch_size,
                                            model, noise)
        jobs[label] = TrainingJob(f"{prefix} {preset_name} {label}", dataset_name, train, val, model_spec, train_spec)
    return jobs


def heldout_mse(model: Autoencoder, data) -> float:
    """Return the model's reconstruction error on held-out images: mean squared error per pixel."""
    x = data.images if hasattr(data, "images") else data
    return float(mse(reconstruct(model, x), x).mean())


def pca_curve(train, test, code_sizes) -> list[float]:
    """Return PCA's held-out MSE per pixel at each code size (components fitted on train), the linear baseline."""
    from sklearn.decomposition import PCA

    a = (train.images if hasattr(train, "images") else train).flatten(1).numpy()
    b = (test.images if hasattr(test, "images") else test).flatten(1).numpy()
    top = min(max(int(k) for k in code_sizes), *a.shape)
    # the first k principal components are the same whatever the total kept, so one fit serves every size
    pca = PCA(n_components=top, svd_solver="full").fit(a)
    centred = b - pca.mean_
    errors = []
    for k in code_sizes:
        axes = pca.components_[:min(int(k), top)]
        errors.append(float(np.mean((centred @ axes.T @ axes + pca.mean_ - b) ** 2)))
    return errors


def code_size_rows(code_sizes, model_mse: dict, pca: list, input_size: int) -> list[dict]:
    """Return one table row per code size: compression, the model's and PCA's MSE and their ratio (None if missing)."""
    rows = []
    for k, p in zip(code_sizes, pca):
        m = model_mse.get(k)
        rows.append({"code size": k, "compression": input_size / k, "autoencoder MSE": m, "PCA MSE": p,
                     "autoencoder / PCA": m / p if m is not None and p > 0 else None})
    return rows


def noisy_inputs(images: torch.Tensor, kind: str, level: float, seed: int = 0) -> torch.Tensor:
    """Return images corrupted by noise drawn from a fixed seed, so every model sees the very same inputs."""
    return add_noise(images, kind, level, torch.Generator().manual_seed(seed))


def noise_curves(models: dict[str, Autoencoder], test, kind: str, levels, seed: int = 0) -> dict[str, list[float]]:
    """Return MSE per pixel against the clean images at each noise level: the noisy input's, then each model's."""
    x = test.images if hasattr(test, "images") else test
    curves = {"noisy input": []} | {name: [] for name in models}
    for i, level in enumerate(levels):
        noisy = noisy_inputs(x, kind, float(level), seed + i)
        curves["noisy input"].append(float(mse(noisy, x).mean()))
        for name, model in models.items():
            curves[name].append(float(mse(reconstruct(model, noisy), x).mean()))
    return curves


def describe(spec: ModelSpec) -> str:
    """Return a short readable description of a model spec, e.g. 'conv 16-32 · variational β=1'."""
    layers = "-".join(str(h) for h in spec.hidden) or "no hidden layer"
    parts = [f"{spec.arch} {layers}"]
    if spec.variational:
        parts.append(f"variational β={spec.beta:g}")
    if spec.sparsity != "none":
        parts.append(f"sparse ({spec.sparsity})")
    if spec.activation is None:
        parts.append("linear")
    return " · ".join(parts)


def compare_models(models: dict[str, Autoencoder], images: torch.Tensor, inputs: torch.Tensor | None = None,
                   ) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Return (one metrics row per model, each model's reconstructions) on the same images.

    `inputs` are what the models are fed (e.g. noisy copies); the metrics compare their outputs with `images`.
    """
    inputs = images if inputs is None else inputs
    rows, outputs = [], {}
    for name, model in models.items():
        out = reconstruct(model, inputs)
        m = {k: float(v.mean()) for k, v in image_metrics(images, out).items()}
        rows.append({"model": name, "type": describe(model.spec), "code size": model.spec.code_size,
                     "parameters": model.spec.param_count(), "MSE": m["mse"], "PSNR (dB)": m["psnr"],
                     "SSIM": m["ssim"]})
        outputs[name] = out
    return rows, outputs
