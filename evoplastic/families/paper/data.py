"""Image datasets by name, loaded into memory as flat float tensors in [0, 1], checked as they load.

Names: ``emnist`` (balanced), ``mnist``, ``fashion-mnist``, looked up in the data directory
(``task.data_dir``, else ``$EVOPLASTIC_DATA``, else ``~/.cache/evoplastic``): first its offline
copies (``emnist-balanced-subset.npz``; ``mnist/`` or ``fashion-mnist/`` holding IDX files), then
torchvision's, downloading only when allowed; ``digits`` (scikit-learn's bundled 8×8 digits, offline),
``npz:PATH`` (arrays images, labels, optional classes) and ``idx:DIR`` (IDX or IDX.gz files).
``evoplastic data NAME`` (or ``python -m evoplastic.families.paper.data NAME``) downloads one.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evoplastic.plugins import DATASETS as PLUGIN_DATASETS

DEFAULT_CACHE = Path.home() / ".cache" / "evoplastic"
DATA_ENV = "EVOPLASTIC_DATA"
"""Environment variable naming the data directory when task.data_dir is empty."""
OFFLINE_NPZ = {("emnist", "train"): "emnist-balanced-subset.npz"}
"""Offline npz copies a data directory may hold, by (name, split); used before torchvision's copy."""
OFFLINE_IDX = {"mnist": "mnist", "fashion-mnist": "fashion-mnist"}
"""Sub-directories of IDX/IDX.gz files a data directory may hold, by name; used when they have the split."""


class DataError(FileNotFoundError):
    """A dataset cannot be found, read or trusted; the message names the file and how to fix it."""


