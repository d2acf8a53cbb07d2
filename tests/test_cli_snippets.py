"""The command and the Python lines the Train page shows really reproduce its settings."""
import shlex

import pytest

import aecore as ae

SETTINGS = [
    ("conv", {"code_size": 12, "hidden": (8, 16)}, {"epochs": 1, "lr": 3e-3, "schedule": "cosine"}),
    ("linear", {"code_size": 5}, {"epochs": 1, "batch_size": 64}),
    ("sparse", {"code_size": 100, "sparsity": "kl", "sparsity_rho": 0.1, "sparsity_weight": 0.3}, {"epochs": 1}),
    ("deep", {"code_size": 16, "hidden": (64,), "activation": None},
     {"epochs": 1, "loss": "mse", "pretrain_epochs": 1}),
    ("denoising", {"code_size": 16}, {"epochs": 1, "noise": "masking", "noise_level": 0.45}),
    ("vae", {"code_size": 2, "beta": 4.0}, {"epochs": 1}),
]


@pytest.mark.parametrize("name,model,train", SETTINGS, ids=[s[0] for s in SETTINGS])
def test_the_command_trains_the_same_specs(name, model, train, tmp_path, monkeypatch):
    model_spec, train_spec = ae.preset(name, (1, 8, 8), model=model, train=train)
    command = ae.cli.train_command("digits", name, model_spec, train_spec, out="m.safetensors")
    argv = shlex.split(command)
    assert argv[:4] == ["python", "-m", "aecore", "train"]
    monkeypatch.chdir(tmp_path)
    assert ae.cli.main(argv[3:]) == 0
    card = ae.read_card((tmp_path / "m.safetensors").read_bytes())
    assert card["model_spec"] == model_spec and card["train_spec"] == train_spec


def test_the_python_lines_train_the_same_specs(tmp_path, monkeypatch):
    model_spec, train_spec = ae.preset("conv", (1, 8, 8), model={"code_size": 6, "hidden": (8,)},
                                       train={"epochs": 1, "noise": "gaussian", "noise_level": 0.2})
    code = ae.cli.python_snippet("digits", "conv", model_spec, train_spec, max_train=1000, max_val=100)
    assert "train = train.subset(slice(0, 1000))" in code
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(code, scope)
    assert len(scope["train"]) == 1000 and len(scope["val"]) == 100
    model = ae.load(tmp_path / "digits-conv-z6.safetensors")
    assert model.spec == model_spec and model.card["train_spec"] == train_spec
    assert len(model.card["history"]) == 1


def test_a_spec_the_command_line_cannot_express_is_refused():
    model_spec, train_spec = ae.preset("conv", (1, 8, 8), model={"bottleneck": "variational"})
    with pytest.raises(ValueError, match="bottleneck"):
        ae.cli.train_command("digits", "conv", model_spec, train_spec)
    assert "bottleneck='variational'" in ae.cli.python_snippet("digits", "conv", model_spec, train_spec)
