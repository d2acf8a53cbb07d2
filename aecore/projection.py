"""Projections of codes to 2 or 3 dimensions (PCA, t-SNE, UMAP) and how faithful they are."""
from __future__ import annotations

import numpy as np
import torch

METHODS = ("pca", "tsne", "umap")


def _array(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def projector(method: str = "pca", n_components: int = 2, seed: int = 0, **params):
    """Return an unfitted scikit-learn-style estimator (fit / fit_transform) for the named projection."""
    if method not in METHODS:
        raise ValueError(f"method: must be one of {METHODS}, got {method!r}")
    if n_components not in (2, 3):
        raise ValueError(f"n_components: must be 2 or 3, got {n_components}")
    if method == "pca":
        from sklearn.decomposition import PCA
        return PCA(n_components=n_components, random_state=seed)
    if method == "tsne":
        from sklearn.manifold import TSNE
        return TSNE(n_components=n_components, random_state=seed, init="pca",
                    perplexity=params.get("perplexity", 30.0))
    import umap  # imported on first use: it costs seconds of numba compilation

    return umap.UMAP(n_components=n_components, random_state=seed, n_neighbors=params.get("n_neighbors", 15),
                     min_dist=params.get("min_dist", 0.1), n_jobs=1)


def project(codes, method: str = "pca", n_components: int = 2, seed: int = 0, **params) -> np.ndarray:
    """Return the codes (N, D) projected to (N, n_components) float32 with the named method."""
    x = _array(codes).astype(np.float32).reshape(len(codes), -1)
    if len(x) < 3:
        raise ValueError(f"codes: need at least 3 points to project, got {len(x)}")
    if method == "tsne":
        params["perplexity"] = min(params.get("perplexity", 30.0), (len(x) - 1) / 3)
    if method == "umap":
        params["n_neighbors"] = min(params.get("n_neighbors", 15), len(x) - 1)
    if x.shape[1] <= n_components and method == "pca":
        return np.pad(x, ((0, 0), (0, n_components - x.shape[1])))
    return projector(method, n_components, seed, **params).fit_transform(x).astype(np.float32)


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
