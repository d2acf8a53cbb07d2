"""Projection of MNIST codes: PCA, t-SNE (openTSNE as aecore runs it, and scikit-learn's) and UMAP, wall time and
trustworthiness; UMAP's first call in a fresh process, after the app's warm-up, and warm."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import aecore as ae

from .common import ROOT, in_fresh_python, median, mnist_dir

MODEL = ROOT / "pretrained" / "mnist-conv-z32.safetensors"


def codes(n: int = 10_000) -> np.ndarray:
    """Return the codes (n, 32) of the first n MNIST images under the pretrained conv model."""
    model = ae.load(MODEL)
    images = ae.load_dataset("idx:" + str(mnist_dir()), "all").images[:n]
    return ae.encode_dataset(model, images).numpy().astype(np.float32)


def sklearn_tsne(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """Return scikit-learn's t-SNE of x at its default settings (Barnes-Hut, PCA initialisation)."""
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, random_state=seed, init="pca", n_jobs=torch.get_num_threads()).fit_transform(x)


METHODS = {
    "PCA": lambda x: ae.project(x, "pca"),
    "t-SNE, aecore (openTSNE)": lambda x: ae.project(x, "tsne"),
    "t-SNE, scikit-learn": sklearn_tsne,
    "UMAP, warm": lambda x: ae.project(x, "umap"),
}


def _trust(x: np.ndarray, y: np.ndarray) -> float:
    # the plain version holds N x N distances and their ranks: fine at 5,000, gigabytes at 10,000
    if len(x) <= 5000:
        return ae.trustworthiness(x, y, k=5)
    return ae.projection.trustworthiness_chunked(x, y, k=5)


def quality(sizes=(2000, 5000, 10_000), methods=tuple(METHODS), log=print) -> list[dict]:
    """Return one row per method and size: wall seconds and trustworthiness (k=5) of the 2-D map."""
    z = codes(max(sizes))
    if any(m.startswith("UMAP") for m in methods):  # compile first, as the app's warm-up does, so the UMAP rows are warm
        ae.projection.warm_up_umap()
    rows = []
    for n in sizes:
        for name in methods:
            t0 = time.perf_counter()
            y = METHODS[name](z[:n])
            seconds = time.perf_counter() - t0
            rows.append({"method": name, "points": n, "seconds": seconds, "trustworthiness": _trust(z[:n], y)})
            log(f"  {name:26} {n:6} points: {seconds:6.2f} s  trustworthiness {rows[-1]['trustworthiness']:.4f}")
    return rows


_UMAP_FRESH = """
import json, time
t0 = time.perf_counter()
import numpy as np, aecore
x = np.load(%r)
t1 = time.perf_counter()
warm = aecore.projection.warm_up_umap() if %r else None
t2 = time.perf_counter()
aecore.project(x, "umap")
t3 = time.perf_counter()
aecore.project(x, "umap")
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "warm_up": warm, "first": t3 - t2, "second": t4 - t3}))
"""


def umap_first_call(sizes=(2000, 5000), repeats: int = 1, log=print) -> list[dict]:
    """Return, per number of codes, UMAP's seconds in fresh interpreters: the first call with no warm-up, the first
    call after `warm_up_umap` (what the app runs in a background thread at server start), and a later call."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = str(Path(tmp) / f"codes{n}.npy")
            np.save(path, codes(n))
            cold = [json.loads(in_fresh_python(_UMAP_FRESH % (path, False)).splitlines()[-1]) for _ in range(repeats)]
            warmed = [json.loads(in_fresh_python(_UMAP_FRESH % (path, True)).splitlines()[-1]) for _ in range(repeats)]
            rows.append({"points": n, "first_no_warm_up_s": median(r["first"] for r in cold),
                         "warm_up_s": median(r["warm_up"] for r in warmed),
                         "first_after_warm_up_s": median(r["first"] for r in warmed),
                         "later_s": median([r["second"] for r in cold] + [r["second"] for r in warmed]),
                         "repeats": repeats})
            r = rows[-1]
            log(f"  UMAP {n}: first call cold {r['first_no_warm_up_s']:.1f} s; warm-up {r['warm_up_s']:.1f} s, then "
                f"first {r['first_after_warm_up_s']:.1f} s; later {r['later_s']:.1f} s")
    return rows
