"""The CPU's own limit: a large matrix multiply in float32 and bfloat16, against the FLOPs of a dense training step."""
from __future__ import annotations

import time

import torch

import aecore as ae

from .common import median

MATMUL_N = 2048


def _gflops(fn, flops: int, repeats: int, min_seconds: float) -> float:
    """Return the median GFLOP/s of calls to fn, each doing `flops`, over `repeats` samples of >= min_seconds."""
    fn()
    calls = 1
    while True:  # enough calls per sample that one sample lasts min_seconds
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        if time.perf_counter() - t0 >= min_seconds:
            break
        calls *= 2
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        rates.append(flops * calls / (time.perf_counter() - t0) / 1e9)
    return median(rates)


def matmul_rate(dtype=torch.float32, n: int = MATMUL_N, m: int | None = None, k: int | None = None,
                repeats: int = 5, min_seconds: float = 0.3) -> float:
    """Return the median GFLOP/s of (n x k) @ (k x m) matmuls in dtype with torch's current thread count."""
    m, k = m or n, k or n
    a, b = torch.randn(n, k).to(dtype), torch.randn(k, m).to(dtype)
    return _gflops(lambda: a @ b, 2 * n * m * k, repeats, min_seconds)


def step_products(model_spec: ae.ModelSpec, batch: int) -> list[tuple[int, int, int]]:
    """Return the (rows, inner, columns) of each matrix product of one training step of a dense model.

    Forward: one product per layer. Backward: the weights' gradient of every layer and the inputs' gradient of
    every layer but the first, whose input (the images) needs none.
    """
    sizes = [model_spec.input_size, *model_spec.hidden, model_spec.code_size]
    sizes += sizes[-2::-1]  # the decoder mirrors the encoder
    shapes = []
    for layer, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        shapes += [(batch, n_in, n_out), (n_out, batch, n_in)] + ([(batch, n_out, n_in)] if layer else [])
    return shapes


def dense_step_flops(model_spec: ae.ModelSpec, batch: int) -> int:
    """Return the FLOPs of the products of one training step of a dense model (2 per multiply-add). Biases,
    activations, the loss and Adam are left out, so this slightly undercounts the work."""
    return sum(2 * m * k * n for m, k, n in step_products(model_spec, batch))


def products_rate(model_spec: ae.ModelSpec, batch: int, dtype=torch.float32, repeats: int = 5,
                  min_seconds: float = 0.3) -> float:
    """Return the median GFLOP/s of a dense step's products run back to back with nothing else: the ceiling of
    any training step of that model and batch on this CPU."""
    pairs = [(torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)) for m, k, n in step_products(model_spec, batch)]

    def products():
        for a, b in pairs:
            a @ b

    return _gflops(products, dense_step_flops(model_spec, batch), repeats, min_seconds)


def fit_speeds(images: torch.Tensor, model_spec: ae.ModelSpec, batch: int, epochs: int, rounds: int) -> dict:
    """Return aecore.fit's median samples/s in float32 and in bfloat16 autocast, alternating the two, over whole
    calls ("whole") and over the epochs after each call's first, from fit's history ("steady")."""
    speeds = {p: {"whole": [], "steady": []} for p in ("fp32", "bf16")}
    for r in range(rounds):
        for precision, s in speeds.items():
            model = ae.build_model(model_spec, seed=0)
            t0 = time.perf_counter()
            history = ae.fit(model, images, None,
                             ae.TrainSpec(epochs=epochs, batch_size=batch, seed=r, precision=precision))
            s["whole"].append(epochs * len(images) / (time.perf_counter() - t0))
            s["steady"] += [e["samples_per_s"] for e in history[1:]]
    return {p: {k: median(v) if v else None for k, v in s.items()} for p, s in speeds.items()}


def run(images: torch.Tensor, epochs: int = 2, rounds: int = 3, matmul_repeats: int = 5, log=print) -> dict:
    """Return the measured matmul rates (median of `matmul_repeats` samples each) and, for the deep dense preset at
    its default batch size, the FLOPs of a step and the fraction of the rate of its precision that aecore.fit
    reached in float32 and in bfloat16, over whole calls and in steady epochs."""
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
    batch = train_spec.batch_size
    products = {p: products_rate(model_spec, batch, d, repeats=matmul_repeats) for p, d in dtypes.items()}
    flops = dense_step_flops(model_spec, batch)
    out = {"threads": threads, "matmul_n": MATMUL_N, "matmul_gflops": rates, "matmul_gflops_1_thread": rates_1,
           "step_shape_matmul_gflops": small, "step_products_gflops": products, "model": "deep (784-256-128-32)",
           "batch": batch, "step_flops": flops, "achieved": [],
           "default_precision": "bf16" if ae.train.use_bfloat16(torch.device("cpu"), model_spec) else "fp32"}
    # the default batch is the target; a larger one shows how much of the gap is per-step overhead
    for b in (batch, 1024):
        for precision, sps in fit_speeds(images, model_spec, b, epochs, rounds).items():
            row = {"precision": precision, "batch": b}
            for kind, prefix in (("whole", ""), ("steady", "steady_")):
                if sps[kind] is not None:
                    gflops = dense_step_flops(model_spec, b) * sps[kind] / b / 1e9
                    row |= {f"{prefix}samples_per_s": sps[kind], f"{prefix}gflops": gflops,
                            f"{prefix}fraction": gflops / rates[precision]}
            out["achieved"].append(row)
    log(f"  matmul {MATMUL_N}^2: fp32 {rates['fp32']:.0f}, bf16 {rates['bf16']:.0f} GFLOP/s ({threads} threads); "
        f"step's products alone fp32 {products['fp32']:.0f}; "
        + ", ".join(f"fit {a['precision']} batch {a['batch']} {a['gflops']:.0f} GFLOP/s ({a['fraction']:.0%}, "
                    f"steady {a.get('steady_fraction', float('nan')):.0%})" for a in out["achieved"]))
    return out
