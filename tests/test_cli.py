import json
import os
import subprocess
import sys

from aecore.metrics import COLLAPSED_SPREAD

from conftest import MNIST, ROOT


def _run(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "aecore", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_trains_lists_and_evaluates_on_the_mnist_idx_folder(tmp_path):
    assert (MNIST / "t10k-images-idx3-ubyte.gz").exists(), f"the MNIST test files are expected in {MNIST}"
    dataset = f"idx:{MNIST}"
    out = _run("train", "--dataset", dataset, "--preset", "deep", "--hidden", "128", "--code-size", "16",
               "--epochs", "2", "--out", "mnist-deep.safetensors", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "epoch" in out.stderr  # the progress bar
    listing = _run("list", ".", cwd=tmp_path)
    assert listing.returncode == 0 and "mnist-deep.safetensors" in listing.stdout and "deep" in listing.stdout
    ev = _run("eval", "mnist-deep.safetensors", "--dataset", dataset, "--split", "heldout", "--json", cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    metrics = json.loads(ev.stdout)
    assert set(metrics) == {"mse", "psnr", "ssim", "spread"}
    assert 0 < metrics["mse"] < 0.07 and metrics["ssim"] > 0.2 and metrics["spread"] > COLLAPSED_SPREAD
    card = json.loads(_run("eval", "mnist-deep.safetensors", "--dataset", dataset, "--json", cwd=tmp_path).stdout)
    assert card == metrics


def test_cli_reports_bad_settings_in_one_line(tmp_path):
    out = _run("train", "--dataset", "digits", "--preset", "conv", "--lr", "-1", "--out", "x.safetensors",
               cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip().startswith("error: lr")
    assert "Traceback" not in out.stderr
    out = _run("eval", "missing.safetensors", "--dataset", "digits", cwd=tmp_path)
    assert out.returncode == 2 and "no model file" in out.stderr
