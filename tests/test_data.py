import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from aecore.data import DOWNLOADABLE, ImageDataset, data_dir, dataset_names, load_dataset, read_idx

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MNIST_DIR = Path(os.environ.get("AECORE_DATA_DIR", SHARED_DATA)) / "mnist"


@pytest.fixture(scope="module")
def sprites():
    return load_dataset("sprites", n=10_000, seed=0)


@pytest.fixture(scope="module")
def mnist():
    return load_dataset(f"idx:{MNIST_DIR}")


def write_idx(path, array, magic=None):
    array = np.asarray(array, dtype=np.uint8)
    head = magic if magic is not None else bytes([0, 0, 8, array.ndim])
    data = head + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def centre_of_mass(images):
    h, w = images.shape[-2:]
    mass = images.sum(dim=(-2, -1))
    rows = (images.sum(-1) * torch.arange(h)).sum(-1) / mass
    cols = (images.sum(-2) * torch.arange(w)).sum(-1) / mass
    return rows.flatten(), cols.flatten()


def corr(a, b):
    return float(np.corrcoef(a.numpy(), b.numpy())[0, 1])


def test_digits():
    ds = load_dataset("digits")
    assert ds.images.shape == (1797, 1, 8, 8) and ds.shape == (1, 8, 8) and len(ds) == 1797
    assert ds.images.dtype == torch.float32 and ds.images.is_contiguous()
    assert ds.images.min() == 0 and ds.images.max() == 1
    assert ds.labels.dtype == torch.int64 and set(ds.labels.tolist()) == set(range(10))
    assert ds.classes == [str(i) for i in range(10)] and ds.name == "digits"


def test_sprites_shape_range_and_determinism(sprites):
    assert sprites.images.shape == (10_000, 1, 32, 32) and sprites.images.dtype == torch.float32
    assert sprites.images.min() == 0 and sprites.images.max() == 1
    assert ((sprites.images > 0) & (sprites.images < 1)).any()  # anti-aliased edges
    assert (sprites.images.sum(dim=(1, 2, 3)) > 5).all()  # every image shows a shape
    assert sprites.classes == ["square", "ellipse", "heart"]
    assert torch.equal(load_dataset("sprites", n=10_000, seed=0).images, sprites.images)
    assert not torch.equal(load_dataset("sprites", n=10_000, seed=1).images, sprites.images)
    assert len(load_dataset("sprites", n=50)) == 50


def test_sprites_factors(sprites):
    f = sprites.factors
    assert set(f) == {"shape", "scale", "rotation", "x", "y"}
    assert all(v.shape == (10_000,) and v.dtype == torch.float32 for v in f.values())
    assert torch.equal(f["shape"], sprites.labels.float())
    assert set(f["shape"].tolist()) == {0, 1, 2}
    assert f["scale"].min() >= 0.5 and f["scale"].max() <= 1 and len(f["scale"].unique()) == 6
    assert f["rotation"].min() >= 0 and f["rotation"].max() < 2 * np.pi and len(f["rotation"].unique()) == 16
    for axis in "xy":
        assert f[axis].min() == 0 and f[axis].max() == 1 and len(f[axis].unique()) == 16
    rows, cols = centre_of_mass(sprites.images)
    assert corr(f["x"], cols) > 0.9 and corr(f["y"], rows) > 0.9
    assert corr(f["scale"], sprites.images.sum(dim=(1, 2, 3))) > 0.8


def test_sprite_shapes_differ(sprites):
    # Averaged over positions the mean images blur together, but the shapes' areas differ.
    mass = sprites.images.sum(dim=(1, 2, 3))
    means = sorted(float(mass[sprites.labels == k].mean()) for k in range(3))
    assert means[1] > 1.08 * means[0] and means[2] > 1.08 * means[1]
    # Images with the same scale, rotation and position but another shape must differ.
    f = sprites.factors
    key = torch.stack([f["scale"] * 10, f["rotation"] * 10, f["x"] * 15, f["y"] * 15], 1).round().long()
    groups = {}
    for i, (k, label) in enumerate(zip(map(tuple, key.tolist()), sprites.labels.tolist())):
        groups.setdefault(k, {}).setdefault(label, i)
    pairs = [(g[a], g[b]) for g in groups.values() for a in g for b in g if a < b]
    assert len(pairs) > 100
    for i, j in pairs:
        assert (sprites.images[i] - sprites.images[j]).abs().sum() > 1


