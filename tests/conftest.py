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


def app_page(runs: dict, page: str, model: str | None, dataset: str = "digits"):
    """Return an AppTest of the whole app switched to `page`, with these session runs and sidebar choices."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["runs"] = dict(runs)
    at.session_state["dataset_label"] = dataset
    if model:
        at.session_state["model_label"] = f"this session: {model}"
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at
