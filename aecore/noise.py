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


def median_filter(x: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Return each image and channel of x passed through a size×size median filter (a classical denoiser)."""
    from scipy import ndimage

    out = ndimage.median_filter(x.detach().cpu().numpy(), size=(1, 1, size, size), mode="reflect")
    return torch.from_numpy(out).to(x.dtype)


def gaussian_filter(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Return each image and channel of x blurred by a Gaussian of std `sigma` pixels (a classical denoiser)."""
    from scipy import ndimage

    out = ndimage.gaussian_filter(x.detach().cpu().numpy(), sigma=(0, 0, sigma, sigma), mode="reflect")
    return torch.from_numpy(out).to(x.dtype).clamp_(0.0, 1.0)


# The largest level each kind of noise is shown at: beyond these the images are noise alone.
LEVEL_MAX = {"gaussian": 1.0, "salt-pepper": 0.6, "masking": 0.9}
