"""The shipped models in pretrained/: they load, fit their data set, reproduce their cards and meet the issue's bars."""
import functools
import shlex

import pytest

import aecore as ae
from aecore.cli import VAL_FRACTION, recipe_lines
from aecore.latent import factor_scores
from conftest import MNIST, ROOT

FOLDER = ROOT / "pretrained"
RECIPE = FOLDER / "recipe.txt"
MAX_FOLDER_BYTES = 20 * 2**20


def _out(argv):
    return argv[argv.index("--out") + 1]


LINES = {_out(argv): argv for argv in recipe_lines(RECIPE)}
SHIPPED = sorted(LINES)


def _data_name(card_name: str) -> str:
    # the recipe names MNIST relative to the project root; CI may keep it elsewhere (AECORE_DATA_DIR)
    return f"idx:{MNIST}" if card_name.startswith("idx:") and card_name.rstrip("/").endswith("mnist") else card_name


@functools.lru_cache(maxsize=None)
def heldout(card_name: str):
    return ae.load_dataset(_data_name(card_name), "heldout")


@functools.lru_cache(maxsize=None)
def pca_baseline(card_name: str, code_size: int) -> float:
    # as `train --split train` does: PCA fitted on the part of the training split the model was fitted on
    train = ae.load_dataset(_data_name(card_name), "train").split(1 - VAL_FRACTION, seed=0)[0]
    return ae.pca_mse(train.images, heldout(card_name).images, code_size)


@functools.lru_cache(maxsize=None)
def model_and_metrics(out: str):
    model = ae.load(ROOT / out)
    return model, ae.evaluate(model, heldout(model.card["dataset"]["name"]))


def _card(out: str) -> dict:
    return model_and_metrics(out)[0].card


def _ratio(out: str) -> float:
    metrics = _card(out)["metrics"]
    return metrics["mse"] / metrics["pca_mse"]


def _shipped(family: str, preset=None, code=None, beta=None) -> list[str]:
    found = []
    for out in SHIPPED:
        card = ae.read_card((ROOT / out).read_bytes())
        spec, name = card["model_spec"], card["dataset"]["name"]
        if ((name.endswith("mnist") if family == "mnist" else name == family)
                and preset in (None, card["extra"]["preset"]) and code in (None, spec.code_size)
                and beta in (None, spec.beta if spec.variational else None)):
            found.append(out)
    return found


def test_the_recipe_lists_every_file_in_the_folder_and_the_folder_is_small():
    assert MNIST.joinpath("t10k-images-idx3-ubyte.gz").exists(), f"the MNIST test files are expected in {MNIST}"
    on_disk = {f"pretrained/{p.name}" for p in FOLDER.glob("*.safetensors")}
    assert on_disk == set(SHIPPED), "every shipped model comes from a recipe line, and every line's file is shipped"
    assert sum(p.stat().st_size for p in FOLDER.iterdir() if p.is_file()) < MAX_FOLDER_BYTES


@pytest.mark.parametrize("out", SHIPPED)
def test_each_model_loads_fits_its_data_and_reproduces_its_card(out):
    model, metrics = model_and_metrics(out)
    card = model.card
    # the exact command of the recipe line made it (`rebuild --device D` appends the device)
    command = card["extra"]["command"].removeprefix("python -m aecore ")
    assert command in (shlex.join(LINES[out]), shlex.join(LINES[out] + ["--device", "cuda"]))
    data = heldout(card["dataset"]["name"])
    assert tuple(data.shape) == model.spec.input_shape == tuple(card["dataset"]["shape"])
    stored = card["metrics"]
    assert stored["split"] == "heldout" and card["extra"]["train_seconds"] > 0 and card["extra"]["device"]
    assert metrics["mse"] == pytest.approx(stored["mse"], rel=1e-3, abs=1e-7)
    assert metrics["psnr"] == pytest.approx(stored["psnr"], abs=0.01)
    assert metrics["ssim"] == pytest.approx(stored["ssim"], abs=2e-3)
    assert stored["pca_mse"] == pytest.approx(pca_baseline(card["dataset"]["name"], model.spec.code_size),
                                              rel=1e-3, abs=1e-9)
    if model.spec.variational:
        for term in ("elbo", "reconstruction", "kl"):
            assert metrics[term] == pytest.approx(stored[term], rel=1e-3, abs=0.02)


def test_every_kind_of_model_the_issue_asks_for_is_shipped():
    for preset in ("vanilla", "deep", "conv", "denoising", "sparse"):
        assert _shipped("digits", preset), f"digits: no {preset} model"
    assert _shipped("digits", "vae", code=2) or _shipped("digits", "conv-vae", code=2)
    assert _shipped("sprites", "conv") and _shipped("sprites", "vae") + _shipped("sprites", "conv-vae")
    for preset in ("conv", "denoising", "sparse"):
        assert _shipped("mnist", preset), f"MNIST: no {preset} model"
    assert _shipped("mnist", "deep", code=32) + _shipped("mnist", "vanilla", code=32)
    assert _shipped("mnist", "conv", code=32)
    for code in (2, 16):
        assert _shipped("mnist", "vae", code, beta=1.0) + _shipped("mnist", "conv-vae", code, beta=1.0)


def test_mnist_bars_hold():
    assert min(_ratio(out) for out in _shipped("mnist", code=32)) <= 0.40
    for code, bar in ((2, 0.70), (16, 0.60)):
        vaes = _shipped("mnist", "vae", code, beta=1.0) + _shipped("mnist", "conv-vae", code, beta=1.0)
        assert min(_ratio(out) for out in vaes) <= bar, f"no MNIST VAE with z={code} at {bar}x PCA or better"
        for out in vaes:
            assert _card(out)["metrics"]["elbo"] < 0 and _card(out)["metrics"]["kl"] > 0


def test_the_sprites_vae_puts_x_and_y_on_single_code_dimensions():
    vaes = _shipped("sprites", "vae") + _shipped("sprites", "conv-vae")
    for out in vaes:
        model, _ = model_and_metrics(out)
        data = heldout("sprites")
        scores = factor_scores(ae.encode_dataset(model, data), {k: data.factors[k] for k in ("x", "y")})
        stored = model.card["metrics"]["factors"]
        assert set(stored) == {"shape", "scale", "rotation", "x", "y"}
        for factor in ("x", "y"):
            assert scores[factor]["score"] >= 0.9, f"{out}: {factor} R2 {scores[factor]['score']:.3f}"
            assert scores[factor]["score"] == pytest.approx(stored[factor]["score"], abs=0.01)
        assert scores["x"]["dim"] != scores["y"]["dim"]
