"""Save and load models as one .safetensors file with their specs, data set, metrics and history in its metadata.

Loading reads and validates the header and metadata before allocating anything; pickle is never involved.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from .models import Autoencoder, ModelSpec, TrainSpec, build_model

FORMAT = "aecore/1"
MAX_FILE_BYTES = 500 * 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024 * 1024


class CheckpointError(ValueError):
    """Raised when a file is not a valid aecore model; the message says what is wrong."""


def _versions() -> dict:
    from . import __version__
    return {"aecore": __version__, "torch": torch.__version__, "python": platform.python_version()}


def to_bytes(model: Autoencoder, train_spec: TrainSpec | None = None, dataset: dict | None = None,
             history: list | None = None, metrics: dict | None = None, extra: dict | None = None) -> bytes:
    """Return the model as safetensors bytes, its specs and card in the metadata."""
    card = {
        "format": FORMAT,
        "model_spec": model.spec.to_dict(),
        "train_spec": (train_spec or TrainSpec()).to_dict(),
        "dataset": dataset or {},
        "metrics": metrics or {},
        "history": history or [],
        "versions": _versions(),
        "extra": extra or {},
    }
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    return save_tensors(tensors, metadata={"aecore": json.dumps(card)})


def save(model: Autoencoder, path, **card) -> Path:
    """Write the model to `path` atomically (temporary file, then rename) and return the path."""
    path = Path(path)
    data = to_bytes(model, **card)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _header(data: bytes) -> dict:
    if len(data) < 8:
        raise CheckpointError("This is not a safetensors file: it is shorter than a header.")
    n = int.from_bytes(data[:8], "little")
    if not 2 <= n <= MAX_HEADER_BYTES:
        raise CheckpointError("This is not a safetensors file (its header length is invalid); "
                              "pickled PyTorch files (.pt, .pth, .ckpt) are never loaded.")
    if n > len(data) - 8:
        raise CheckpointError(f"This file is truncated: its header should take {n:,} bytes, and only "
                              f"{len(data) - 8:,} follow the header's length; download or copy it again.")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"This is not a safetensors file: its header is not JSON ({e}).") from e
    if not isinstance(header, dict):
        raise CheckpointError("This is not a safetensors file: its header is not a JSON object.")
    return header


def read_card(data: bytes) -> dict:
    """Return the validated metadata card of safetensors bytes (specs parsed), without reading any tensor."""
    meta = _header(data).get("__metadata__") or {}
    if not isinstance(meta, dict) or "aecore" not in meta:
        raise CheckpointError("This safetensors file has no aecore metadata, so it is not a model saved by this app.")
    try:
        card = json.loads(meta["aecore"])
    except (TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"The model's metadata is not valid JSON ({e}).") from e
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise CheckpointError(f"The model's metadata has an unknown format; expected {FORMAT!r}.")
    try:
        card["model_spec"] = ModelSpec.from_dict(card.get("model_spec"))
        card["train_spec"] = TrainSpec.from_dict(card.get("train_spec", {}))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"The model's metadata is out of bounds: {e}") from e
    for key, kind in (("dataset", dict), ("metrics", dict), ("history", list), ("versions", dict), ("extra", dict)):
        card.setdefault(key, kind())
        if not isinstance(card[key], kind):
            raise CheckpointError(f"The model's metadata field {key!r} should be a {kind.__name__}.")
    return card


def _check_tensors(header: dict, spec: ModelSpec) -> None:
    with torch.device("meta"):  # shapes only, nothing allocated
        expected = {k: tuple(v.shape) for k, v in Autoencoder(spec).state_dict().items()}
    found = {k: v for k, v in header.items() if k != "__metadata__"}
    if set(found) != set(expected):
        missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        raise CheckpointError(f"The weights do not match the model in the metadata (missing {missing[:3]}, "
                              f"unexpected {extra[:3]}).")
    for k, shape in expected.items():
        entry = found[k]
        if not isinstance(entry, dict) or entry.get("dtype") != "F32" or tuple(entry.get("shape", ())) != shape:
            raise CheckpointError(f"The tensor {k!r} should be float32 of shape {shape}, the file has {entry}.")


def load(source, device: str | torch.device = "cpu") -> Autoencoder:
    """Return the model stored in a .safetensors path or bytes, with its card in `model.card`; refuses bad files."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"There is no model file at {path}.")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CheckpointError(f"{path.name} is larger than {MAX_FILE_BYTES // 2**20} MB; refusing to load it.")
        data = path.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise CheckpointError(f"The file is larger than {MAX_FILE_BYTES // 2**20} MB; refusing to load it.")
    card = read_card(data)
    spec = card.pop("model_spec")
    _check_tensors(_header(data), spec)
    try:
        tensors = load_tensors(data)
    except Exception as e:  # safetensors raises its own error type for inconsistent offsets or truncation
        raise CheckpointError(f"The file's weights are corrupt or truncated ({e}).") from e
    model = build_model(spec, seed=None)
    model.load_state_dict(tensors, strict=True)
    model.card = card
    return model.to(device).eval()
