"""Training throughput: aecore.fit against a tutorial-style loop (a) and a well-written plain PyTorch loop (b).

All three train the same model (same preset, same initial weights) with Adam at lr 1e-3, batch 128, binary
cross-entropy, for the same number of epochs; the contenders alternate within each round so that drifts in the
machine's load hit them alike, and the final loss of each is computed the same way afterwards
(`aecore.evaluate_loss` on the training images, in eval mode).
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
import unittest.mock

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import ToTensor

import aecore as ae

from .common import median, pause

BATCH = 128
LR = 1e-3
WARM_UP_IMAGES = 8 * BATCH + 64  # full batches and one of the size an epoch of 8,000 ends with


class TutorialDataset(Dataset):
    """The way tutorials do it, as torchvision's MNIST does: uint8 images, each made a PIL image and converted to a
    tensor by `transforms.ToTensor()` when it is fetched."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        self.data = (images.squeeze(1) * 255).round().to(torch.uint8)
        self.targets = labels if labels is not None else torch.zeros(len(images), dtype=torch.long)
        self.transform = ToTensor()

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        img, target = self.data[index], int(self.targets[index])
        return self.transform(Image.fromarray(img.numpy())), target  # 2-D uint8: PIL mode "L", as in torchvision


def logits(model, x, layers="as written"):
    """Return the decoder's logits with the model's layers run as written (`model.encoder`, `model.decoder`: for conv,
    nn.Sequential of Conv2d, ReLU, MaxPool2d and of Upsample, Conv2d), as plain PyTorch code runs them, or with
    `layers="aecore"` as aecore runs them (`model.encode`, `model.decode_logits`: pooling before the activation,
    the sub-pixel decoder; the same function, which is one of fit's speed techniques)."""
    if layers == "aecore":
        return model.decode_logits(model.encode(x))
    return model.decoder(model.head(model.encoder(x)))


def builtin_loss(model, x, layers="as written"):
    """Return the loss as plain PyTorch code writes it, for the deep and conv presets: PyTorch's binary cross-entropy
    on the decoder's logits, summed over the pixels and averaged over the images. This is model.loss's value, which
    aecore computes with its own loss (the gradient written out) and its way of running the layers."""
    return F.binary_cross_entropy_with_logits(logits(model, x, layers), x, reduction="sum") / len(x)


def tutorial(model, images, epochs, seed):
    """Train as tutorials do: a torchvision-style Dataset converting each image per item, a shuffling DataLoader
    (no worker processes, its default), Adam with its default implementation, PyTorch's loss."""
    torch.manual_seed(seed)
    loader = DataLoader(TutorialDataset(images), batch_size=BATCH, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    for _ in range(epochs):
        for x, _ in loader:
            loss = builtin_loss(model, x)
            opt.zero_grad()
            loss.backward()
            opt.step()


def plain(model, images, epochs, seed, fused=False, bf16=False, channels_last=False, compiled=False, threads=None,
          layers="as written", loss="builtin"):
    """Train with a well-written plain loop: the data as one tensor, batches by indexing a permutation.

    The options turn on one speed technique each, for the ablation table; all off is the reference loop (b).
    `layers`: "as written" or "aecore" (see `logits`). `loss`: "builtin" (PyTorch's, `builtin_loss`), "aecore"
    (aecore's binary cross-entropy, the layers as `layers` says), or a kind for `model.loss` ("bce", "mse"; these run
    the layers as aecore.fit does).
    """
    gen = torch.Generator().manual_seed(seed)
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=LR, fused=True) if fused else torch.optim.Adam(model.parameters(), lr=LR)
    losses = {"builtin": lambda x: builtin_loss(model, x, layers),
              "aecore": lambda x: ae.models.bce_with_logits_sum(logits(model, x, layers), x) / len(x)}
    loss_of = losses.get(loss, lambda x: model.loss(x, x, loss)["total"])
    if compiled:
        loss_of = torch.compile(loss_of)
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        for _ in range(epochs):
            perm = torch.randperm(len(images), generator=gen)
            for i in range(0, len(images), BATCH):
                x = images[perm[i:i + BATCH]]
                with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
                    total = loss_of(x)
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
    finally:
        torch.set_num_threads(previous)
        model.to(memory_format=torch.contiguous_format)


def fit(model, images, epochs, seed, **train):
    """Train with aecore.fit (precision and the rest at their defaults unless given)."""
    ae.fit(model, images, None, ae.TrainSpec(epochs=epochs, batch_size=BATCH, lr=LR, seed=seed, **train))


CONTENDERS = {"tutorial loop (a)": tutorial, "plain loop (b)": plain, "aecore.fit": fit}


def _final_loss(model, images) -> float:
    return ae.evaluate_loss(model, images, ae.TrainSpec(loss="bce"), device=torch.device("cpu"))["total"]


