"""The training loop: data resident on the device, batches by indexing, a stop event and a divergence guard."""
from __future__ import annotations

import contextlib
import copy
import logging
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
    """Raised when the loss becomes NaN, infinite or explodes; the model holds its best weights so far."""

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


# Below this many multiply-adds per image, casting to bfloat16 costs more than the faster products save: measured
# on a 2-core AVX-512 BF16 CPU, bf16 autocast trained the MNIST deep (0.5 M), sparse, VAE and conv (2 M) presets
# 1.1-1.5x faster (conv 2.4x with channels-last), and the vanilla (0.05 M) and every digits (8x8) preset no faster
# or slower (docs/performance.md, "Precision and memory format by model").
BF16_MIN_MULTIPLY_ADDS = 250_000


def multiply_adds(spec: ModelSpec) -> int:
    """Return the multiply-adds of one image's pass through the model's linear and conv layers (encoder + decoder)."""
    c, h, w = spec.input_shape
    if spec.arch == "dense":
        sizes = [spec.input_size, *spec.hidden, spec.code_size]
        return 2 * sum(a * b for a, b in zip(sizes, sizes[1:]))
    chans = [c, *spec.hidden]
    convs = sum(9 * a * b * (h >> i) * (w >> i) for i, (a, b) in enumerate(zip(chans, chans[1:])))
    flat = spec.hidden[-1] * (h >> len(spec.hidden)) * (w >> len(spec.hidden))
    return 2 * (convs + flat * spec.code_size)


def use_bfloat16(device: torch.device, model_spec: ModelSpec | None = None) -> bool:
    """Return True where bfloat16 autocast speeds training up: CPUs with native bf16 instructions, models big enough."""
    # on CUDA these small models are bound by kernel launches, and autocast only adds casts
    return (device.type == "cpu" and _cpu_has_bf16()
            and (model_spec is None or multiply_adds(model_spec) >= BF16_MIN_MULTIPLY_ADDS))


def use_channels_last(device: torch.device, model_spec: ModelSpec) -> bool:
    """Return True where conv layers train faster on channels-last tensors: conv models on MNIST-sized images and up,
    on the CPU (oneDNN's conv kernels work channels-last; on 8x8 digits the gain was within the noise)."""
    return device.type == "cpu" and model_spec.arch == "conv" and multiply_adds(model_spec) >= BF16_MIN_MULTIPLY_ADDS


