import pytest
import torch

import aecore as ae
from aecore.latent import factor_scores


def _fake_codes(n=600):
    g = torch.Generator().manual_seed(0)
    shape = torch.randint(3, (n,), generator=g).float()
    x, y = torch.rand(n, generator=g), torch.rand(n, generator=g)
    noise = lambda: 0.02 * torch.randn(n, generator=g)  # noqa: E731
    # dim 0: pure noise; dim 1: a monotone but non-linear map of x; dim 2: -y; dim 3: the shape's level
    codes = torch.stack([torch.randn(n, generator=g), torch.tanh(3 * (x - 0.5)) + noise(), -y + noise(),
                         shape + noise()], 1)
    return codes, {"shape": shape, "x": x, "y": y}


def test_factor_scores_find_the_dimension_of_each_factor():
    codes, factors = _fake_codes()
    scores = factor_scores(codes, factors)
    assert set(scores) == {"shape", "x", "y"}
    assert scores["x"]["dim"] == 1 and scores["x"]["metric"] == "r2" and scores["x"]["score"] > 0.95
    assert scores["y"]["dim"] == 2 and scores["y"]["score"] > 0.95
    assert scores["shape"]["dim"] == 3 and scores["shape"]["metric"] == "accuracy" and scores["shape"]["score"] > 0.95
    assert len(scores["x"]["per_dim"]) == 4
    assert scores["x"]["per_dim"][0] < 0.05  # noise predicts nothing out of fold
    assert scores["shape"]["per_dim"][0] < 0.5  # chance is one in three


def test_factor_scores_on_a_real_sprites_encoder_and_bad_input():
    sprites = ae.load_dataset("sprites", n=500)
    pixels = sprites.images.flatten(1)
    centre_x = (pixels.view(-1, 32, 32).sum(1) * torch.arange(32.0)).sum(1) / pixels.sum(1)
    codes = torch.stack([centre_x, torch.randn(len(pixels))], 1)
    scores = factor_scores(codes, {"x": sprites.factors["x"], "y": sprites.factors["y"]})
    assert scores["x"]["dim"] == 0 and scores["x"]["score"] > 0.9  # the centre of mass is the position
    assert scores["y"]["score"] < 0.1
    with pytest.raises(ValueError, match="factors"):
        factor_scores(codes, {"x": sprites.factors["x"][:10]})
