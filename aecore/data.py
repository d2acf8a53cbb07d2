"""Datasets: embedded (digits, sprites), torchvision downloads, IDX folders and image folders."""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

EMBEDDED = ("digits", "sprites")
DOWNLOADABLE = ("mnist", "fashion-mnist", "kmnist", "cifar10")
HELDOUT_FRACTION = 0.2  # named splits: the last 20% by index is "heldout", the first 80% "train"
SPLITS = ("all", "train", "heldout")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
SPRITE_SHAPES = ["square", "ellipse", "heart"]
SPRITE_SCALES = torch.linspace(0.5, 1.0, 6)
SPRITE_ROTATIONS = torch.arange(16) * (2 * math.pi / 16)
SPRITE_POSITIONS = 16  # x and y each take 16 values, one pixel apart


@dataclass
class ImageDataset:
    images: torch.Tensor  # (N, C, H, W) float32 in [0, 1], contiguous
    labels: torch.Tensor | None  # (N,) int64, or None
    classes: list[str]  # class names, index = label ([] when no labels)
    name: str
    factors: dict[str, torch.Tensor] | None = None  # sprites: true factors, each (N,)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Return the shape of one image, (C, H, W)."""
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        """Return the number of images."""
        return self.images.shape[0]

    def subset(self, index) -> ImageDataset:
        """Return the rows picked by an index tensor, list, mask or slice, with their labels and factors."""
        if not isinstance(index, slice):
            index = torch.as_tensor(index)
            index = index if index.dtype == torch.bool else index.long()
        pick = lambda t: None if t is None else t[index].contiguous()  # noqa: E731
        factors = None if self.factors is None else {k: pick(v) for k, v in self.factors.items()}
        return ImageDataset(pick(self.images), pick(self.labels), list(self.classes), self.name, factors)

    def split(self, fraction: float, seed: int | None = 0) -> tuple[ImageDataset, ImageDataset]:
        """Return (first, rest): round(fraction*N) images, then the others; random order unless seed is None."""
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be between 0 and 1 (exclusive), got {fraction!r}")
        n = len(self)
        if seed is None:
            order = torch.arange(n)
        else:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        k = round(fraction * n)
        return self.subset(order[:k]), self.subset(order[k:])


def dataset_names() -> list[str]:
    """Return the names load_dataset accepts without a prefix."""
    return list(EMBEDDED + DOWNLOADABLE)


def data_dir() -> Path:
    """Return the data directory: $AECORE_DATA_DIR if set, else ~/.cache/aecore."""
    return Path(os.environ.get("AECORE_DATA_DIR") or "~/.cache/aecore").expanduser()


def load_dataset(name: str, split: str = "all", n: int | None = None, seed: int = 0) -> ImageDataset:
    """Return the named data set's split, capped at n images (sprites: n generated, then split)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if name in DOWNLOADABLE:
        ds = _torchvision(name, split)
    else:
        if name == "digits":
            ds = _digits()
        elif name == "sprites":
            ds = make_sprites(10_000 if n is None else n, seed)
        elif name.startswith("idx:"):
            ds = _idx_folder(Path(name[4:]), name)
        elif name.startswith("folder:"):
            ds = _image_folder(Path(name[7:]), name)
        else:
            raise ValueError(f"Unknown data set {name!r}. Valid names: {', '.join(dataset_names())}, "
                             "or 'idx:PATH' (a folder of IDX files) or 'folder:PATH' (a folder of images).")
        ds = _named_split(ds, split)
    return ds if n is None or name == "sprites" else ds.subset(slice(0, n))


def _named_split(ds: ImageDataset, split: str) -> ImageDataset:
    """Return the "all", "train" (first 80% by index) or "heldout" (last 20%) part of ds."""
    k = round(len(ds) * (1 - HELDOUT_FRACTION))
    return {"all": ds, "train": ds.subset(slice(0, k)), "heldout": ds.subset(slice(k, None))}[split]


def _labelled(images: torch.Tensor, labels, classes: list[str], name: str) -> ImageDataset:
    """Return an ImageDataset from uint8 or float images (N,C,H,W) and labels (or None)."""
    if images.dtype == torch.uint8:
        images = images.float().div_(255)
    labels = None if labels is None else torch.as_tensor(labels, dtype=torch.int64)
    return ImageDataset(images.contiguous(), labels, classes if labels is not None else [], name)


def _digits() -> ImageDataset:
    """Return scikit-learn's 8x8 digits as (1797, 1, 8, 8)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.as_tensor(d.images, dtype=torch.float32).div_(16).unsqueeze(1)
    return _labelled(images, d.target, [str(i) for i in range(10)], "digits")


