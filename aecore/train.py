"""The training loop: data resident on the device, batches by indexing, a stop event and a divergence guard."""
from __future__ import annotations

import copy
import math
import threading
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .models import EVAL_BATCH, Autoencoder, ModelSpec, TrainSpec, _activation, images_of
from .noise import add_noise

PREVIEW_IMAGES = 8
PREVIEW_CODES = 500
DIVERGED_FACTOR = 1e3


class TrainingDiverged(RuntimeError):
    """Raised when the loss becomes NaN or infinite; the model holds the last good weights."""

    def __init__(self, message: str, history: list[dict]):
        super().__init__(message)
        self.history = history


def pick_device(name: str = "auto") -> torch.device:
    """Return the device to train on: CUDA, then MPS, then CPU for 'auto', else the one named."""
    if name != "auto":
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("device: CUDA was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
        if name == "mps" and not torch.backends.mps.is_available():
            raise ValueError("device: MPS was asked for but is not available; use 'auto' or 'cpu'")
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_fit(model_spec: ModelSpec, spec: TrainSpec, data_shape, n_images: int) -> None:
    """Return None when fit() accepts these specs on n_images of data_shape, else raise a ValueError naming the field."""
    if tuple(data_shape) != model_spec.input_shape:
        raise ValueError(f"input_shape: the model takes images of shape {model_spec.input_shape}, "
                         f"the data set has {tuple(data_shape)}")
    if n_images == 0:
        raise ValueError("data: the training set is empty")
    if spec.batch_size > n_images:
        raise ValueError(f"batch_size: {spec.batch_size} is larger than the training set ({n_images} images)")
    if spec.loss == "bce" and model_spec.activation is None:
        raise ValueError("loss: binary cross-entropy needs a sigmoid output; use loss='mse' for a linear model")
    if spec.pretrain_epochs and (model_spec.arch != "dense" or model_spec.variational or not model_spec.hidden):
        raise ValueError("pretrain_epochs: layer-wise pretraining applies to deep deterministic dense models only")


def use_bfloat16(device: torch.device) -> bool:
    """Return True where bfloat16 autocast speeds training up: CPUs with native bf16 instructions."""
    # on CUDA these small models are bound by kernel launches, and autocast only adds casts
    return device.type == "cpu" and _cpu_has_bf16()


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _optimizer(model: Autoencoder, spec: TrainSpec) -> torch.optim.Optimizer:
    try:  # the fused kernel updates every parameter in one pass; not every device has it
        return torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)


@torch.no_grad()
def evaluate_loss(model: Autoencoder, data, spec: TrainSpec, device=None) -> dict[str, float]:
    """Return the mean loss terms over a data set in eval mode (noisy input, clean target when denoising)."""
    x_all = images_of(data)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=device).manual_seed(spec.seed + 1)
    sums: dict[str, float] = {}
    for i in range(0, len(x_all), EVAL_BATCH):
        x = x_all[i:i + EVAL_BATCH].to(device)
        terms = model.loss(add_noise(x, spec.noise, spec.noise_level, gen), x, spec.loss)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v.item() * len(x)
    model.train(was_training)
    return {k: v / len(x_all) for k, v in sums.items()}


