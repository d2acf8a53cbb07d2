import json
import pickle
import struct

import pytest
import torch
from safetensors.torch import save as save_tensors

import aecore as ae


@pytest.mark.parametrize("name", sorted(ae.PRESETS))
def test_save_load_round_trips_every_preset_bit_for_bit(name, tmp_path, digits_split):
    train, val = digits_split
    model_spec, train_spec = ae.preset(name, train.shape, train=dict(epochs=1))
    model = ae.build_model(model_spec)
    history = ae.fit(model, train, val, train_spec)
    path = ae.save(model, tmp_path / "m.safetensors", train_spec=train_spec, history=history,
                   dataset={"name": "digits", "shape": list(train.shape)}, metrics={"mse": 0.5})
    loaded = ae.load(path)
    assert loaded.spec == model_spec
    assert loaded.card["train_spec"] == train_spec
    assert loaded.card["history"] == json.loads(json.dumps(history))
    assert loaded.card["metrics"] == {"mse": 0.5} and loaded.card["versions"]["torch"] == torch.__version__
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    assert torch.equal(model.eval()(val.images[:16]), loaded(val.images[:16]))
    assert ae.load(path.read_bytes()).spec == model_spec


def _saved(tmp_path, digits, **spec_changes):
    model = ae.build_model(ae.preset("deep", digits.shape, model=spec_changes)[0])
    return ae.save(model, tmp_path / "good.safetensors")


def _with_card(data: bytes, edit) -> bytes:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    card = json.loads(header["__metadata__"]["aecore"])
    edit(card)
    header["__metadata__"]["aecore"] = json.dumps(card)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data[8 + n:]


def test_pickle_renamed_is_refused_and_not_executed(tmp_path):
    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ae.CheckpointError, match="not a safetensors file"):
        ae.load(path)
    torch.save({"w": torch.zeros(3)}, tmp_path / "torch.safetensors")
    with pytest.raises(ae.CheckpointError, match="not a safetensors file"):
        ae.load(tmp_path / "torch.safetensors")
    assert not (tmp_path / "pwned").exists()


def test_truncated_file_is_refused(tmp_path, digits):
    data = _saved(tmp_path, digits).read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")
    for cut in (4, 100, header - 1, (header + len(data)) // 2, len(data) - 1):
        (tmp_path / "cut.safetensors").write_bytes(data[:cut])
        # a cut anywhere past the header's length is called what it is
        with pytest.raises(ae.CheckpointError, match="shorter than a header" if cut < 8 else "truncated"):
            ae.load(tmp_path / "cut.safetensors")


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["model_spec"].update(code_size=10**9), "code_size"),
    (lambda c: c["model_spec"].update(hidden=[256, -4]), "hidden"),
    (lambda c: c["model_spec"].update(input_shape=[1, 10**6, 10**6]), "input_shape"),
    (lambda c: c["model_spec"].update(payload="__import__('os')"), "unknown fields"),
    (lambda c: c["train_spec"].update(lr=-1), "lr"),
    (lambda c: c.update(format="other/9"), "format"),
    (lambda c: c.update(history={"a": 1}), "history"),
    (lambda c: c["model_spec"].update(code_size=12), "should be float32 of shape"),
])
def test_bad_metadata_is_refused_with_a_reason(edit, message, tmp_path, digits):
    data = _saved(tmp_path, digits).read_bytes()
    with pytest.raises(ae.CheckpointError, match=message):
        ae.load(_with_card(data, edit))


def test_foreign_safetensors_is_refused(tmp_path):
    with pytest.raises(ae.CheckpointError, match="no aecore metadata"):
        ae.load(save_tensors({"w": torch.zeros(2)}))
    with pytest.raises(ae.CheckpointError, match="no model file"):
        ae.load(tmp_path / "missing.safetensors")


def test_read_card_needs_no_weights(tmp_path, digits):
    data = _saved(tmp_path, digits).read_bytes()
    n = int.from_bytes(data[:8], "little")
    card = ae.read_card(data[:8 + n])
    assert card["model_spec"].code_size == 16