def _sprite_templates(size: int = 17, supersample: int = 4) -> torch.Tensor:
    """Return every shape x scale x rotation rendered centred in a size x size frame, (3, 6, 16, size, size)."""
    # Positions are whole pixels, so each of the 288 templates is drawn once and only shifted per image.
    s = supersample
    grid = (torch.arange(size * s) + 0.5) / s - size / 2  # sub-pixel centres, relative to the frame centre
    px, py = grid.view(1, -1), -grid.view(-1, 1)  # y up, so the heart's point is at the bottom
    scale = (SPRITE_SCALES * 7.0).view(-1, 1, 1, 1)  # 7 px radius at scale 1 keeps every shape inside
    cos, sin = SPRITE_ROTATIONS.cos().view(1, -1, 1, 1), SPRITE_ROTATIONS.sin().view(1, -1, 1, 1)
    u, v = (cos * px + sin * py) / scale, (cos * py - sin * px) / scale
    square = torch.maximum(u.abs(), v.abs()) <= 0.8
    ellipse = u**2 + (v / 0.6) ** 2 <= 1
    hu, hv = 1.12 * u, 1.12 * v + 0.25  # centre the heart on its bulk and fit it in the same circle
    heart = (hu**2 + hv**2 - 1) ** 3 - hu**2 * hv**3 <= 0
    inside = torch.stack([square, ellipse, heart]).float()
    return inside.view(3, 6, 16, size, s, size, s).mean(dim=(4, 6))


def make_sprites(n: int = 10_000, seed: int = 0) -> ImageDataset:
    """Return n dSprites-like 32x32 images with their true factors, deterministic for a seed."""
    g = torch.Generator().manual_seed(seed)
    shape, scale, rot, x, y = (torch.randint(k, (n,), generator=g) for k in (3, 6, 16, 16, 16))
    templates = _sprite_templates()
    t = templates.shape[-1]
    # Pad so that every shift of the template is a window of one canvas: window (15-y, 15-x) is shift (y, x).
    pad = SPRITE_POSITIONS - 1
    canvas = torch.nn.functional.pad(templates, (pad, 32 - t, pad, 32 - t))
    windows = canvas.unfold(3, 32, 1).unfold(4, 32, 1)  # (3, 6, 16, 16, 16, 32, 32)
    images = windows[shape, scale, rot, pad - y, pad - x].unsqueeze(1).contiguous()
    factors = {"shape": shape.float(), "scale": SPRITE_SCALES[scale], "rotation": SPRITE_ROTATIONS[rot],
               "x": x / float(pad), "y": y / float(pad)}
    return ImageDataset(images, shape, list(SPRITE_SHAPES), "sprites", factors)


def _torchvision(name: str, split: str) -> ImageDataset:
    """Return a torchvision data set's split: train file, test file, or both (train first)."""
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "kmnist": tvd.KMNIST, "cifar10": tvd.CIFAR10}[name]
    parts = [_tv_part(cls, name, train) for train in {"all": (True, False), "train": (True,), "heldout": (False,)}[split]]
    images = [torch.as_tensor(p.data) for p in parts]
    images = torch.cat([im.unsqueeze(1) if im.ndim == 3 else im.permute(0, 3, 1, 2) for im in images])
    labels = torch.cat([torch.as_tensor(p.targets) for p in parts])
    classes = [c.split(" - ")[0] for c in parts[0].classes]  # MNIST's "0 - zero" -> "0", as for digits and idx:
    return _labelled(images, labels, classes, name)


def _tv_part(cls, name: str, train: bool):
    """Return the torchvision data set object, downloading it if its files are missing."""
    root = str(data_dir())
    try:
        return cls(root, train=train, download=False)
    except RuntimeError:
        pass
    # Without a network a blocked connection could hang; restore the global settings afterwards.
    old_timeout = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(10)
        with contextlib.redirect_stdout(io.StringIO()):
            return cls(root, train=train, download=True)
    except Exception as e:
        raise FileNotFoundError(_missing_message(cls, name, e)) from e
    finally:
        socket.setdefaulttimeout(old_timeout)


