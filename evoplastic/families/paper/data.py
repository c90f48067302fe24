"""Image datasets by name, loaded into memory as flat float tensors in [0, 1].

Names: ``emnist`` (balanced), ``mnist``, ``fashion-mnist`` (torchvision, into a cache
dir, downloading only when allowed), ``digits`` (scikit-learn's bundled 8×8 digits, the
offline default), ``npz:PATH`` (arrays images, labels, optional classes) and ``idx:DIR``
(a directory of IDX or IDX.gz files).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DEFAULT_CACHE = Path.home() / ".cache" / "evoplastic"


class DataError(FileNotFoundError):
    """A dataset cannot be found or read; the message says how to get it."""


@dataclass(frozen=True)
class Dataset:
    """Flattened images (n, d) in [0, 1], integer labels (n,) and class names."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]

    @property
    def n_features(self) -> int:
        return self.images.shape[1]


def _from_arrays(name: str, images: np.ndarray, labels: np.ndarray, class_names=None) -> Dataset:
    images = np.asarray(images)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{name}: {images.shape[0]} images but {labels.shape[0]} labels")
    scale = 255.0 if images.dtype == np.uint8 or images.max() > 1.0 else 1.0
    flat = torch.from_numpy(images.reshape(images.shape[0], -1).astype(np.float32) / scale)
    n_classes = int(labels.max()) + 1 if labels.size else 0
    if class_names is None:
        class_names = [str(c) for c in range(n_classes)]
    return Dataset(name, flat, torch.from_numpy(labels), tuple(str(c) for c in class_names))


def _load_npz(path: Path) -> Dataset:
    if not path.is_file():
        raise DataError(f"npz file {path} not found; give an existing file with arrays 'images' and 'labels'")
    with np.load(path, allow_pickle=False) as z:
        missing = {"images", "labels"} - set(z.files)
        if missing:
            raise DataError(f"{path} lacks array(s) {sorted(missing)}; it holds {z.files}")
        classes = z["classes"] if "classes" in z.files else None
        return _from_arrays(f"npz:{path}", z["images"], z["labels"], classes)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX (optionally gzip'd) file into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: header says {shape} but holds {data.size} bytes")
    return data.reshape(shape)


def _find_idx(directory: Path, split: str, kind: str) -> Path:
    prefix = "train" if split == "train" else "t10k"
    pattern = f"{prefix}*{kind}-idx{3 if kind == 'images' else 1}-ubyte*"
    found = sorted(directory.glob(pattern))
    if not found:
        raise DataError(
            f"no {split} {kind} IDX file ({pattern}) in {directory}; put the IDX or IDX.gz "
            f"files there or choose another task.split"
        )
    return found[0]


def _load_idx_dir(directory: Path, split: str, name: str) -> Dataset:
    if not directory.is_dir():
        raise DataError(f"directory {directory} not found; give a directory of IDX/IDX.gz files")
    images = read_idx(_find_idx(directory, split, "images"))
    labels = read_idx(_find_idx(directory, split, "labels"))
    return _from_arrays(name, images, labels)


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return _from_arrays("digits", digits.images / 16.0, digits.target)


_TORCHVISION = {"emnist": "EMNIST", "mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def _load_torchvision(name: str, root: Path, split: str, download: bool) -> Dataset:
    import torchvision.datasets as tvd

    cls = getattr(tvd, _TORCHVISION[name])
    kwargs = {"split": "balanced"} if name == "emnist" else {}
    try:
        ds = cls(str(root), train=(split == "train"), download=download, **kwargs)
    except RuntimeError as err:
        raise DataError(
            f"{name} ({split}) not found under {root}: {err}. Allow the download with "
            f"'task.download=true' (needs internet), point 'task.data_dir' at an existing copy, "
            f"or use offline data: 'task.dataset=digits' or 'task.dataset=npz:PATH'"
        ) from None
    images = ds.data.numpy()
    if name == "emnist":  # torchvision's EMNIST arrays are stored transposed
        images = images.transpose(0, 2, 1)
    return _from_arrays(name, images, ds.targets.numpy(), list(ds.classes))


def load_dataset(name: str, data_dir: str = "", split: str = "train", download: bool = False) -> Dataset:
    """Load a dataset by name (see module docstring); missing data raises DataError with a fix."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if name.startswith("npz:"):
        return _load_npz(Path(name[4:]).expanduser())
    if name.startswith("idx:"):
        return _load_idx_dir(Path(name[4:]).expanduser(), split, name)
    if name == "digits":
        return _load_digits()
    if name in _TORCHVISION:
        return _load_torchvision(name, Path(data_dir).expanduser() if data_dir else DEFAULT_CACHE, split, download)
    raise ValueError(
        f"unknown dataset {name!r}; choose emnist, mnist, fashion-mnist, digits, npz:PATH or idx:DIR"
    )