def _race(model_spec, images, loops: dict, epochs: int, rounds: int, log) -> dict:
    """Return {name: (samples/s per round, final loss per round)} with the loops alternating within each round."""
    out = {name: ([], []) for name in loops}
    for name, loop in loops.items():  # untimed: a process's first steps of each shape pay one-off kernel set-up
        if "compile" not in name:  # ...but compiling is the cost of torch.compile, shown by its first round
            loop(ae.build_model(model_spec, seed=0), images[:WARM_UP_IMAGES], 1, 0)
    for r in range(rounds):
        pause(log)
        for name, loop in loops.items():
            model = ae.build_model(model_spec, seed=0)
            t0 = time.perf_counter()
            loop(model, images, epochs, r)
            seconds = time.perf_counter() - t0
            model.to("cpu")
            out[name][0].append(epochs * len(images) / seconds)
            out[name][1].append(_final_loss(model, images))
            log(f"  {model_spec.arch} round {r + 1}: {name:28} {out[name][0][-1]:8.0f} samples/s  "
                f"loss {out[name][1][-1]:.2f}")
    return out


def run(images: torch.Tensor, presets=("deep", "conv"), epochs: int = 2, rounds: int = 3, log=print) -> list[dict]:
    """Return one row per preset and contender: median samples/s, ratios to (a) and (b), median final loss."""
    rows = []
    for name in presets:
        model_spec, _ = ae.preset(name, tuple(images.shape[1:]))
        out = _race(model_spec, images, CONTENDERS, epochs, rounds, log)
        speed = {c: median(out[c][0]) for c in out}
        loss = {c: median(out[c][1]) for c in out}
        for c in out:
            rows.append({"preset": name, "loop": c, "samples_per_s": speed[c],
                         "vs_a": speed[c] / speed["tutorial loop (a)"], "vs_b": speed[c] / speed["plain loop (b)"],
                         "final_loss": loss[c], "loss_vs_b": loss[c] / loss["plain loop (b)"] - 1,
                         "runs": [round(v) for v in out[c][0]], "params": model_spec.param_count(),
                         "epochs": epochs, "rounds": rounds})
    return rows


def ablation_loops(arch: str, with_compile: bool) -> dict:
    """Return the plain loop with one speed technique added at a time (the last combines the winners)."""
    loops = {
        "plain (b): fp32, Adam": plain,
        "b, 1 thread": lambda *a: plain(*a, threads=1),
        "b + fused Adam": lambda *a: plain(*a, fused=True),
        "b + aecore's loss": lambda *a: plain(*a, loss="aecore"),
        "b + fused + bf16 autocast": lambda *a: plain(*a, fused=True, bf16=True),
    }
    if arch == "conv":
        loops["b + fused + channels-last"] = lambda *a: plain(*a, fused=True, channels_last=True)
        loops["b + fused + channels-last + bf16"] = lambda *a: plain(*a, fused=True, channels_last=True, bf16=True)
        loops["b + aecore's layers"] = lambda *a: plain(*a, layers="aecore")
        loops["b + fused + channels-last + aecore's layers"] = lambda *a: plain(*a, fused=True, channels_last=True,
                                                                                 layers="aecore")
    if with_compile:
        loops["b + fused + torch.compile"] = lambda *a: plain(*a, fused=True, compiled=True)
    return loops


def ablation(images: torch.Tensor, presets=("deep", "conv"), epochs: int = 1, rounds: int = 3,
             with_compile: bool = False, log=print) -> list[dict]:
    """Return one row per preset and technique: median samples/s, ratio to the plain loop, median final loss."""
    rows = []
    for name in presets:
        model_spec, _ = ae.preset(name, tuple(images.shape[1:]))
        out = _race(model_spec, images, ablation_loops(model_spec.arch, with_compile), epochs, rounds, log)
        base = median(out["plain (b): fp32, Adam"][0])
        base_loss = median(out["plain (b): fp32, Adam"][1])
        for c, (speeds, losses) in out.items():
            rows.append({"preset": name, "variant": c, "samples_per_s": median(speeds), "vs_b": median(speeds) / base,
                         "first_round": speeds[0], "final_loss": median(losses),
                         "loss_vs_b": median(losses) / base_loss - 1, "epochs": epochs, "rounds": rounds})
    return rows


