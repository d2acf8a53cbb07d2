import numpy as np
import pytest
import torch

import aecore as ae


@pytest.fixture(scope="module")
def trained(digits_split):
    train, val = digits_split
    model_spec, train_spec = ae.preset("vae", train.shape, train=dict(epochs=15, lr=3e-3, batch_size=64))
    model = ae.build_model(model_spec)
    ae.fit(model, train, val, train_spec)
    return model, val


def test_metrics_on_known_images():
    x = torch.rand(4, 1, 16, 16)
    assert torch.allclose(ae.mse(x, x), torch.zeros(4))
    assert torch.all(ae.psnr(x, x) == 100)
    assert torch.allclose(ae.ssim(x, x), torch.ones(4))
    y = (x + 0.1).clamp(0, 1)
    assert torch.allclose(ae.psnr(x, y), -10 * torch.log10(ae.mse(x, y)))
    assert torch.all(ae.ssim(x, torch.rand(4, 1, 16, 16)) < 0.5)


def test_evaluate_reports_elbo_terms_for_a_vae(trained):
    model, val = trained
    metrics = ae.evaluate(model, val)
    assert {"mse", "psnr", "ssim", "elbo", "reconstruction", "kl"} <= set(metrics)
    assert metrics["elbo"] == pytest.approx(-(metrics["reconstruction"] + metrics["kl"]))


def test_encode_interpolate_sample_traverse(trained):
    model, val = trained
    codes = ae.encode_dataset(model, val)
    assert codes.shape == (len(val), model.spec.code_size)
    x0, x1 = val.images[0], val.images[1]
    for method in ("linear", "slerp"):
        images, path = ae.interpolate(model, x0, x1, steps=7, method=method)
        assert images.shape == (7, 1, 8, 8)
        assert torch.allclose(path[0], codes[0], atol=1e-5) and torch.allclose(path[-1], codes[1], atol=1e-5)
    assert ae.sample(model, 5, temperature=0.5).shape == (5, 1, 8, 8)
    strip = ae.traverse(model, codes[0], dim=2, values=torch.linspace(-3, 3, 5))
    assert strip.shape == (5, 1, 8, 8) and not torch.allclose(strip[0], strip[-1])
    kl = ae.kl_per_dimension(model, val)
    assert kl.shape == (model.spec.code_size,) and torch.all(kl >= 0)
    assert 1 <= ae.active_units(kl) <= model.spec.code_size


def test_slerp_keeps_the_norm_between_equal_norm_codes():
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    path = ae.slerp(a, b, torch.linspace(0, 1, 9))
    assert torch.allclose(path.norm(dim=1), torch.full((9,), 3.0))


def test_neighbours_find_the_point_itself_first(trained):
    model, val = trained
    codes = ae.encode_dataset(model, val)
    idx = ae.neighbours(codes, codes[:10], k=4)
    assert idx.shape == (10, 4) and torch.equal(idx[:, 0], torch.arange(10))


@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
def test_projection_keeps_digit_classes_apart(method, digits):
    sub = digits.subset(torch.arange(600))
    x = sub.images.flatten(1)
    y = ae.project(x, method=method, n_components=2)
    assert y.shape == (600, 2) and np.isfinite(y).all()
    assert ae.trustworthiness(x, y) > (0.8 if method == "pca" else 0.9)
    assert ae.knn_accuracy(y, sub.labels) > (0.5 if method == "pca" else 0.85)


def test_projection_to_3d_and_bad_arguments(digits):
    x = digits.images[:100].flatten(1)
    assert ae.project(x, "pca", 3).shape == (100, 3)
    with pytest.raises(ValueError, match="method"):
        ae.project(x, "isomap")
    with pytest.raises(ValueError, match="n_components"):
        ae.project(x, "pca", 5)


def test_codes_keep_classes_better_than_chance(trained):
    model, val = trained
    assert ae.knn_accuracy(ae.encode_dataset(model, val), val.labels) > 0.6


def test_aligned_frames_do_not_flip_between_epochs(digits):
    x = digits.images[:300].flatten(1).numpy()
    first = ae.aligned_frame(x)
    rotated = x @ np.linalg.qr(np.random.default_rng(0).normal(size=(64, 64)))[0]  # same geometry, new axes
    second = ae.aligned_frame(rotated, first)
    assert first.shape == (300, 2)
    assert np.abs(second - first).max() < 1e-3