@dataclass(frozen=True)
class Dataset:
    """Flattened images (n, d) in [0, 1], integer labels (n,) and class names."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    source: str = ""
    """The file or directory the arrays came from (empty for generated data)."""

    @property
    def n_features(self) -> int:
        return self.images.shape[1]


def data_directory(data_dir: str = "") -> tuple[Path, str]:
    """Where named datasets live, and why: task.data_dir, else $EVOPLASTIC_DATA, else the cache."""
    if data_dir:
        return Path(data_dir).expanduser(), "task.data_dir"
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser(), f"${DATA_ENV}"
    return DEFAULT_CACHE, f"default; set task.data_dir or ${DATA_ENV}"


def _checked_labels(source: str, labels: np.ndarray, n_images: int) -> np.ndarray:
    """Labels as int64 class ids; float ids must be whole numbers, none negative, one per image."""
    labels = np.asarray(labels)
    if labels.size != n_images or labels.ndim > 2 or (labels.ndim == 2 and labels.shape[1] != 1):
        raise DataError(f"{source}: {n_images} images but {labels.size} labels (shape {labels.shape}); give one "
                        "class id per image")
    labels = labels.reshape(-1)
    if labels.dtype.kind == "f":
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            first = f"{float(labels[bad][0]):g} at index {int(np.argmax(bad))}"
            raise DataError(f"{source}: {int(bad.sum())} of {labels.size} labels are not whole numbers (first: "
                            f"{first}); labels must be class ids 0, 1, 2, …")
    elif labels.dtype.kind not in "iu":
        raise DataError(f"{source}: labels have dtype {labels.dtype}; give integer class ids 0, 1, 2, …")
    if (labels < 0).any():
        raise DataError(f"{source}: {int((labels < 0).sum())} labels are negative; class ids start at 0")
    return labels.astype(np.int64)


def _checked_images(source: str, images: np.ndarray) -> np.ndarray:
    """Images (n, …) of at least one pixel with finite numeric values."""
    images = np.asarray(images)
    if images.ndim < 2 or images.shape[0] == 0 or images[0].size == 0:
        raise DataError(f"{source}: images must be an array (n, pixels…) holding at least one image, got shape "
                        f"{images.shape}")
    if images.dtype.kind not in "iuf" and images.dtype != bool:
        raise DataError(f"{source}: images have dtype {images.dtype}; give numbers (uint8 0-255 or floats 0-1)")
    if images.dtype.kind == "f":
        bad = ~np.isfinite(images.reshape(images.shape[0], -1)).all(axis=1)
        if bad.any():
            raise DataError(f"{source}: {int(bad.sum())} of {len(images)} images hold NaN or inf pixel values "
                            f"(first: image {int(np.argmax(bad))}); drop or repair them")
    return images


def _checked_classes(source: str, labels: np.ndarray, class_names) -> tuple[str, ...]:
    """Class names (ids by default); every named class must have images and every label a name."""
    if class_names is None:
        return tuple(str(c) for c in range(int(labels.max()) + 1))
    names = tuple(str(c) for c in np.asarray(class_names).reshape(-1))
    if int(labels.max()) >= len(names):
        raise DataError(f"{source}: {int((labels >= len(names)).sum())} labels are ≥ {len(names)}, the number of "
                        "class names; give a name for every class id or fix the labels")
    empty = np.flatnonzero(np.bincount(labels, minlength=len(names)) == 0)
    if len(empty):
        raise DataError(f"{source}: {len(empty)} of {len(names)} named classes have no images (ids "
                        f"{empty[:10].tolist()}); drop their names or add their images")
    return names


def _from_arrays(name: str, images: np.ndarray, labels: np.ndarray, class_names=None, source: str = "") -> Dataset:
    """A checked Dataset: finite images, one whole-number label per image, non-empty named classes."""
    source = source or name
    images = _checked_images(source, images)
    labels = _checked_labels(source, labels, images.shape[0])
    names = _checked_classes(source, labels, class_names)
    scale = 255.0 if images.dtype == np.uint8 or images.max() > 1.0 else 1.0
    flat = torch.from_numpy(images.reshape(images.shape[0], -1).astype(np.float32) / scale)
    return Dataset(name, flat, torch.from_numpy(labels), names, source)


def _load_npz(path: Path, name: str = "") -> Dataset:
    if not path.is_file():
        raise DataError(f"npz file {path} not found; give an existing file with arrays 'images' and 'labels'")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("images", "labels", "classes") if k in z.files}
    except (OSError, ValueError, EOFError) as err:  # not a zip, truncated, or object arrays
        raise DataError(f"{path} is not a readable npz file ({err}); write it with numpy.savez") from None
    missing = {"images", "labels"} - set(arrays)
    if missing:
        raise DataError(f"{path} lacks array(s) {sorted(missing)}; it holds {sorted(arrays)}")
    return _from_arrays(name or f"npz:{path}", arrays["images"], arrays["labels"], arrays.get("classes"), str(path))


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
    return _from_arrays(name, images, labels, source=f"{directory} ({split} IDX files)")


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return _from_arrays("digits", digits.images / 16.0, digits.target, source="scikit-learn digits")


_TORCHVISION = {"emnist": "EMNIST", "mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def download_command(name: str, directory: Path, split: str) -> str:
    """The shell command that downloads dataset name's split into directory (through torchvision)."""
    return f"evoplastic data {name}{' --split test' * (split == 'test')} --data-dir {shlex.quote(str(directory))}"


def _missing(name: str, root: Path, split: str, why: str) -> DataError:
    """The error for a named dataset the data directory lacks: where it looked and the command that gets it."""
    offline = OFFLINE_NPZ.get((name, split)) or f"{OFFLINE_IDX[name]}/"
    return DataError(f"{name} ({split}) is not in the data directory {root} ({why}): neither {offline} nor a "
                     f"torchvision copy. Get it with: {download_command(name, root, split)} (downloads, needs "
                     f"internet), or rerun with task.download=true; offline data: task.dataset=digits")