@torch.no_grad()
def in_batches(model: Autoencoder, fn, data) -> torch.Tensor:
    """Return fn(batch) over a data set in eval mode, batch by batch on the model's device, joined on the CPU.

    Batches go in channels-last where fit trains in that layout (`use_channels_last`), the model's weights staying
    as they are: oneDNN then runs every conv channels-last, the same values; encoding 1,024 MNIST images with the conv
    preset took 50 ms against 150 ms on two Xeon cores. (A one-channel batch needs the copy: its standard strides
    already count as channels-last to `contiguous`, and the conv would run in the standard layout.)
    """
    images = images_of(data)
    model.eval()
    device = next(model.parameters()).device
    layout = torch.channels_last if use_channels_last(device, model.spec) else torch.contiguous_format

    def run(batch: torch.Tensor) -> torch.Tensor:
        return fn(torch.empty_like(batch, memory_format=layout).copy_(batch)).cpu().contiguous()

    return torch.cat([run(images[i:i + EVAL_BATCH].to(device)) for i in range(0, len(images), EVAL_BATCH)])


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
    was_training = model.training
    gen = torch.Generator(device=device or next(model.parameters()).device).manual_seed(spec.seed + 1)
    names: list[str] = []

    def sums(x: torch.Tensor) -> torch.Tensor:  # each term times the batch's size, one row per batch
        terms = model.loss(add_noise(x, spec.noise, spec.noise_level, gen), x, spec.loss)
        names[:] = terms
        return torch.stack([v.double() * len(x) for v in terms.values()])[None]

    means = in_batches(model, sums, x_all).sum(0) / len(x_all)
    model.train(was_training)
    return dict(zip(names, means.tolist()))


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
    Setting `stop` ends training cleanly after the current step. However training ends (finished, stopped, diverged
    or failed), the model keeps the weights of its best epoch so far (see `best_epoch`), or its initial weights when
    no epoch ended.
    """
    x_cpu = images_of(train)
    check_fit(model.spec, spec, x_cpu.shape[1:], len(x_cpu))
    device = pick_device(spec.device)
    bf16 = spec.precision == "bf16" or (spec.precision == "auto" and use_bfloat16(device, model.spec))
    layout = torch.channels_last if use_channels_last(device, model.spec) else torch.contiguous_format
    torch.manual_seed(spec.seed)
    model.to(device, memory_format=layout).train()
    try:
        with _denormals_flushed():
            return _train(model, x_cpu, x_cpu.to(device).contiguous(memory_format=layout), val, spec, device, bf16,
                          on_epoch, stop)
    finally:  # whatever happened, hand the model back in eval mode and the standard layout
        model.to(memory_format=torch.contiguous_format).eval()


@contextlib.contextmanager
def _denormals_flushed():
    """Flush denormal floats to zero in this thread for the duration, then leave its setting as it was.

    Adam's moments of weights whose gradient falls to zero and stays there (a pixel lit in few images, a unit that
    died) decay below float32's normal range after some 800 steps, and the CPU computes on such denormals many
    times slower: the deep preset's epochs on MNIST after the 20th trained about a third slower on one thread.
    The setting is the thread's own (it also governs Python's float arithmetic there), so it is restored after;
    intra-op worker threads keep the setting of the thread that started them.
    """
    was_on = (torch.tensor(1e-30) * 1e-10).item() == 0.0  # torch has no getter: 1e-40 is denormal in float32
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_on)


def _train(model: Autoencoder, x_cpu: torch.Tensor, x_all: torch.Tensor, val, spec: TrainSpec, device: torch.device,
           bf16: bool, on_epoch, stop) -> list[dict]:
    v_all = images_of(val) if val is not None and len(images_of(val)) else None
    preview = (v_all if v_all is not None else x_cpu)[:PREVIEW_IMAGES].to(device)
    code_probe = (v_all if v_all is not None else x_cpu)[:PREVIEW_CODES].to(device)
    if spec.pretrain_epochs:
        _pretrain_layers(model, x_all, spec, stop)
    total_steps = spec.epochs * math.ceil(len(x_all) / spec.batch_size)
    graphed = _GraphedSteps(model, spec, x_all, total_steps) if use_cuda_graph(device, spec, bf16) else None
    opt = _optimizer(model, spec) if graphed is None else None
    # cosine decay to zero over the whole run: the last epochs fine-tune, which sharpens reconstructions
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, total_steps)) if opt is not None else None
    gen = torch.Generator(device=device).manual_seed(spec.seed)
    history: list[dict] = []
    guard = _Guard(model, spec, history)
    try:
        for epoch in range(1, spec.epochs + 1):
            t0 = time.perf_counter()
            guard.epoch = epoch
            perm = torch.randperm(len(x_all), generator=gen, device=device)
            if graphed is not None:
                sums, seen = graphed.epoch(x_all, perm, guard, stop)
            else:
                sums, seen = _eager_epoch(model, x_all, perm, spec, bf16, opt, sched, gen, guard, stop)
            seconds = time.perf_counter() - t0
            if seen == 0:
                break
            entry = {"epoch": epoch, "train": {k: v / seen for k, v in sums.items()},
                     "samples_per_s": seen / max(seconds, 1e-9), "seconds": seconds, "step": guard.step}
            if v_all is not None:
                entry["val"] = evaluate_loss(model, v_all, spec, device)
            history.append(entry)
            if best_epoch(history) == epoch:
                guard.best_state = copy.deepcopy(model.state_dict())
            if on_epoch is not None:
                on_epoch({**entry, **_preview(model, preview, code_probe), "epochs": spec.epochs})
            if stop is not None and stop.is_set():
                break
    finally:  # finished, stopped, diverged or crashed: the model keeps its best weights so far and stays usable
        model.load_state_dict(guard.best_state)
    return history


def best_epoch(history: list[dict]) -> int | None:
    """Return the epoch with the lowest validation loss (training loss without validation), or None if none ended."""
    scored = [(e["val" if "val" in e else "train"]["total"], e["epoch"]) for e in history]
    finite = [s for s in scored if math.isfinite(s[0])]
    return min(finite)[1] if finite else None


def _eager_epoch(model: Autoencoder, x_all: torch.Tensor, perm: torch.Tensor, spec: TrainSpec, bf16: bool, opt,
                 sched, gen: torch.Generator, guard: "_Guard", stop) -> tuple[dict, int]:
    """Run one epoch over x_all in the order perm; return the summed loss terms (x batch size) and the count."""
    sums, seen = {}, 0
    for i in range(0, len(x_all), spec.batch_size):
        if stop is not None and stop.is_set():
            break
        x = x_all[perm[i:i + spec.batch_size]]
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            terms = model.loss(add_noise(x, spec.noise, spec.noise_level, gen), x, spec.loss)
        values = torch.stack([v.detach().float() for v in terms.values()]).tolist()  # one sync per step
        guard.check(values[-1])
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()
        if spec.schedule == "cosine":
            sched.step()
        for k, v in zip(terms, values):
            sums[k] = sums.get(k, 0.0) + v * len(x)
        seen += len(x)
    return sums, seen


def _cosine(step: int, total_steps: int) -> float:
    return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))


class _Guard:
    """Counts steps and stops training when the loss becomes NaN, infinite, or far above where it started."""

    def __init__(self, model: Autoencoder, spec: TrainSpec, history: list[dict]):
        self.model, self.spec, self.history = model, spec, history
        self.step, self.epoch, self.first_loss = 0, 1, math.nan
        self.best_state = copy.deepcopy(model.state_dict())  # the best epoch's weights, updated by _epochs

    def check(self, value: float) -> None:
        """Count one step with total loss `value`; raise if it diverged (fit then restores the best weights)."""
        self.step += 1
        self.first_loss = value if self.step == 1 else self.first_loss
        # a loss far above where it started has diverged just as surely as a NaN
        if math.isfinite(value) and value <= DIVERGED_FACTOR * max(abs(self.first_loss), 1.0):
            return
        best = best_epoch(self.history)
        last = f"the end of epoch {best}, the best so far" if best else "their initial values"
        raise TrainingDiverged(
            f"Training diverged: the loss became {value:.3g} at step {self.step} (epoch {self.epoch}); the weights "
            f"were restored to {last}. Try a lower learning rate than {self.spec.lr:g}, "
            f"e.g. {min(self.spec.lr / 10, 1e-3):g}.", self.history)


# Set to False to train eagerly on CUDA too (the benchmarks compare the two).
CUDA_GRAPHS = True
GRAPH_WARMUP_STEPS = 3


def use_cuda_graph(device: torch.device, spec: TrainSpec, bf16: bool) -> bool:
    """Return True where fit captures its training step as a CUDA graph: on CUDA, float32, without input noise."""
    # the noise draws from fit's own generator, which a graph would replay with frozen offsets
    return CUDA_GRAPHS and device.type == "cuda" and not bf16 and (spec.noise == "none" or spec.noise_level <= 0)


class _GraphedSteps:
    """The training step (forward, backward, fused capturable Adam) captured as a CUDA graph per batch size, replayed.

    Small autoencoders on a GPU are bound by kernel launches; a replay launches the whole step at once. The first
    steps run eagerly (they warm up what the capture records), as does the first batch of each other size (the
    last, smaller batch of an epoch), which is captured when it comes again; if a capture fails the steps stay
    eager. Loss values are read one step late, so the GPU always has the next step queued.
    """

    def __init__(self, model: Autoencoder, spec: TrainSpec, x_all: torch.Tensor, total_steps: int):
        self.model, self.spec, self.total_steps = model, spec, total_steps
        self.lr = torch.tensor(spec.lr, dtype=torch.float32, device=x_all.device)  # a tensor, so replays see changes
        self.opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=spec.weight_decay, fused=True,
                                    capturable=True)
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}  # size: graph, in, out
        self.sizes_seen: set[int] = set()
        self.failed = False
        self.names: list[str] = []
        self.done = 0  # steps taken
        self.side = torch.cuda.Stream(device=x_all.device)
        self.hosts: list[torch.Tensor] = []  # two pinned buffers the loss values come back through, in turn
        self.events = [torch.cuda.Event(), torch.cuda.Event()]

    def _terms(self, x: torch.Tensor) -> torch.Tensor:
        terms = self.model.loss(x, x, self.spec.loss)
        terms["total"].backward()
        self.opt.step()
        self.names = list(terms)
        return torch.stack([v.detach().float() for v in terms.values()])

    def _eager(self, x: torch.Tensor) -> torch.Tensor:
        # once captured, the gradients live in a graph's memory: zero them in place rather than drop them
        self.opt.zero_grad(set_to_none=not self.graphs)
        if self.done >= GRAPH_WARMUP_STEPS:
            return self._terms(x)
        self.side.wait_stream(torch.cuda.current_stream())  # warm-up on a side stream, as capture requires
        with torch.cuda.stream(self.side):
            out = self._terms(x)
        torch.cuda.current_stream().wait_stream(self.side)
        return out

    def _capture(self, n: int, like: torch.Tensor) -> None:
        first = not self.graphs
        try:
            if first:  # the first graph allocates the gradients; the others write into the same ones
                self.opt.zero_grad(set_to_none=True)
            x = torch.empty((n, *like.shape[1:]), dtype=like.dtype, device=like.device)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                if not first:
                    self.opt.zero_grad(set_to_none=False)
                out = self._terms(x)
            self.graphs[n] = (graph, x, out)
        except RuntimeError as e:  # an op that cannot be captured: stay eager
            logging.getLogger(__name__).warning("training eagerly: the CUDA graph capture failed (%s)", e)
            self.failed = True

    def _step(self, x_all: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if self.spec.schedule == "cosine":
            self.lr.fill_(self.spec.lr * _cosine(self.done, self.total_steps))
        n = len(idx)
        if n not in self.graphs and n in self.sizes_seen and not self.failed and self.done >= GRAPH_WARMUP_STEPS:
            self._capture(n, x_all)
        self.sizes_seen.add(n)
        if n in self.graphs and not self.failed:
            graph, x, out = self.graphs[n]
            torch.index_select(x_all, 0, idx, out=x)
            graph.replay()
        else:
            out = self._eager(x_all[idx])
        self.done += 1
        return out

    def epoch(self, x_all: torch.Tensor, perm: torch.Tensor, guard: _Guard, stop) -> tuple[dict, int]:
        """Run one epoch over x_all in the order perm; return the summed loss terms (x batch size) and the count."""
        sums, seen, pending = {}, 0, None
        for i in range(0, len(x_all), self.spec.batch_size):
            if stop is not None and stop.is_set():
                break
            idx = perm[i:i + self.spec.batch_size]
            out = self._step(x_all, idx)
            if not self.hosts:
                self.hosts = [torch.empty(out.shape, dtype=out.dtype, pin_memory=True) for _ in range(2)]
            host, done = self.hosts[self.done % 2], self.events[self.done % 2]
            host.copy_(out, non_blocking=True)
            done.record()
            if pending is not None:
                seen += self._account(pending, guard, sums)
            pending = (host, done, len(idx))
        if pending is not None:
            seen += self._account(pending, guard, sums)
        return sums, seen

    def _account(self, pending, guard: _Guard, sums: dict) -> int:
        host, done, n = pending
        done.synchronize()
        values = host.tolist()
        guard.check(values[-1])
        for k, v in zip(self.names, values):
            sums[k] = sums.get(k, 0.0) + v * n
        return n


@torch.no_grad()
def _preview(model: Autoencoder, preview: torch.Tensor, code_probe: torch.Tensor) -> dict:
    was_training = model.training
    model.eval()
    out = {"inputs": preview.cpu(), "reconstructions": model(preview).cpu(), "codes": model.encode(code_probe).cpu()}
    model.train(was_training)
    return out
