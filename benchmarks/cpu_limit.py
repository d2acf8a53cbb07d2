"""The CPU's own limit: a large matrix multiply in float32 and bfloat16, against the FLOPs of a dense training step."""
from __future__ import annotations

import time

import torch

import aecore as ae

from .common import median

MATMUL_N = 2048


def matmul_rate(dtype=torch.float32, n: int = MATMUL_N, m: int | None = None, k: int | None = None,
                repeats: int = 5, min_seconds: float = 0.3) -> float:
    """Return the median GFLOP/s of (n x k) @ (k x m) matmuls in dtype with torch's current thread count."""
    m, k = m or n, k or n
    a, b = torch.randn(n, k).to(dtype), torch.randn(k, m).to(dtype)
    a @ b
    calls = 1
    while True:  # enough calls per sample that one sample lasts min_seconds
        t0 = time.perf_counter()
        for _ in range(calls):
            a @ b
        if time.perf_counter() - t0 >= min_seconds:
            break
        calls *= 2
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            a @ b
        rates.append(2 * n * m * k * calls / (time.perf_counter() - t0) / 1e9)
    return median(rates)


def dense_step_flops(model_spec: ae.ModelSpec, batch: int) -> int:
    """Return the FLOPs of the products of one training step of a dense model (2 per multiply-add).

    Forward: one product per layer. Backward: the weights' gradient of every layer and the inputs' gradient of
    every layer but the first, whose input (the images) needs none. Biases, activations, the loss and Adam are
    left out, so this slightly undercounts the work.
    """
    sizes = [model_spec.input_size, *model_spec.hidden, model_spec.code_size]
    macs = 2 * sum(a * b for a, b in zip(sizes, sizes[1:]))  # the decoder mirrors the encoder
    first = sizes[0] * sizes[1]
    return 2 * batch * (3 * macs - first)


def fit_speeds(images: torch.Tensor, model_spec: ae.ModelSpec, batch: int, epochs: int, rounds: int) -> dict:
    """Return aecore.fit's median samples/s in float32 and in bfloat16 autocast, alternating the two."""
    speeds = {"fp32": [], "bf16": []}
    for r in range(rounds):
        for precision in speeds:
            model = ae.build_model(model_spec, seed=0)
            t0 = time.perf_counter()
            ae.fit(model, images, None, ae.TrainSpec(epochs=epochs, batch_size=batch, seed=r, precision=precision))
            speeds[precision].append(epochs * len(images) / (time.perf_counter() - t0))
    return {p: median(v) for p, v in speeds.items()}


def run(images: torch.Tensor, epochs: int = 2, rounds: int = 3, matmul_repeats: int = 5, log=print) -> dict:
    """Return the measured matmul rates (median of `matmul_repeats` samples each) and, for the deep dense preset at
    its default batch size, the FLOPs of a step and the fraction of the rate of its precision that aecore.fit
    reached in float32 and in bfloat16."""
    threads = torch.get_num_threads()
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    rates = {p: matmul_rate(d, repeats=matmul_repeats) for p, d in dtypes.items()}
    torch.set_num_threads(1)
    try:
        rates_1 = {p: matmul_rate(d, repeats=matmul_repeats) for p, d in dtypes.items()}
    finally:
        torch.set_num_threads(threads)
    # the step's biggest matmul, (128 x 784) @ (784 x 256): the rate a model this small can hope for
    small = {p: matmul_rate(d, n=128, m=256, k=784, repeats=matmul_repeats) for p, d in dtypes.items()}
    model_spec, train_spec = ae.preset("deep", tuple(images.shape[1:]))
    flops = dense_step_flops(model_spec, train_spec.batch_size)
    out = {"threads": threads, "matmul_n": MATMUL_N, "matmul_gflops": rates, "matmul_gflops_1_thread": rates_1,
           "step_shape_matmul_gflops": small, "model": "deep (784-256-128-32)", "batch": train_spec.batch_size,
           "step_flops": flops, "achieved": []}
    # the default batch is the target; a larger one shows how much of the gap is per-step overhead
    for batch in (train_spec.batch_size, 1024):
        for precision, sps in fit_speeds(images, model_spec, batch, epochs, rounds).items():
            gflops = dense_step_flops(model_spec, batch) * sps / batch / 1e9
            out["achieved"].append({"precision": precision, "batch": batch, "samples_per_s": sps, "gflops": gflops,
                                    "fraction": gflops / rates[precision]})
    log(f"  matmul {MATMUL_N}^2: fp32 {rates['fp32']:.0f}, bf16 {rates['bf16']:.0f} GFLOP/s ({threads} threads); "
        + ", ".join(f"fit {a['precision']} batch {a['batch']} {a['gflops']:.0f} GFLOP/s ({a['fraction']:.0%})"
                    for a in out["achieved"]))
    return out
