"""Reconstruction quality: MSE, PSNR and SSIM per image and averaged, and a model's held-out figures."""
from __future__ import annotations

import numpy as np
import torch

from .models import Autoencoder, TrainSpec, images_of
from .train import evaluate_loss, in_batches


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Return the mean squared error per image, shape (N,)."""
    return (x - y).pow(2).flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Return the peak signal-to-noise ratio in dB per image for pixels in [0, 1], capped at 100 dB."""
    return (-10 * torch.log10(mse(x, y).clamp_min(1e-10))).clamp_max(100.0)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Return the structural similarity per image: scikit-image's `structural_similarity` (7×7 uniform window, sample
    covariance, data range 1, the border cropped, channels averaged), computed for the whole batch at once with the
    scipy filter it uses, since scikit-image takes one image per call (800 calls cost ~50 ms on a Denoise move)."""
    from scipy.ndimage import uniform_filter

    a = x.detach().cpu().numpy().astype(np.float32, copy=False)
    b = y.detach().cpu().numpy().astype(np.float32, copy=False)
    side = min(a.shape[2], a.shape[3])
    win = min(7, side if side % 2 else side - 1)  # the window must be odd and fit in the image
    size, cov_norm = (1, 1, win, win), win * win / (win * win - 1)

    def mean(v: np.ndarray) -> np.ndarray:
        return uniform_filter(v, size=size)

    ux, uy = mean(a), mean(b)
    vx, vy, vxy = (cov_norm * (mean(a * a) - ux * ux), cov_norm * (mean(b * b) - uy * uy),
                   cov_norm * (mean(a * b) - ux * uy))
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    inner = s[:, :, pad:s.shape[2] - pad, pad:s.shape[3] - pad]
    return torch.from_numpy(inner.mean(axis=(2, 3), dtype=np.float64).mean(axis=1).astype(np.float32))


def image_metrics(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Return MSE, PSNR and SSIM per image between two batches of images."""
    return {"mse": mse(x, y), "psnr": psnr(x, y), "ssim": ssim(x, y)}


def reconstruct(model: Autoencoder, images: torch.Tensor) -> torch.Tensor:
    """Return the model's reconstructions of images (posterior mean for a VAE), in batches, on the CPU."""
    return in_batches(model, model, images)


# Below this share of the inputs' variation across images, the reconstructions are nearly one image for every input
COLLAPSED_SPREAD = 0.05


def spread(images: torch.Tensor, outputs: torch.Tensor) -> float:
    """Return how much the outputs vary from image to image, as a share of how much the inputs do (variance across
    images, summed over pixels): near 1 for a good autoencoder, near 0 for one that collapsed to an average image."""
    return float(outputs.var(0, correction=0).sum() / images.var(0, correction=0).sum().clamp_min(1e-12))


@torch.no_grad()
def evaluate(model: Autoencoder, data) -> dict[str, float]:
    """Return averaged mse, psnr and ssim on a data set and the outputs' `spread`, plus the ELBO terms per image for a
    VAE."""
    images = images_of(data)
    out = reconstruct(model, images)
    result = {k: float(v.mean()) for k, v in image_metrics(images, out).items()}
    result["spread"] = spread(images, out)
    if model.spec.variational and not model.linear_output:
        terms = evaluate_loss(model, images, TrainSpec(loss="bce"))
        rec, kl = terms["reconstruction"], terms["kl"]
        result.update({"elbo": -(rec + kl), "reconstruction": rec, "kl": kl})
    return result


def pca_mse(train: torch.Tensor, test: torch.Tensor, n_components: int) -> float:
    """Return the per-pixel MSE on `test` of PCA with n_components fitted on `train` (the linear baseline)."""
    from sklearn.decomposition import PCA

    a, b = train.flatten(1).numpy(), test.flatten(1).numpy()
    pca = PCA(n_components=min(n_components, *a.shape), svd_solver="full").fit(a)
    rec = pca.inverse_transform(pca.transform(b))
    return float(np.mean((rec - b) ** 2))


def noise_sweep(clean: torch.Tensor, kind: str, levels, denoisers: dict, seed: int = 0) -> dict[str, dict]:
    """Return {"psnr": {name: [per level]}, "ssim": {...}} of each denoiser's output against the clean images.

    `denoisers` maps a name to a function from noisy images to images; "noisy input" (no denoising) comes first.
    Every denoiser sees the same noisy images at a level, and the noise is the same for a seed.
    """
    from .noise import add_noise

    names = ["noisy input", *denoisers]
    result = {"psnr": {n: [] for n in names}, "ssim": {n: [] for n in names}}
    for level in levels:
        noisy = add_noise(clean, kind, float(level), torch.Generator().manual_seed(seed))
        for name in names:
            out = noisy if name == "noisy input" else denoisers[name](noisy)
            result["psnr"][name].append(float(psnr(clean, out).mean()))
            result["ssim"][name].append(float(ssim(clean, out).mean()))
    return result


def percentile_of(values: torch.Tensor, value: float) -> float:
    """Return the percentage of `values` below `value` (how unusual an image's error is among a data set's)."""
    return 100.0 * float((values < value).float().mean()) if len(values) else 0.0


def fingerprint(model: Autoencoder) -> str:
    """Return a short hash of a model's spec and weights: the same model gives the same key for caches."""
    import hashlib

    h = hashlib.sha1(repr(model.spec).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
