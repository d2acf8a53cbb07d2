"""GPU throughput: `python -m benchmarks.gpu --out FILE.json` on a CUDA machine; the report reads
benchmarks/results/gpu.json. Compares a plain eager loop, aecore.fit eager and aecore.fit with its training step
captured as a CUDA graph, and checks that the graph gives the same losses as eager."""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import torch

import aecore as ae
from aecore import train as aetrain

from . import common
from .training import builtin_loss

LR = 1e-3


def plain(model, images, epochs, seed, batch):
    """Return after training with the plain loop (b) on the images' device: permutation indexing, default Adam."""
    gen = torch.Generator(device=images.device).manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(images), generator=gen, device=images.device)
        for i in range(0, len(images), batch):
            x = images[perm[i:i + batch]]
            loss = builtin_loss(model, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return None


def fit(model, images, epochs, seed, batch, graphs: bool, **train):
    """Return the history of aecore.fit on CUDA with the CUDA-graph path on or off."""
    aetrain.CUDA_GRAPHS = graphs
    try:
        return ae.fit(model, images, None, ae.TrainSpec(epochs=epochs, batch_size=batch, lr=LR, seed=seed,
                                                        device="cuda", **train))
    finally:
        aetrain.CUDA_GRAPHS = True


LOOPS = {"plain loop (b), eager": lambda m, x, e, s, b: plain(m, x, e, s, b),
         "aecore.fit, eager": lambda m, x, e, s, b: fit(m, x, e, s, b, graphs=False),
         "aecore.fit, CUDA graph": lambda m, x, e, s, b: fit(m, x, e, s, b, graphs=True)}


def _loss(model, images) -> float:
    return ae.evaluate_loss(model, images, ae.TrainSpec(loss="bce"))["total"]


def throughput(images, presets=("deep", "conv"), batches=(128,), epochs: int = 30, rounds: int = 3,
               log=print) -> list[dict]:
    """Return one row per preset, batch and loop: median samples/s over whole runs, and final loss."""
    rows = []
    for name in presets:
        spec, _ = ae.preset(name, tuple(images.shape[1:]))
        for batch in batches:
            speeds = {k: [] for k in LOOPS}
            steady = {k: [] for k in LOOPS}
            losses = {}
            for r in range(rounds):
                for loop_name, loop in LOOPS.items():
                    model = ae.build_model(spec, seed=0).cuda()
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    history = loop(model, images, epochs, r, batch)
                    torch.cuda.synchronize()
                    speeds[loop_name].append(epochs * len(images) / (time.perf_counter() - t0))
                    if history:  # epochs after the first: no warm-up, no capture
                        steady[loop_name].append(common.median(h["samples_per_s"] for h in history[1:]))
                    losses[loop_name] = _loss(model, images)
            for loop_name in LOOPS:
                rows.append({"preset": name, "batch": batch, "loop": loop_name,
                             "samples_per_s": common.median(speeds[loop_name]),
                             "steady_samples_per_s": common.median(steady[loop_name]) if steady[loop_name] else None,
                             "final_loss": losses[loop_name]})
                log(f"  {name} batch {batch} {loop_name:24} {rows[-1]['samples_per_s']:10.0f} samples/s "
                    f"loss {losses[loop_name]:.3f}")
    return rows


EQUIVALENCE = {  # name: (preset, TrainSpec overrides); VAEs draw noise, so their losses agree only in distribution
    "deep, constant lr": ("deep", {}),
    "conv, constant lr": ("conv", {}),
    "deep, cosine lr, weight decay": ("deep", {"schedule": "cosine", "weight_decay": 1e-4}),
    "sparse (L1)": ("sparse", {}),
    "vae (random draws: same distribution, not the same numbers)": ("vae", {}),
}


def equivalence(images, epochs: int = 5, log=print) -> list[dict]:
    """Return, per case, the largest relative difference between the per-epoch training losses of fit eager and fit
    with the CUDA graph, and the two final losses."""
    rows = []
    for case, (name, train) in EQUIVALENCE.items():
        spec, _ = ae.preset(name, tuple(images.shape[1:]))
        runs = {}
        for graphs in (False, True):
            model = ae.build_model(spec, seed=0)
            history = fit(model, images, epochs, 0, 128, graphs=graphs, **train)
            runs[graphs] = ([h["train"]["total"] for h in history], _loss(model, images))
        diff = max(abs(a - b) / abs(a) for a, b in zip(runs[False][0], runs[True][0]))
        rows.append({"case": case, "max_rel_diff": diff, "eager_final": runs[False][1], "graph_final": runs[True][1]})
        log(f"  {case:60} max relative difference {diff:.2e}; final {runs[False][1]:.4f} vs {runs[True][1]:.4f}")
    return rows


def main(argv=None) -> int:
    """Run the GPU benchmark and write its JSON."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__)
    p.add_argument("--out", default=str(common.ROOT / "benchmarks" / "results" / "gpu.json"))
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return 1
    images = common.mnist("train").images.cuda()
    out = {"machine": common.machine(), "command": " ".join(["python -m benchmarks.gpu",
                                                             *map(shlex.quote, argv or sys.argv[1:])]),
           "images": len(images), "batch": 128, "rounds": 1 if args.quick else 3}
    out["equivalence"] = equivalence(images, epochs=2 if args.quick else 5)
    out["rows"] = throughput(images, batches=(128,) if args.quick else (128, 1024),
                             epochs=10 if args.quick else 30, rounds=out["rounds"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