def _missing_message(cls, name: str, error: Exception) -> str:
    """Return the sentence that says which files are missing, where, and what to use instead."""
    if hasattr(cls, "resources"):
        folder = data_dir() / cls.__name__ / "raw"
        files = [f.removesuffix(".gz") for f, _ in cls.resources]
        wanted, alt = [f for f in files if not (folder / f).exists()] or files, " (or the same names with .gz)"
    else:
        folder = data_dir() / cls.base_folder
        files = [f for f, _ in cls.train_list + cls.test_list]
        wanted = [f for f in files if not (folder / f).exists()] or files
        alt = f" (or the archive {cls.filename} in {data_dir()})"
    reason = (str(error).strip().splitlines() or [type(error).__name__])[-1]  # the last line is the cause
    return (f"Data set {name!r} is not on this machine and could not be downloaded ({reason}). "
            f"Missing in {folder}: {', '.join(wanted)}{alt}. Use an embedded data set (\"digits\" or "
            f"\"sprites\"), or place the files there (set AECORE_DATA_DIR to use another folder).")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Return the uint8 array stored in an IDX file (optionally gzipped) with ndim dimensions."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise ValueError(f"Cannot read IDX file {path}: {e}") from e
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or raw[3] != ndim:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes with {ndim} dimensions "
                         f"(magic number {raw[:4].hex() or 'missing'}, expected 000008{ndim:02x})")
    head = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw[4:head], dtype=">u4")) if len(raw) >= head else ()
    if len(dims) != ndim or len(raw) - head != math.prod(dims):
        raise ValueError(f"{path} is truncated or has extra bytes: header says {dims}, "
                         f"file holds {max(len(raw) - head, 0)} data bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims)


def _idx_files(folder: Path, kind: str) -> list[Path]:
    """Return the folder's IDX files of a kind ("idx3" or "idx1"), a gzipped copy dropped when both exist."""
    files = sorted(p for p in folder.iterdir() if p.name.endswith((f"{kind}-ubyte", f"{kind}-ubyte.gz")))
    return [p for p in files if not (p.suffix == ".gz" and p.with_suffix("") in files)]


def _idx_folder(folder: Path, name: str) -> ImageDataset:
    """Return the images (and labels, if present) of the single IDX image file in a folder."""
    folder = folder.expanduser().resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"No folder {folder} (from {name!r}).")
    images = _idx_files(folder, "idx3")
    if not images:
        raise FileNotFoundError(f"No IDX image file (*idx3-ubyte or *idx3-ubyte.gz) in {folder}.")
    if len(images) > 1:
        raise ValueError(f"Several IDX image files in {folder}: {', '.join(p.name for p in images)}; "
                         "put the one to load in a folder of its own.")
    x = torch.from_numpy(read_idx(images[0], 3).copy()).unsqueeze(1)
    labels = _idx_files(folder, "idx1")
    match = [p for p in labels if p.name.split("-")[0] == images[0].name.split("-")[0]]
    if len(labels) > 1 and len(match) != 1:
        raise ValueError(f"Several IDX label files in {folder}: {', '.join(p.name for p in labels)}.")
    if not labels:
        return _labelled(x, None, [], name)
    y = read_idx((match or labels)[0], 1)
    if len(y) != len(x):
        raise ValueError(f"{folder}: {len(x)} images but {len(y)} labels.")
    return _labelled(x, y.astype(np.int64), [str(i) for i in range(int(y.max(initial=0)) + 1)], name)


def _image_folder(folder: Path, name: str) -> ImageDataset:
    """Return a folder's images (28x28 grayscale, or 32x32 RGB if any has colour), labelled by sub-folder."""
    from PIL import Image

    folder = folder.expanduser().resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"No folder {folder} (from {name!r}).")
    files = sorted((p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        raise ValueError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in {folder}.")
    rgb, grey = [], []
    for p in files:
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise ValueError(f"Cannot read image {p}: {e}") from e
        rgb.append(np.asarray(im.resize((32, 32), Image.Resampling.LANCZOS)))
        grey.append(np.asarray(im.convert("L").resize((28, 28), Image.Resampling.LANCZOS)))
    rgb = np.stack(rgb)
    # JPEG noise gives grey photos slightly unequal channels, hence a tolerance.
    if int((rgb.max(-1).astype(int) - rgb.min(-1)).max()) > 8:
        x = torch.from_numpy(rgb).permute(0, 3, 1, 2)
    else:
        x = torch.from_numpy(np.stack(grey)).unsqueeze(1)
    parts = [p.relative_to(folder).parts for p in files]
    if any(len(q) < 2 for q in parts):
        return _labelled(x, None, [], name)
    classes = sorted({q[0] for q in parts})
    return _labelled(x, [classes.index(q[0]) for q in parts], classes, name)
