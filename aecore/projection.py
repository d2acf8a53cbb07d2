"""Projections of codes to 2 or 3 dimensions (PCA, t-SNE, UMAP) and how faithful they are."""
from __future__ import annotations

import warnings

import numpy as np
import torch

METHODS = ("pca", "tsne", "umap")
# openTSNE with Barnes-Hut gradients, an exact neighbour search, a coarser tree (theta 0.8), 125 iterations of early
# exaggeration and 250 after. On 5,000 32-D MNIST codes, one thread, alternating in one process, the earlier 250 + 300
# iterations took 0.27-0.30x scikit-learn's TSNE time on a 2-core EPYC (5.4 s wall on two threads) at a
# trustworthiness (k=5) 0.0003-0.0006 lower, but 11.1 s on a 2-core Xeon, whose Barnes-Hut iterations run at half the
# speed. There 125 + 250 took 6.1 s against 11.1 s (3 alternated rounds, two threads) at a trustworthiness of
# 0.9900 against 0.9908 (scikit-learn's: 0.9912), the maps alike by eye: the KL divergence barely moves after 50
# exaggerated iterations. Annoy's approximate neighbours cost more than they saved at these sizes, and FFT gradients
# are slower below 10,000 points.
TSNE_SETTINGS = dict(negative_gradient_method="bh", neighbors="exact", theta=0.8, early_exaggeration_iter=125,
                     n_iter=250)
TSNE_CALLBACK_EVERY = 25
# UMAP's own default is 500 epochs below 10,000 points and 200 above. 200 for every size first: on 5,000 32-D MNIST
# codes (one thread, as a fixed random_state makes it) 1.7 s instead of 4.1 s on the EPYC, at a trustworthiness (k=5)
# of 0.9655 against 0.9674 (docs/performance.md). The 2-core Xeon needed 3.1 s for it (target: under 3 s), nearly all
# in the epochs; 120 took 1.67 s against 2.64 s there (4 alternated rounds) at 0.9621-0.9648 against 0.9634-0.9661,
# the maps alike by eye. UMAP's neighbours come from ExactNeighbours (below) at every size: UMAP's own search runs
# scikit-learn's pairwise_distances with a Python-level callback per pair below 4,097 points (6.5 of 7.4 s on 2,000
# codes, profiled), and pynndescent above, whose compilation was most of UMAP's first call.
UMAP_EPOCHS = 120


def _array(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _check_method(method: str, n_components: int) -> None:
    if method not in METHODS:
        raise ValueError(f"method: must be one of {METHODS}, got {method!r}")
    if n_components not in (2, 3):
        raise ValueError(f"n_components: must be 2 or 3, got {n_components}")


def projector(method: str = "pca", n_components: int = 2, seed: int = 0, **params):
    """Return an unfitted estimator for the named projection: fit_transform maps codes, transform places new ones."""
    _check_method(method, n_components)
    if method == "pca":
        from sklearn.decomposition import PCA
        return PCA(n_components=n_components, random_state=seed)
    if method == "tsne":
        from openTSNE.sklearn import TSNE  # unlike scikit-learn's, it can place new points on a fitted map

        return TSNE(n_components=n_components, random_state=seed, initialization="pca",
                    perplexity=params.get("perplexity", 30.0), n_jobs=torch.get_num_threads(),
                    callbacks=params.get("callbacks"), callbacks_every_iters=TSNE_CALLBACK_EVERY, **TSNE_SETTINGS)
    import umap  # imported on first use: it costs seconds of numba compilation

    # UMAP's own words when its neighbours come without a pynndescent index; ExactNeighbours places points as well
    warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\] \(knn_search_index\) is not an NNDescent")
    return umap.UMAP(n_components=n_components, random_state=seed, n_neighbors=params.get("n_neighbors", 15),
                     min_dist=params.get("min_dist", 0.1), n_epochs=params.get("n_epochs", UMAP_EPOCHS), n_jobs=1,
                     force_approximation_algorithm=True,
                     precomputed_knn=params.get("precomputed_knn", (None, None, None)))


