"""Latent-space tools: encode a data set, interpolate, sample, traverse, neighbours, KL per dimension."""
from __future__ import annotations

import torch

from .models import Autoencoder
from .train import in_batches


def _device(model: Autoencoder) -> torch.device:
    return next(model.parameters()).device


def encode_dataset(model: Autoencoder, data) -> torch.Tensor:
    """Return the codes (N, code_size) of every image of a data set or tensor, encoded in batches, on the CPU."""
    return in_batches(model, model.encode, data)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Return spherical interpolations between vectors a and b at fractions t, shape (len(t), D)."""
    t = t[:, None]
    na, nb = a.norm(), b.norm()
    cos = torch.dot(a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4:  # nearly parallel: the linear path is the same curve
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


@torch.no_grad()
def interpolate(model: Autoencoder, x0: torch.Tensor, x1: torch.Tensor, steps: int = 10,
                method: str = "linear") -> tuple[torch.Tensor, torch.Tensor]:
    """Return (images, codes) along a linear or spherical path between the codes of two images (C, H, W)."""
    if method not in ("linear", "slerp"):
        raise ValueError(f"method: must be 'linear' or 'slerp', got {method!r}")
    model.eval()
    dev = _device(model)
    z = model.encode(torch.stack([x0, x1]).to(dev))
    t = torch.linspace(0, 1, steps, device=dev)
    codes = slerp(z[0], z[1], t) if method == "slerp" else (1 - t[:, None]) * z[0] + t[:, None] * z[1]
    return model.decode(codes).cpu(), codes.cpu()


@torch.no_grad()
def sample(model: Autoencoder, n: int, temperature: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Return n images decoded from codes drawn from the prior N(0, temperature^2 I)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.spec.code_size, generator=gen) * temperature
    model.eval()
    return model.decode(z.to(_device(model))).cpu()


@torch.no_grad()
def traverse(model: Autoencoder, z: torch.Tensor, dim: int, values) -> torch.Tensor:
    """Return images decoded from copies of code z with dimension `dim` set to each of `values`."""
    if not 0 <= dim < model.spec.code_size:
        raise ValueError(f"dim: must be from 0 to {model.spec.code_size - 1}, got {dim}")
    values = torch.as_tensor(values, dtype=torch.float32)
    codes = z.detach().cpu().reshape(1, -1).repeat(len(values), 1)
    codes[:, dim] = values
    model.eval()
    return model.decode(codes.to(_device(model))).cpu()


@torch.no_grad()
def kl_per_dimension(model: Autoencoder, data) -> torch.Tensor:
    """Return the mean KL divergence of each code dimension from the prior over a data set (VAE only)."""
    if not model.spec.variational:
        raise ValueError("model: the KL per dimension exists only for a variational model")
    def kl(x):
        mu, logvar = model.encode_stats(x)
        return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())

    return in_batches(model, kl, data).mean(0)


def active_units(kl: torch.Tensor, threshold: float = 0.01) -> int:
    """Return how many code dimensions carry information (KL above the threshold, in nats)."""
    return int((kl > threshold).sum())


def neighbours(codes: torch.Tensor, queries: torch.Tensor, k: int = 8) -> torch.Tensor:
    """Return the indices (Q, k) of the k nearest codes to each query, by Euclidean distance (scikit-learn)."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(codes))
    nn = NearestNeighbors(n_neighbors=k).fit(codes.reshape(len(codes), -1).numpy())
    return torch.from_numpy(nn.kneighbors(queries.reshape(len(queries), -1).numpy(), return_distance=False))


def factor_scores(codes: torch.Tensor, factors: dict, categorical=("shape",), folds: int = 5,
                  seed: int = 0) -> dict[str, dict]:
    """Return, per true factor, the code dimension that predicts it best alone: {"dim", "score", "metric", "per_dim"}.

    Continuous factors score the cross-validated R² of a cubic polynomial of one standardised dimension (so any
    smooth monotone map counts); categorical ones the cross-validated accuracy of a depth-3 decision tree on one
    dimension (a few thresholds along that axis). Scores are means over `folds` shuffled folds.
    """
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    z = torch.as_tensor(codes, dtype=torch.float64).reshape(len(codes), -1).numpy()
    result = {}
    for name, values in factors.items():
        y = torch.as_tensor(values, dtype=torch.float64).reshape(-1).numpy()
        if len(y) != len(z):
            raise ValueError(f"factors: {name!r} has {len(y)} values for {len(z)} codes")
        if name in categorical:
            model, metric = DecisionTreeClassifier(max_depth=3, random_state=seed), "accuracy"
            y, cv = y.astype(int), StratifiedKFold(folds, shuffle=True, random_state=seed)
        else:
            model = make_pipeline(StandardScaler(), PolynomialFeatures(3), LinearRegression())
            metric, cv = "r2", KFold(folds, shuffle=True, random_state=seed)
        per_dim = [float(cross_val_score(model, z[:, [d]], y, cv=cv, scoring=metric).mean())
                   for d in range(z.shape[1])]
        best = max(range(len(per_dim)), key=per_dim.__getitem__)
        result[name] = {"dim": best, "score": per_dim[best], "metric": metric, "per_dim": per_dim}
    return result