def _pretrain_layers(model: Autoencoder, x_all: torch.Tensor, spec: TrainSpec, stop) -> None:
    """Greedy layer-wise pretraining: each encoder layer with its mirrored decoder layer as a shallow autoencoder."""
    enc = [m for m in model.encoder if isinstance(m, nn.Linear)] + [model.head]
    dec = [m for m in model.decoder if isinstance(m, nn.Linear)]
    act = _activation(model.spec.activation)
    gen = torch.Generator(device=x_all.device).manual_seed(spec.seed)
    a = x_all.flatten(1)
    for i, (e, d) in enumerate(zip(enc, reversed(dec))):
        inner = act if i < len(enc) - 1 else model._code
        outer = act if i > 0 else (nn.Identity() if model.linear_output else torch.sigmoid)
        opt = torch.optim.Adam([*e.parameters(), *d.parameters()], lr=spec.lr)
        for _ in range(spec.pretrain_epochs):
            perm = torch.randperm(len(a), generator=gen, device=a.device)
            for j in range(0, len(a), spec.batch_size):
                if stop is not None and stop.is_set():
                    return
                batch = a[perm[j:j + spec.batch_size]]
                loss = F.mse_loss(outer(d(inner(e(batch)))), batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        with torch.no_grad():
            a = inner(e(a))


def fit(model: Autoencoder, train, val=None, spec: TrainSpec = TrainSpec(),
        on_epoch: Callable[[dict], None] | None = None, stop: threading.Event | None = None) -> list[dict]:
    """Train the model in place and return its history: one dict of loss terms, speed and time per epoch.

    `on_epoch(report)` gets the epoch's history entry plus fixed validation inputs, their reconstructions and codes.
    Setting `stop` ends training cleanly after the current step with the weights so far.
    """
    x_cpu = images_of(train)
    check_fit(model.spec, spec, x_cpu.shape[1:], len(x_cpu))
    device = pick_device(spec.device)
    bf16 = spec.precision == "bf16" or (spec.precision == "auto" and use_bfloat16(device))
    torch.manual_seed(spec.seed)
    model.to(device).train()
    x_all = x_cpu.to(device).contiguous()
    v_all = images_of(val) if val is not None and len(images_of(val)) else None
    preview = (v_all if v_all is not None else x_cpu)[:PREVIEW_IMAGES].to(device)
    code_probe = (v_all if v_all is not None else x_cpu)[:PREVIEW_CODES].to(device)
    if spec.pretrain_epochs:
        _pretrain_layers(model, x_all, spec, stop)
    opt = _optimizer(model, spec)
    total_steps = spec.epochs * math.ceil(len(x_all) / spec.batch_size)
    # cosine decay to zero over the whole run: the last epochs fine-tune, which sharpens reconstructions
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps)))
    gen = torch.Generator(device=device).manual_seed(spec.seed)
    history: list[dict] = []
    good_state = copy.deepcopy(model.state_dict())
    step = 0
    first_loss = math.nan
    for epoch in range(1, spec.epochs + 1):
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        seen = 0
        perm = torch.randperm(len(x_all), generator=gen, device=device)
        for i in range(0, len(x_all), spec.batch_size):
            if stop is not None and stop.is_set():
                break
            x = x_all[perm[i:i + spec.batch_size]]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                terms = model.loss(add_noise(x, spec.noise, spec.noise_level, gen), x, spec.loss)
            values = torch.stack([v.detach().float() for v in terms.values()]).tolist()  # one sync per step
            step += 1
            value = values[-1]
            first_loss = value if step == 1 else first_loss
            # a loss far above where it started has diverged just as surely as a NaN
            if not math.isfinite(value) or value > DIVERGED_FACTOR * max(abs(first_loss), 1.0):
                model.load_state_dict(good_state)
                model.eval()
                last = f"the end of epoch {epoch - 1}" if epoch > 1 else "their initial values"
                raise TrainingDiverged(
                    f"Training diverged: the loss became {value:.3g} at step {step} (epoch {epoch}); the weights were "
                    f"restored to {last}. Try a lower learning rate than {spec.lr:g}, e.g. {min(spec.lr / 10, 1e-3):g}.",
                    history)
            opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            opt.step()
            if spec.schedule == "cosine":
                sched.step()
            for k, v in zip(terms, values):
                sums[k] = sums.get(k, 0.0) + v * len(x)
            seen += len(x)
        seconds = time.perf_counter() - t0
        stopped = stop is not None and stop.is_set()
        if seen == 0:
            break
        entry = {"epoch": epoch, "train": {k: v / seen for k, v in sums.items()},
                 "samples_per_s": seen / max(seconds, 1e-9), "seconds": seconds, "step": step}
        if v_all is not None:
            entry["val"] = evaluate_loss(model, v_all, spec, device)
        history.append(entry)
        good_state = copy.deepcopy(model.state_dict())
        if on_epoch is not None:
            on_epoch({**entry, **_preview(model, preview, code_probe), "epochs": spec.epochs})
        if stopped:
            break
    model.eval()
    return history


@torch.no_grad()
def _preview(model: Autoencoder, preview: torch.Tensor, code_probe: torch.Tensor) -> dict:
    was_training = model.training
    model.eval()
    out = {"inputs": preview.cpu(), "reconstructions": model(preview).cpu(), "codes": model.encode(code_probe).cpu()}
    model.train(was_training)
    return out