class ExactNeighbours:
    """An exact nearest-neighbour index of codes (scikit-learn's), in the form UMAP queries to place new points.

    fit_projection hands UMAP the codes' neighbours from it and the index itself, so that UMAP never runs
    pynndescent's NN-descent, whose numba compilation took 43 of the ~50 s of UMAP's first call in a process on two
    Xeon cores (numba's compile events): the server's warm-up fell from 54-79 s to 13-15 s.
    """

    _angular_trees = False  # read by UMAP's transform: the distances are euclidean

    def __init__(self, codes: np.ndarray):
        from sklearn.neighbors import NearestNeighbors

        self.index = NearestNeighbors().fit(codes)

    def query(self, x: np.ndarray, k: int, epsilon: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Return the indices (int32) and distances (float32) of the k fitted codes nearest to each row of x."""
        dists, indices = self.index.kneighbors(x, k)
        return indices.astype(np.int32), dists.astype(np.float32)


def project(codes, method: str = "pca", n_components: int = 2, seed: int = 0, **params) -> np.ndarray:
    """Return the codes (N, D) projected to (N, n_components) float32 with the named method."""
    return fit_projection(codes, method, n_components, seed, **params)[1]


def trustworthiness(codes, embedding, k: int = 5) -> float:
    """Return how well the embedding keeps each point's k nearest neighbours (1 is perfect)."""
    from sklearn.manifold import trustworthiness as tw

    return float(tw(_array(codes).reshape(len(codes), -1), _array(embedding), n_neighbors=k))


def knn_accuracy(features, labels, k: int = 5, folds: int = 5, seed: int = 0) -> float:
    """Return the cross-validated accuracy of a k-nearest-neighbour classifier on the features."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    x, y = _array(features).reshape(len(features), -1), _array(labels)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(KNeighborsClassifier(n_neighbors=k), x, y, cv=cv).mean())


def aligned_frame(codes, previous: np.ndarray | None = None) -> np.ndarray:
    """Return a 2-D PCA map of the codes, rotated and scaled to best match the previous frame (same points)."""
    from scipy.linalg import orthogonal_procrustes

    x = _array(codes).astype(np.float64).reshape(len(codes), -1)
    x = x - x.mean(0)
    if x.shape[1] > 2:
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        x = x @ vt[:2].T
    y = np.pad(x, ((0, 0), (0, 2 - x.shape[1])))
    y /= max(np.sqrt((y ** 2).sum(1).mean()), 1e-12)  # unit RMS radius, so frames share a scale
    if previous is not None and len(previous) == len(y):
        rotation, _ = orthogonal_procrustes(y, previous)
        y = y @ rotation
    return y.astype(np.float32)


class _Padded:
    """A 'projection' of codes with no more dimensions than the map: the codes themselves, zero-padded."""

    def __init__(self, n_components: int):
        self.n_components = n_components

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Return x padded with zero columns to n_components."""
        return np.pad(x, ((0, 0), (0, self.n_components - x.shape[1])))


def _checked_params(method: str, n: int, params: dict) -> dict:
    # neighbourhood sizes must stay below the number of points, whatever the user asked for
    params = dict(params)
    if method == "tsne":
        params["perplexity"] = min(params.get("perplexity", 30.0), (n - 1) / 3)
    if method == "umap":
        params["n_neighbors"] = min(params.get("n_neighbors", 15), n - 1)
    return params


def fit_projection(codes, method: str = "pca", n_components: int = 2, seed: int = 0, progress=None,
                   **params) -> tuple[object, np.ndarray]:
    """Return (fitted projector, map (N, n_components) float32); `place` puts new codes on that map.

    `progress(fraction)` is called as t-SNE optimises (every 25 iterations); PCA and UMAP report only at the end.
    """
    _check_method(method, n_components)
    x = _array(codes).astype(np.float32).reshape(len(codes), -1)
    # UMAP's spectral start needs more points than map dimensions plus one
    least = n_components + 2 if method == "umap" else 3
    if len(x) < least:
        raise ValueError(f"codes: need at least {least} points for this map, got {len(x)}")
    params = _checked_params(method, len(x), params)
    if x.shape[1] <= n_components and method == "pca":
        fitted = _Padded(n_components)
        return fitted, fitted.transform(x).astype(np.float32)
    hook = [progress]  # emptied after the fit, so placing points later does not report into a stale display
    if method == "tsne" and progress is not None:
        steps = TSNE_SETTINGS["early_exaggeration_iter"] + TSNE_SETTINGS["n_iter"]
        calls = [0]

        def tick(*_):
            calls[0] += 1
            if hook[0] is not None:
                hook[0](min(1.0, calls[0] * TSNE_CALLBACK_EVERY / steps))
            return False

        params["callbacks"] = tick
    if method == "umap":  # each code's neighbours (itself first, as UMAP expects) and the index that places new ones
        index = ExactNeighbours(x)
        params["precomputed_knn"] = (*index.query(x, params["n_neighbors"]), index)
    fitted = projector(method, n_components, seed, **params)
    embedding = fitted.fit_transform(x).astype(np.float32)
    hook[0] = None
    if progress is not None:
        progress(1.0)
    return fitted, embedding


def place(fitted, codes) -> np.ndarray:
    """Return new codes (M, D) placed on a map made by `fit_projection`, as (M, n_components) float32."""
    x = _array(codes).astype(np.float32).reshape(len(codes), -1)
    return np.asarray(fitted.transform(x), dtype=np.float32)


def trustworthiness_chunked(codes, embedding, k: int = 5, chunk: int = 512) -> float:
    """Return the same trustworthiness as `trustworthiness`, in memory of chunk x N rather than N x N."""
    from sklearn.neighbors import NearestNeighbors

    x = _array(codes).astype(np.float64).reshape(len(codes), -1)
    n = len(x)
    if not 0 < k < n / 2:
        raise ValueError(f"k: must be between 1 and {int(np.ceil(n / 2)) - 1} for {n} points, got {k}")
    near = NearestNeighbors(n_neighbors=k).fit(_array(embedding)).kneighbors(return_distance=False)
    sq = (x ** 2).sum(1)
    penalty = 0.0
    for start in range(0, n, chunk):
        rows = np.arange(start, min(start + chunk, n))
        d = sq[rows, None] + sq[None, :] - 2 * x[rows] @ x.T
        d[np.arange(len(rows)), rows] = np.inf  # a point is not its own neighbour
        dj = np.take_along_axis(d, near[rows], axis=1)
        rank = (d[:, None, :] < dj[:, :, None]).sum(-1) + 1  # 1 = the nearest in the original space
        penalty += np.clip(rank - k, 0, None).sum()
    return float(1 - penalty * 2.0 / (n * k * (2 * n - 3 * k - 1)))


def code_quality(codes, images, labels, k: int = 5, max_points: int = 5000, seed: int = 0) -> dict:
    """Return k-NN accuracies {"codes", "pixels", "pca", "dims", "points"}: the codes, raw pixels, and PCA of the
    pixels with as many dimensions as the code, on the same (at most max_points) images and folds."""
    from sklearn.decomposition import PCA

    z, x, y = _array(codes).reshape(len(codes), -1), _array(images).reshape(len(images), -1), _array(labels)
    if len(z) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(z), max_points, replace=False))
        z, x, y = z[keep], x[keep], y[keep]
    dims = z.shape[1]
    pca = PCA(n_components=min(dims, *x.shape), random_state=seed).fit_transform(x)
    return {"codes": knn_accuracy(z, y, k, seed=seed), "pixels": knn_accuracy(x, y, k, seed=seed),
            "pca": knn_accuracy(pca, y, k, seed=seed), "dims": dims, "points": len(z)}