def crossfade(x0: torch.Tensor, x1: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """Return the plain pixel blend from image x0 to x1 (C, H, W) in `steps` frames, the path that ignores the code."""
    t = torch.linspace(0, 1, steps).view(-1, 1, 1, 1)
    return (1 - t) * x0[None].cpu() + t * x1[None].cpu()


@torch.no_grad()
def decode_codes(model: Autoencoder, codes) -> torch.Tensor:
    """Return the images decoded from codes (N, D), or from one code (D,), in eval mode, on the CPU."""
    model.eval()
    z = torch.as_tensor(codes, dtype=torch.float32).reshape(-1, model.spec.code_size)
    return model.decode(z.to(_device(model))).cpu()


def rank_by_kl(kl) -> list[int]:
    """Return the code dimensions ordered by their KL, most informative first."""
    return torch.argsort(torch.as_tensor(kl), descending=True, stable=True).tolist()


COLLAPSE_TOTAL_KL = 0.1  # nats per image: a code this close to the prior tells the decoder next to nothing


def posterior_health(kl, threshold: float = 0.01, min_total: float = COLLAPSE_TOTAL_KL) -> dict:
    """Return {"active", "dims", "total", "collapsed"}: active units, code size, total KL in nats, and collapse."""
    kl = torch.as_tensor(kl, dtype=torch.float32).reshape(-1)
    active, total = active_units(kl, threshold), float(kl.sum())
    return {"active": active, "dims": len(kl), "total": total, "collapsed": active == 0 or total < min_total}


def prior_grid(code_size: int, n: int = 15, dims=(0, 1), base=None, lo: float = 0.05,
               hi: float = 0.95) -> torch.Tensor:
    """Return n*n codes over two dimensions at the prior's quantiles lo..hi, the rest from base (default 0).

    Row by row, as a picture reads: the first row has the highest value of dims[1], columns rise in dims[0].
    """
    if code_size < 2 or len(set(dims)) != 2 or not all(0 <= d < code_size for d in dims):
        raise ValueError(f"dims: need two different dimensions below {code_size}, got {tuple(dims)}")
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(lo, hi, n))
    base = torch.zeros(code_size) if base is None else torch.as_tensor(base, dtype=torch.float32).reshape(-1)
    ys, xs = torch.meshgrid(q.flip(0), q, indexing="ij")
    codes = base.repeat(n * n, 1)
    codes[:, dims[0]], codes[:, dims[1]] = xs.reshape(-1), ys.reshape(-1)
    return codes


def manifold(model: Autoencoder, n: int = 15, dims=(0, 1), base=None, lo: float = 0.05,
             hi: float = 0.95) -> torch.Tensor:
    """Return the n*n images decoded over a plane of the code at the prior's quantiles (see prior_grid), row by row."""
    return decode_codes(model, prior_grid(model.spec.code_size, n, dims, base, lo, hi))


def map_2d(codes, *others) -> list:
    """Return [codes, *others] as (N, 2) float32 arrays: a code's own axes when it has 1 or 2 dimensions, else
    the PCA plane fitted on `codes` alone, so that paths and extra points land on the same map."""
    z = torch.as_tensor(codes, dtype=torch.float32).reshape(len(codes), -1)
    sets = [z] + [torch.as_tensor(o, dtype=torch.float32).reshape(-1, z.shape[1]) for o in others]
    if z.shape[1] <= 2:
        return [torch.nn.functional.pad(s, (0, 2 - s.shape[1])).numpy() for s in sets]
    mean = z.mean(0)
    _, _, vt = torch.linalg.svd(z - mean, full_matrices=False)
    # a sign fixed by the data (largest loading positive) keeps the map from flipping between runs
    signs = torch.sign(vt[:2].gather(1, vt[:2].abs().argmax(1, keepdim=True)))
    axes = vt[:2] * signs
    return [((s - mean) @ axes.T).numpy() for s in sets]


@torch.no_grad()
def encode_sample(model: Autoencoder, data, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Return {"index", "codes", "errors"} for n images drawn at random (all when n >= N): their places in the data
    set (ascending), their codes (n, code_size) and their reconstruction MSE (n,)."""
    from .models import images_of

    images = images_of(data)
    total = len(images)
    if n >= total:
        index = torch.arange(total)
    else:
        index = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:max(1, n)].sort().values
    x = images[index]
    errors = in_batches(model, lambda b: (model(b) - b).pow(2).flatten(1).mean(1), x)
    return {"index": index, "codes": encode_dataset(model, x), "errors": errors}


def retrieval(codes: torch.Tensor, images: torch.Tensor, i: int, k: int = 8, labels=None) -> dict:
    """Return the k nearest neighbours of point i (itself left out) in code space and in pixel space:
    {"code", "pixel"} as index tensors (k,), and with labels {"code_same", "pixel_same"}, how many share i's label."""
    k = min(k, len(codes) - 1)
    found = {}
    for name, space in (("code", codes), ("pixel", images)):
        flat = torch.as_tensor(space, dtype=torch.float32).reshape(len(space), -1)
        idx = neighbours(flat, flat[i:i + 1], k + 1)[0]
        found[name] = idx[idx != i][:k]
    if labels is not None:
        labels = torch.as_tensor(labels)
        for name in ("code", "pixel"):
            found[f"{name}_same"] = int((labels[found[name]] == labels[i]).sum())
    return found