def test_split_sizes_disjoint_covering_and_deterministic():
    ds = load_dataset("digits")
    ds.images = ds.images.clone()
    ds.images[:, 0, 0, 0] = torch.arange(len(ds)) / len(ds)  # tag each image with its index
    a, b = ds.split(0.75, seed=3)
    assert len(a) == round(0.75 * 1797) and len(a) + len(b) == 1797
    tags = lambda d: set((d.images[:, 0, 0, 0] * 1797).round().long().tolist())  # noqa: E731
    assert tags(a).isdisjoint(tags(b)) and tags(a) | tags(b) == set(range(1797))
    a2, _ = ds.split(0.75, seed=3)
    assert torch.equal(a.images, a2.images) and torch.equal(a.labels, a2.labels)
    assert not torch.equal(ds.split(0.75, seed=4)[0].images, a.images)
    first, rest = ds.split(0.5, seed=None)
    assert torch.equal(first.images, ds.images[:898]) and torch.equal(rest.images, ds.images[898:])
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            ds.split(bad)


def test_subset_keeps_factors_and_labels(sprites):
    sub = sprites.subset([3, 1, 4])
    assert isinstance(sub, ImageDataset) and len(sub) == 3 and sub.images.is_contiguous()
    assert torch.equal(sub.labels, sprites.labels[[3, 1, 4]])
    assert torch.equal(sub.factors["x"], sprites.factors["x"][[3, 1, 4]])
    assert len(sprites.subset(slice(10, 20))) == 10 and len(sprites.subset(sprites.labels == 0)) > 0


def test_named_splits_of_idx_mnist(mnist):
    assert len(mnist) == 10_000 and mnist.shape == (1, 28, 28) and mnist.images.max() == 1
    assert mnist.classes == [str(i) for i in range(10)] and mnist.labels[:4].tolist() == [7, 2, 1, 0]
    train = load_dataset(f"idx:{MNIST_DIR}", split="train")
    heldout = load_dataset(f"idx:{MNIST_DIR}", split="heldout")
    assert len(train) == 8000 and len(heldout) == 2000
    assert torch.equal(heldout.images[0], mnist.images[8000]) and torch.equal(train.images[-1], mnist.images[7999])
    assert torch.equal(heldout.labels, mnist.labels[8000:])
    assert len(load_dataset(f"idx:{MNIST_DIR}", split="heldout", n=100)) == 100
    with pytest.raises(ValueError, match="split"):
        load_dataset("digits", split="test")


def test_digits_named_splits():
    train, heldout = load_dataset("digits", split="train"), load_dataset("digits", split="heldout")
    assert len(train) == round(1797 * 0.8) and len(train) + len(heldout) == 1797