def map_csv(index, coords, codes, labels=None, classes=None, errors=None, factors: dict | None = None) -> str:
    """Return CSV text, one row per point: its index in the data set, label, error, factors, map and code."""
    coords, codes = _array(coords), _array(codes).reshape(len(codes), -1)
    columns = {"index": _array(index).astype(int)}
    if labels is not None:
        labels = _array(labels).astype(int)
        columns["label"] = labels
        if classes:
            columns["class"] = np.asarray(classes, dtype=object)[labels]
    if errors is not None:
        columns["reconstruction_mse"] = _array(errors)
    for name, values in (factors or {}).items():
        columns[f"factor_{name}"] = _array(values)
    columns.update({"xyz"[i]: coords[:, i] for i in range(coords.shape[1])})
    columns.update({f"code_{i}": codes[:, i] for i in range(codes.shape[1])})
    lines = [",".join(columns)]
    cells = [[_cell(v) for v in values] for values in columns.values()]
    lines += [",".join(row) for row in zip(*cells)]
    return "\n".join(lines) + "\n"


def _cell(v) -> str:
    if isinstance(v, str):
        return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n') else v
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.6g}"
    return str(v)


def warm_up_umap(seed: int = 0) -> float:
    """Run a tiny UMAP once so numba compiles its code now, not on a person's first request; return the seconds."""
    import time

    t0 = time.perf_counter()
    points = np.random.default_rng(seed).normal(size=(500, 8)).astype(np.float32)
    fitted, _ = fit_projection(points, "umap", 2, seed, n_epochs=20)
    place(fitted, points[:2])  # placing new points on a map compiles code of its own
    return time.perf_counter() - t0
