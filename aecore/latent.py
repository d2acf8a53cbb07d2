"""Latent-space tools: encode a data set, interpolate, sample, traverse, neighbours, KL per dimension."""
from __future__ import annotations

import torch

from .models import Autoencoder, in_batches


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