@pytest.mark.parametrize("name", DOWNLOADABLE)
def test_torchvision_missing_files_say_where_and_what_instead(name, tmp_path, monkeypatch):
    monkeypatch.setenv("AECORE_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    with pytest.raises(FileNotFoundError) as info:
        load_dataset(name)
    message = str(info.value)
    assert str(tmp_path) in message and "digits" in message and "sprites" in message
    assert ("t10k-images-idx3-ubyte" if name != "cifar10" else "data_batch_1") in message


def test_torchvision_files_in_data_dir_load(tmp_path, monkeypatch):
    monkeypatch.setenv("AECORE_DATA_DIR", str(tmp_path))
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count in (("train", 6), ("t10k", 4)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", np.full((count, 28, 28), 255 if prefix == "train" else 0))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(count))
    ds = load_dataset("mnist")
    assert ds.images.shape == (10, 1, 28, 28) and ds.images.dtype == torch.float32
    assert ds.images[:6].min() == 1 and ds.images[6:].max() == 0  # train first, then test
    assert ds.labels.tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3] and ds.classes[:2] == ["0", "1"]
    assert len(load_dataset("mnist", split="heldout")) == 4 and len(load_dataset("mnist", split="train", n=2)) == 2


def test_idx_roundtrip_with_labels(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 3))
    write_idx(tmp_path / "toy-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "toy-labels-idx1-ubyte", [0, 2, 1, 2, 0])
    ds = load_dataset(f"idx:{tmp_path}")
    assert ds.images.shape == (5, 1, 4, 3) and torch.allclose(ds.images[:, 0] * 255, torch.tensor(images).float())
    assert ds.labels.tolist() == [0, 2, 1, 2, 0] and ds.classes == ["0", "1", "2"]


def test_idx_malformed_files(tmp_path):
    bad = tmp_path / "bad-images-idx3-ubyte"
    write_idx(bad, np.zeros((2, 3, 3)), magic=b"\x00\x00\x09\x03")
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad, 3)
    write_idx(bad, np.zeros((2, 3, 3)))
    bad.write_bytes(bad.read_bytes()[:-1])
    with pytest.raises(ValueError, match="truncated"):
        load_dataset(f"idx:{tmp_path}")
    bad.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError):
        load_dataset(f"idx:{tmp_path}")
    bad.unlink()
    gz = tmp_path / "bad-images-idx3-ubyte.gz"
    write_idx(gz, np.zeros((2, 3, 3)))
    gz.write_bytes(gz.read_bytes()[:-10])
    with pytest.raises(ValueError):
        load_dataset(f"idx:{tmp_path}")


def test_idx_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_dataset(f"idx:{tmp_path}")
    write_idx(tmp_path / "a-images-idx3-ubyte", np.zeros((2, 3, 3)))
    write_idx(tmp_path / "b-images-idx3-ubyte", np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="a-images-idx3-ubyte"):
        load_dataset(f"idx:{tmp_path}")
    (tmp_path / "b-images-idx3-ubyte").unlink()
    write_idx(tmp_path / "a-labels-idx1-ubyte", [1, 2, 3])
    with pytest.raises(ValueError, match="labels"):
        load_dataset(f"idx:{tmp_path}")


def test_image_folder(tmp_path):
    from PIL import Image

    rgba = Image.new("RGBA", (40, 20), (128, 128, 128, 255))
    palette = Image.new("L", (10, 10), 200).convert("P")
    Image.new("L", (28, 28), 255).save(tmp_path / "a.png")
    rgba.save(tmp_path / "b.png")
    palette.save(tmp_path / "c.png")
    (tmp_path / "notes.txt").write_text("not an image")
    grey = load_dataset(f"folder:{tmp_path}")
    assert grey.images.shape == (3, 1, 28, 28) and grey.labels is None and grey.classes == []
    assert grey.images.dtype == torch.float32 and abs(grey.images[0].mean() - 1) < 1e-6
    Image.new("RGB", (16, 16), (255, 0, 0)).save(tmp_path / "d.png")
    colour = load_dataset(f"folder:{tmp_path}", n=4)
    assert colour.images.shape == (4, 3, 32, 32) and colour.images[3, 0].min() > 0.99
    (tmp_path / "e.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="e.png"):
        load_dataset(f"folder:{tmp_path}")


def test_image_folder_labels_from_subfolders(tmp_path):
    from PIL import Image

    for cls, value in (("cats", 10), ("dogs", 250)):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.new("L", (30, 30), value).save(tmp_path / cls / f"{i}.png")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.classes == ["cats", "dogs"] and ds.labels.tolist() == [0, 0, 1, 1]


def test_image_folder_empty(tmp_path):
    with pytest.raises(ValueError, match="No images"):
        load_dataset(f"folder:{tmp_path}")


def test_unknown_name_lists_valid_names():
    assert dataset_names() == ["digits", "sprites", "mnist", "fashion-mnist", "kmnist", "cifar10"]
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet")
    for name in dataset_names() + ["idx:", "folder:"]:
        assert name in str(info.value)