def conv_sizing(train, heldout, epochs: int = 5, candidates=((16, 32), (8, 16)), log=print) -> list[dict]:
    """Return, for the deep preset and conv models of each channel pair, the epoch time and held-out MSE after
    `epochs` epochs of aecore.fit on the 8,000-image split (the first entry of candidates is the conv preset)."""
    specs = [("deep", ae.preset("deep", train.shape)[0])]
    specs += [(f"conv {ch}", ae.preset("conv", train.shape, model={"hidden": ch})[0]) for ch in candidates]
    rows = []
    for name, spec in specs:
        model = ae.build_model(spec, seed=0)
        history = ae.fit(model, train, None, ae.TrainSpec(epochs=epochs, batch_size=BATCH, lr=LR, seed=0))
        x = heldout.images
        mse = float(ae.mse(ae.reconstruct(model, x), x).mean())
        seconds = [h["seconds"] for h in history]
        rows.append({"model": name, "params": spec.param_count(), "epoch_s": median(seconds),
                     "first_epoch_s": seconds[0], "heldout_mse": mse, "epochs": epochs})
        log(f"  {name:14} epoch {median(seconds):.2f} s  held-out MSE {mse:.4f}")
    return rows


MATRIX_PRESETS = ("vanilla", "deep", "sparse", "vae", "conv", "conv-vae", "linear")


def precision_matrix(datasets: dict, presets=MATRIX_PRESETS, rounds: int = 3, min_images: int = 8000,
                     log=print) -> list[dict]:
    """Return, per data set and preset, the samples/s of the plain loop with fused Adam in float32 and in bfloat16
    autocast, each in the standard and (conv only) the channels-last layout: what `precision="auto"` and the
    layout choice in aecore.fit rest on. Also each model's multiply-adds per image (aecore's rule's input)."""
    from aecore.train import multiply_adds

    rows = []
    for data_name, images in datasets.items():
        epochs = max(1, min_images // len(images))
        for name in presets:
            model_spec, train_spec = ae.preset(name, tuple(images.shape[1:]))
            variants = {"fp32": {}, "bf16": {"bf16": True}}
            if model_spec.arch == "conv":
                variants.update({"fp32 channels-last": {"channels_last": True},
                                 "bf16 channels-last": {"bf16": True, "channels_last": True}})
            speeds = {v: [] for v in variants}
            for r in range(rounds):
                pause(log)
                for v, options in variants.items():
                    model = ae.build_model(model_spec, seed=0)
                    t0 = time.perf_counter()
                    plain(model, images, epochs, r, fused=True, loss=train_spec.loss, **options)
                    speeds[v].append(epochs * len(images) / (time.perf_counter() - t0))
            base = median(speeds["fp32"])
            row = {"data": data_name, "preset": name, "multiply_adds": multiply_adds(model_spec),
                   "fp32": base, **{v: median(s) / base for v, s in speeds.items() if v != "fp32"}}
            rows.append(row)
            log(f"  {data_name:7} {name:9} {row['multiply_adds']:9,} MACs  fp32 {base:8.0f}/s  " +
                "  ".join(f"{v} {row[v]:.2f}x" for v in variants if v != "fp32"))
    return rows


def long_runs(images: torch.Tensor, epochs: int = 40, rounds: int = 2, threads: int = 1, log=print) -> dict:
    """Return fit's samples/s over a long run of the deep preset, with denormal numbers flushed (fit as it is)
    and kept (fit's flushing turned off), alternating; early epochs and late ones apart, as the app's jobs train
    (one thread). Adam's moments turn denormal only after some 800 steps, past the other sections' short runs."""
    model_spec, train_spec = ae.preset("deep", tuple(images.shape[1:]))
    variants = {"denormals flushed (fit)": contextlib.nullcontext,
                "denormals kept": lambda: unittest.mock.patch.object(ae.train, "_denormals_flushed",
                                                                     contextlib.nullcontext)}
    out = {name: {"early": [], "late": [], "loss": []} for name in variants}
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for r in range(rounds):
            pause(log)
            for name, patch in variants.items():
                with patch():
                    history = ae.fit(ae.build_model(model_spec, seed=0), images,
                                     spec=dataclasses.replace(train_spec, epochs=epochs))
                speeds = [h["samples_per_s"] for h in history]
                out[name]["early"].append(median(speeds[1:epochs // 4 + 1]))
                out[name]["late"].append(median(speeds[epochs // 2:]))
                out[name]["loss"].append(history[-1]["train"]["total"])
                log(f"  long run, round {r + 1}: {name:24} epochs 2-{epochs // 4 + 1} {out[name]['early'][-1]:7.0f}"
                    f"  epochs {epochs // 2 + 1}-{epochs} {out[name]['late'][-1]:7.0f} samples/s")
    finally:
        torch.set_num_threads(previous)
    return {"epochs": epochs, "rounds": rounds, "threads": threads, "batch": train_spec.batch_size,
            "rows": [{"variant": name, "early_samples_per_s": median(v["early"]),
                      "late_samples_per_s": median(v["late"]), "final_train_loss": median(v["loss"])}
                     for name, v in out.items()]}