def _load_torchvision(name: str, root: Path, split: str, download: bool, why: str = "task.data_dir") -> Dataset:
    import torchvision.datasets as tvd

    cls = getattr(tvd, _TORCHVISION[name])
    kwargs = {"split": "balanced"} if name == "emnist" else {}
    try:
        ds = cls(str(root), train=(split == "train"), download=download, **kwargs)
    except RuntimeError:
        raise _missing(name, root, split, why) from None
    images = ds.data.numpy()
    if name == "emnist":  # torchvision's EMNIST arrays are stored transposed
        images = images.transpose(0, 2, 1)
    return _from_arrays(name, images, ds.targets.numpy(), list(ds.classes), f"{root} (torchvision {cls.__name__})")


def _offline_copy(name: str, directory: Path, split: str) -> Dataset | None:
    """The data directory's offline copy of a named dataset's split, or None when it holds none."""
    npz = OFFLINE_NPZ.get((name, split))
    if npz and (directory / npz).is_file():
        return _load_npz(directory / npz, name)
    idx = directory / OFFLINE_IDX.get(name, "-")
    prefix = "train" if split == "train" else "t10k"
    if idx.is_dir() and any(idx.glob(f"{prefix}*labels-idx1-ubyte*")):
        return _load_idx_dir(idx, split, name)
    return None


def load_dataset(name: str, data_dir: str = "", split: str = "train", download: bool = False) -> Dataset:
    """Load a dataset by name (see module docstring); missing or invalid data raises DataError with a fix."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if name.startswith("npz:"):
        return _load_npz(Path(name[4:]).expanduser())
    if name.startswith("idx:"):
        return _load_idx_dir(Path(name[4:]).expanduser(), split, name)
    if name == "digits":
        return _load_digits()
    if name in _TORCHVISION:
        directory, why = data_directory(data_dir)
        return _offline_copy(name, directory, split) or _load_torchvision(name, directory, split, download, why)
    if name in PLUGIN_DATASETS.entries or ":" in name:
        return _load_plugin(name, data_dir, split)
    raise ValueError(
        f"unknown dataset {name!r}; choose emnist, mnist, fashion-mnist, digits, npz:PATH or idx:DIR"
    )


def _load_plugin(name: str, data_dir: str, split: str) -> Dataset:
    """A registered dataset: its load(split, data_dir) gives (images, labels) arrays or a torch Dataset of pairs,
    checked like an npz file's."""
    loaded = PLUGIN_DATASETS.get(name).load(split, data_dir)
    if isinstance(loaded, tuple) and len(loaded) == 2:
        images, labels = loaded
    else:  # a torch Dataset (or any sequence) of (image, label) pairs
        pairs = [loaded[i] for i in range(len(loaded))]
        images = np.stack([np.asarray(image, dtype=np.float32).reshape(-1) for image, _ in pairs])
        labels = np.asarray([int(label) for _, label in pairs])
    images = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    labels = labels.numpy() if hasattr(labels, "numpy") else np.asarray(labels)
    return _from_arrays(name, images.reshape(len(images), -1), labels, None, f"dataset plug-in {name!r}")


def main(argv: list[str] | None = None) -> int:
    """``evoplastic data NAME``: download a named dataset into the data directory and check that it loads."""
    p = argparse.ArgumentParser(prog="evoplastic data", description=main.__doc__)
    p.add_argument("name", choices=sorted(_TORCHVISION), help="dataset to download (through torchvision)")
    p.add_argument("--split", choices=("train", "test"), default="train", help="split (default train)")
    p.add_argument("--data-dir", default="", help=f"target directory (default ${DATA_ENV}, else {DEFAULT_CACHE})")
    args = p.parse_args(argv)
    directory, _ = data_directory(args.data_dir)
    ds = load_dataset(args.name, str(directory), args.split, download=True)
    print(f"{args.name} ({args.split}): {len(ds.labels)} images, {len(ds.class_names)} classes, from {ds.source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
