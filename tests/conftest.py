import os
from pathlib import Path

import pytest
import torch

import aecore as ae

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("AECORE_DATA_DIR", ROOT.parent / "shared" / "data"))
MNIST = DATA_DIR / "mnist"
os.environ.setdefault("AECORE_WARM_UP", "0")  # no background UMAP compilation while tests train


@pytest.fixture(scope="session")
def digits():
    return ae.load_dataset("digits")


@pytest.fixture(scope="session")
def digits_split(digits):
    return digits.split(0.9, seed=0)


@pytest.fixture(autouse=True)
def _fixed_seed():
    torch.manual_seed(0)
