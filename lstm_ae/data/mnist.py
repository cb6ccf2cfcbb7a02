"""MNIST as sequences: row by row (28 steps x 28 pixels) or pixel by pixel (784 steps x 1 pixel).

The four original gzipped IDX files are read straight from ``<root>/MNIST/raw/`` (the layout
torchvision uses), so a read-only root works and nothing is extracted or written there. When
they are missing and ``download=true``, torchvision downloads them into ``root`` first.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from functools import partial
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from lstm_ae.config import Layout
from lstm_ae.data import Split, Splits, default_root
from lstm_ae.errors import ConfigError, DataError

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
NUM_CLASSES = 10  # the digits 0..9: a label file holds nothing else
HOW_TO_FIX = (
    "set dataset.root (or the LSTM_AE_DATA environment variable) to a folder holding "
    "MNIST/raw/*.gz, or add dataset.download=true to fetch MNIST with torchvision"
)


def read_idx_gz(path: Path, ndim: int) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes (magic 0x0000080N, N = ndim)."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"MNIST file {path} not found; {HOW_TO_FIX}") from None
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"MNIST file {path} is corrupt ({err}); delete it and download it again") from None
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"MNIST file {path} is corrupt (only {len(data)} bytes); delete it and download it again")
    magic = struct.unpack(">I", data[:4])[0]
    if magic != 0x0800 + ndim:
        raise DataError(
            f"MNIST file {path} is corrupt (IDX magic number {magic:#010x}, expected {0x0800 + ndim:#010x}); "
            "delete it and download it again"
        )
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    expected = int(np.prod(shape)) + 4 + 4 * ndim
    if len(data) != expected:
        raise DataError(
            f"MNIST file {path} is corrupt ({len(data)} bytes after decompression, expected {expected} "
            f"for shape {shape}); delete it and download it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _download(root: Path) -> None:
    from torchvision.datasets import MNIST

    try:
        for train in (True, False):
            MNIST(root=str(root), train=train, download=True)
    except Exception as err:  # network or disk trouble: one line that says what to do
        raise DataError(f"could not download MNIST into {root} ({err}); {HOW_TO_FIX}") from None


def load_mnist(
    root: Optional[str] = None,
    layout: Layout | str = Layout.row,
    val_size: int = 5000,
    seed: int = 0,
    download: bool = False,
    limit: Optional[int] = None,
    shift: int = 0,
) -> Splits:
    """Train/validation/test splits of MNIST; pixels scaled to [0, 1] (x / 255).

    ``val_size`` images are drawn (seeded) from the 60,000 training images for validation; the
    10,000 test images are only the test split. ``limit`` keeps the first images of each file
    (for quick trials). ``shift`` > 0 moves each training image by its own random offset of up to
    ``shift`` pixels each way, drawn anew for every batch (``Splits.augment``; data augmentation).
    """
    layout = Layout(layout)
    root_path = Path(root or default_root()).expanduser()
    raw = root_path / "MNIST" / "raw"
    missing = [name for name in FILES.values() if not (raw / name).is_file()]
    if missing and download:
        _download(root_path)
    elif missing:
        raise DataError(f"MNIST file {raw / missing[0]} not found; {HOW_TO_FIX}")
    arrays = {key: read_idx_gz(raw / name, 3 if key.endswith("images") else 1) for key, name in FILES.items()}
    for part in ("train", "test"):
        images, labels = raw / FILES[f"{part}_images"], raw / FILES[f"{part}_labels"]
        n_img, n_lab = len(arrays[f"{part}_images"]), len(arrays[f"{part}_labels"])
        if n_img != n_lab:
            raise DataError(f"MNIST {part} files disagree: {n_img} images in {images} but {n_lab} labels in "
                            f"{labels}; delete both and download them again")
        wrong = np.flatnonzero(arrays[f"{part}_labels"] >= NUM_CLASSES)  # whole file, before `limit` (uint8: never < 0)
        if len(wrong):
            more = f" ({len(wrong) - 1} more such label(s) in the file)" if len(wrong) > 1 else ""
            raise DataError(
                f"MNIST file {labels}: item {wrong[0]} (0-based), field label: {arrays[f'{part}_labels'][wrong[0]]} "
                f"is not a digit 0..{NUM_CLASSES - 1}{more}; the file is corrupt: delete it and download it again"
            )
    if limit:
        arrays = {k: v[:limit] for k, v in arrays.items()}
    h, w = image_shape = tuple(arrays["train_images"].shape[1:])  # 28 x 28, as the IDX header says

    def to_split(images: np.ndarray, labels: np.ndarray) -> Split:
        x = torch.from_numpy(images.astype(np.float32) / 255.0)
        x = x.reshape(len(x), h, w) if layout is Layout.row else x.reshape(len(x), h * w, 1)
        return Split(x, labels=torch.from_numpy(labels.astype(np.int64)))

    n_train = len(arrays["train_images"])
    if val_size >= n_train:  # (val_size >= 1 is checked with the config)
        raise ConfigError(f"dataset.val_size must be below {n_train} (the training images); got {val_size}")
    order = np.random.default_rng(seed).permutation(n_train)
    val_idx, train_idx = np.sort(order[:val_size]), np.sort(order[val_size:])
    ti, tl = arrays["train_images"], arrays["train_labels"]
    return Splits(
        train=to_split(ti[train_idx], tl[train_idx]),
        val=to_split(ti[val_idx], tl[val_idx]),
        test=to_split(arrays["test_images"], arrays["test_labels"]),
        num_classes=NUM_CLASSES,
        image_shape=image_shape,
        augment=partial(random_shift, max_shift=shift, image_shape=image_shape) if shift else None,
    )


def random_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int,
                 image_shape: "tuple[int, int]") -> torch.Tensor:
    """Each image of ``x`` ((N, T, m): images of ``image_shape`` in either layout) moved by its own
    (dy, dx), drawn uniformly from [-max_shift, max_shift] with ``generator``; vacated pixels are 0."""
    n, (h, w), s = len(x), image_shape, max_shift
    padded = F.pad(x.reshape(n, h, w), (s, s, s, s))
    dy, dx = torch.randint(0, 2 * s + 1, (2, n), generator=generator).to(x.device)
    rows = dy[:, None, None] + torch.arange(h, device=x.device)[None, :, None]
    cols = dx[:, None, None] + torch.arange(w, device=x.device)[None, None, :]
    return padded[torch.arange(n, device=x.device)[:, None, None], rows, cols].reshape(x.shape)
