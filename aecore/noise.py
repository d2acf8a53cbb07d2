"""Corruptions for denoising: each returns a new tensor in [0, 1] of the input's shape."""
from __future__ import annotations

import torch

from .models import NOISES


def add_noise(x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return x corrupted by `kind` noise at `level` (std for gaussian, fraction of pixels otherwise)."""
    if kind not in NOISES:
        raise ValueError(f"noise: must be one of {NOISES}, got {kind!r}")
    if kind == "none" or level <= 0:
        return x
    if kind == "gaussian":
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + level * noise).clamp_(0.0, 1.0)
    hit = torch.rand(x.shape, generator=generator, device=x.device) < level
    if kind == "masking":
        return x.masked_fill(hit, 0.0)
    salt = torch.rand(x.shape, generator=generator, device=x.device) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)
