"""Reconstruction quality: MSE, PSNR and SSIM per image and averaged, and a model's held-out figures."""
from __future__ import annotations

import numpy as np
import torch

from .models import Autoencoder, images_of, in_batches


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Return the mean squared error per image, shape (N,)."""
    return (x - y).pow(2).flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Return the peak signal-to-noise ratio in dB per image for pixels in [0, 1], capped at 100 dB."""
    return (-10 * torch.log10(mse(x, y).clamp_min(1e-10))).clamp_max(100.0)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Return the structural similarity per image (scikit-image, data range 1, channels averaged)."""
    from skimage.metrics import structural_similarity

    a, b = x.detach().cpu().numpy(), y.detach().cpu().numpy()
    side = min(a.shape[2], a.shape[3])
    win = min(7, side if side % 2 else side - 1)  # the window must be odd and fit in the image
    values = [structural_similarity(p, q, data_range=1.0, channel_axis=0, win_size=win) for p, q in zip(a, b)]
    return torch.tensor(np.asarray(values, dtype=np.float32))


def image_metrics(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Return MSE, PSNR and SSIM per image between two batches of images."""
    return {"mse": mse(x, y), "psnr": psnr(x, y), "ssim": ssim(x, y)}


def reconstruct(model: Autoencoder, images: torch.Tensor) -> torch.Tensor:
    """Return the model's reconstructions of images (posterior mean for a VAE), in batches, on the CPU."""
    return in_batches(model, model, images)


@torch.no_grad()
def evaluate(model: Autoencoder, data) -> dict[str, float]:
    """Return averaged mse, psnr and ssim on a data set, plus the ELBO terms per image for a VAE."""
    images = images_of(data)
    out = reconstruct(model, images)
    result = {k: float(v.mean()) for k, v in image_metrics(images, out).items()}
    if model.spec.variational and not model.linear_output:
        terms = in_batches(model, lambda x: torch.stack([model.loss(x, x, "bce")[k] * len(x)
                                                         for k in ("reconstruction", "kl")])[None], images)
        rec, kl = (terms.sum(0) / len(images)).tolist()
        result.update({"elbo": -(rec + kl), "reconstruction": rec, "kl": kl})
    return result


def pca_mse(train: torch.Tensor, test: torch.Tensor, n_components: int) -> float:
    """Return the per-pixel MSE on `test` of PCA with n_components fitted on `train` (the linear baseline)."""
    from sklearn.decomposition import PCA

    a, b = train.flatten(1).numpy(), test.flatten(1).numpy()
    pca = PCA(n_components=min(n_components, *a.shape), svd_solver="full").fit(a)
    rec = pca.inverse_transform(pca.transform(b))
    return float(np.mean((rec - b) ** 2))
