import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

import aecore as ae

from conftest import MNIST


def skimage_ssim(x: torch.Tensor, y: torch.Tensor, win: int) -> np.ndarray:
    """scikit-image's SSIM, one image per call: the reference the batched one must reproduce."""
    return np.array([structural_similarity(a, b, data_range=1.0, channel_axis=0, win_size=win)
                     for a, b in zip(x.numpy(), y.numpy())])


@pytest.mark.parametrize("name, win", [("digits", 7), ("sprites", 7), ("mnist", 7)])
@pytest.mark.parametrize("noise", ["gaussian", "salt-pepper", "masking"])
def test_batched_ssim_is_scikit_images(name, win, noise):
    ds = ae.load_dataset(f"idx:{MNIST}" if name == "mnist" else name, "heldout", n=60)
    clean = ds.images
    noisy = ae.add_noise(clean, noise, 0.4, torch.Generator().manual_seed(1))
    got = ae.ssim(clean, noisy).numpy()
    np.testing.assert_allclose(got, skimage_ssim(clean, noisy, win), atol=2e-6)
    assert got.std() > 0.01  # varied images, so a constant could not pass
    np.testing.assert_allclose(ae.ssim(clean, clean).numpy(), 1.0, atol=1e-6)


def test_ssim_window_shrinks_to_fit_small_images():
    x = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    y = (x + 0.2 * torch.rand(5, 1, 6, 6)).clamp(0, 1)
    np.testing.assert_allclose(ae.ssim(x, y).numpy(), skimage_ssim(x, y, 5), atol=2e-6)


def test_spread_tells_a_trained_model_from_a_collapsed_one(digits_split):
    train, val = digits_split
    model_spec, train_spec = ae.preset("deep", train.shape, train={"epochs": 5, "batch_size": 64, "lr": 3e-3})
    model = ae.build_model(model_spec)
    ae.fit(model, train, val, train_spec)
    x = val.images
    assert ae.metrics.evaluate(model, val)["spread"] > 0.5  # the outputs vary nearly as much as the inputs
    assert ae.metrics.spread(x, x) == pytest.approx(1.0)
    average = x.mean(0, keepdim=True).expand_as(x)  # what a collapsed model outputs: one image for every input
    assert ae.metrics.spread(x, average) == 0.0 < ae.metrics.COLLAPSED_SPREAD
