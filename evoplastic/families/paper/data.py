"""Image datasets by name, loaded into memory as flat float tensors in [0, 1], checked as they load.

Pixel values: uint8 images are divided by 255, bool images taken as they are, and any other
images must already lie in [0, 1] unless ``task.pixel_scale`` names the value that maps to 1
(e.g. 16 for 0–16 digits); values outside [0, 1] after that are refused, never rescaled silently.

Names: ``emnist`` (balanced), ``mnist``, ``fashion-mnist``, looked up in the data directory
(``task.data_dir``, else ``$EVOPLASTIC_DATA``, else ``~/.cache/evoplastic``): first its offline
copies (``emnist-balanced-subset.npz``; ``mnist/`` or ``fashion-mnist/`` holding IDX files), then
torchvision's, downloading only when allowed; ``digits`` (scikit-learn's bundled 8×8 digits, offline),
``npz:PATH`` (arrays images, labels, optional classes) and ``idx:DIR`` (IDX or IDX.gz files).
``evoplastic data NAME`` (or ``python -m evoplastic.families.paper.data NAME``) downloads one;
``evoplastic data emnist-subset`` cuts the offline EMNIST subset from torchvision's download.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evoplastic.errors import DataError
from evoplastic.plugins import DATASETS as PLUGIN_DATASETS

DEFAULT_CACHE = Path.home() / ".cache" / "evoplastic"
DATA_ENV = "EVOPLASTIC_DATA"
"""Environment variable naming the data directory when task.data_dir is empty."""
OFFLINE_NPZ = {("emnist", "train"): "emnist-balanced-subset.npz"}
"""Offline npz copies a data directory may hold, by (name, split); used before torchvision's copy."""
OFFLINE_IDX = {"mnist": "mnist", "fashion-mnist": "fashion-mnist"}
"""Sub-directories of IDX/IDX.gz files a data directory may hold, by name; used when they have the split."""
MAX_CLASSES = 1 << 20
"""Class ids must lie below this: a stray huge label would otherwise make a name and an index list per id."""
FULL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(bool): 1.0}
"""The value that maps to 1 for these image dtypes when task.pixel_scale is 0; other dtypes must be in [0, 1]."""
EMNIST_SUBSET = slice(103680, 112800)
"""The offline EMNIST subset: images 103680–112799 (9,120) of the EMNIST Balanced training split."""
EMNIST_SUBSET_SHA256 = "49224f559a898c4709146af8390e5c57f71ae00a418122ae66913924aa722956"
"""sha256 of emnist-balanced-subset.npz as numpy.savez_compressed writes it (numpy 2, zlib)."""
EMNIST_SUBSET_ARRAYS_SHA256 = "8ef71dca52138704386949689ae814a6b7f6fed8546bcc5687f0715db658b54a"
"""sha256 of its images then labels bytes: the same arrays even where another zlib compresses differently."""


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
    if (labels < 0).any():  # checked in the labels' own dtype: a cast could wrap huge ids to negative ones
        raise DataError(f"{source}: {int((labels < 0).sum())} labels are negative; class ids start at 0")
    if (labels >= MAX_CLASSES).any():
        first = int(np.argmax(labels >= MAX_CLASSES))
        raise DataError(f"{source}: {int((labels >= MAX_CLASSES).sum())} labels are class ids ≥ {MAX_CLASSES} "
                        f"(first: {_id_text(labels[first])} at index {first}); number the classes 0, 1, 2, …")
    return labels.astype(np.int64)


def _id_text(label: np.generic) -> str:
    """A label as written: an integer exactly (uint64 included), a float as %g."""
    return str(int(label)) if label.dtype.kind in "iu" else f"{float(label):g}"


def _checked_images(source: str, images: np.ndarray) -> np.ndarray:
    """Images (n, …) of at least one pixel with numeric values."""
    images = np.asarray(images)
    if images.ndim < 2 or images.shape[0] == 0 or images[0].size == 0:
        raise DataError(f"{source}: images must be an array (n, pixels…) holding at least one image, got shape "
                        f"{images.shape}")
    if images.dtype.kind not in "iuf" and images.dtype != bool:
        raise DataError(f"{source}: images have dtype {images.dtype}; give numbers (uint8 0-255 or floats 0-1)")
    return images


def _scaled(source: str, images: np.ndarray, pixel_scale: float = 0.0) -> torch.Tensor:
    """Flat float32 images in [0, 1]: divided by pixel_scale (default: 255 for uint8, else 1), checked after.

    The checks run on the float32 values the network sees, so that a float64 1e300 (inf in float32)
    or a pixel far above the scale is refused instead of sending every task to chance.
    """
    scale = pixel_scale or FULL_SCALE.get(images.dtype, 1.0)
    with np.errstate(over="ignore"):  # an overflow to inf is reported below, with the image
        flat = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(scale)
    bad = ~np.isfinite(flat).all(axis=1)
    if bad.any():
        raise DataError(f"{source}: {int(bad.sum())} of {len(flat)} images hold NaN or inf pixel values "
                        f"(first: image {int(np.argmax(bad))}) as float32, which ends at 3.4e38; drop or repair them")
    low, high = float(flat.min()), float(flat.max())
    if low < 0 or high > 1:
        divided = f"values divided by task.pixel_scale={pixel_scale:g}" if pixel_scale else f"{images.dtype} values"
        raise DataError(f"{source}: pixel values must lie in [0, 1], but the {divided} span [{low:.4g}, "
                        f"{high:.4g}]; set task.pixel_scale to the value that means full intensity (e.g. 255 "
                        f"for 0-255, 16 for 0-16) or fix the images")
    return torch.from_numpy(flat)


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


def _from_arrays(name: str, images: np.ndarray, labels: np.ndarray, class_names=None, source: str = "",
                 pixel_scale: float = 0.0) -> Dataset:
    """A checked Dataset: images scaled into [0, 1], one whole-number label per image, non-empty named classes."""
    source = source or name
    images = _checked_images(source, images)
    labels = _checked_labels(source, labels, images.shape[0])
    names = _checked_classes(source, labels, class_names)
    return Dataset(name, _scaled(source, images, pixel_scale), torch.from_numpy(labels), names, source)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays images, labels (and classes) of an npz file; anything else is a DataError saying what it is."""
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(b"\x93NUMPY"):
        raise DataError(f"{path} is a single .npy array, not an npz archive; save both arrays with "
                        "numpy.savez(path, images=..., labels=...)")
    if not head.startswith(b"PK"):
        raise DataError(f"{path} is not a readable npz file (no zip archive header); write it with "
                        "numpy.savez(path, images=..., labels=...)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"images", "labels"} - set(z.files)
            if missing:
                raise DataError(f"{path} lacks array(s) {sorted(missing)}; it holds {sorted(z.files)}: name the "
                                "arrays images and labels (numpy.savez(path, images=..., labels=...))")
            return {k: z[k] for k in ("images", "labels", "classes") if k in z.files}
    except DataError:
        raise
    except ValueError as err:
        if "pickle" not in str(err):
            raise DataError(f"{path} is damaged ({err}); write it again with numpy.savez") from None
        raise DataError(f"{path} holds object arrays (pickled Python objects), which are not loaded; save "
                        "numeric images and labels (and str classes)") from None
    except Exception as err:  # a truncated zip fails with BadZipFile, EOFError, zlib.error, OSError, …
        reason = (str(err).splitlines() or [""])[0]
        raise DataError(f"{path} is truncated or damaged ({type(err).__name__}: {reason}); copy or write it "
                        "again") from None


def _load_npz(path: Path, name: str = "", pixel_scale: float = 0.0) -> Dataset:
    if not path.is_file():
        raise DataError(f"npz file {path} not found; give an existing file with arrays 'images' and 'labels'")
    arrays = _read_npz(path)
    return _from_arrays(name or f"npz:{path}", arrays["images"], arrays["labels"], arrays.get("classes"), str(path),
                        pixel_scale)


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


def _load_idx_dir(directory: Path, split: str, name: str, pixel_scale: float = 0.0) -> Dataset:
    if not directory.is_dir():
        raise DataError(f"directory {directory} not found; give a directory of IDX/IDX.gz files")
    images = read_idx(_find_idx(directory, split, "images"))
    labels = read_idx(_find_idx(directory, split, "labels"))
    return _from_arrays(name, images, labels, source=f"{directory} ({split} IDX files)", pixel_scale=pixel_scale)


def _load_digits(pixel_scale: float = 0.0) -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()  # values 0-16
    return _from_arrays("digits", digits.images, digits.target, source="scikit-learn digits",
                        pixel_scale=pixel_scale or 16.0)


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


def _torchvision_class(name: str):
    import torchvision.datasets as tvd

    return getattr(tvd, _TORCHVISION[name])


def _torchvision_dataset(name: str, root: Path, split: str, download: bool):
    """torchvision's dataset object; a download goes through a scratch folder, moved into root only when whole."""
    cls = _torchvision_class(name)
    kwargs = {"split": "balanced"} if name == "emnist" else {}
    try:
        return cls(str(root), train=(split == "train"), download=False, **kwargs)
    except RuntimeError:  # "Dataset not found": none, or the remains of a failed download
        if not download:
            raise
    with _scratch_folder(root) as scratch:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # torchvision prints each failed mirror
                cls(str(scratch), train=(split == "train"), download=True, **kwargs)
        except (OSError, RuntimeError) as err:  # URLError (offline), HTTP errors, a bad checksum
            reason = getattr(err, "reason", None) or (str(err).splitlines() or [type(err).__name__])[0]
            raise DataError(f"cannot download {name} ({reason}); this machine may be offline: download it where "
                            f"there is internet ({download_command(name, root, split)}) and copy "
                            f"{root / cls.__name__} here (see docs/data.md); nothing was written") from None
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root / cls.__name__, ignore_errors=True)  # the remains of an earlier failed download
        os.replace(scratch / cls.__name__, root / cls.__name__)
    return cls(str(root), train=(split == "train"), download=False, **kwargs)


@contextlib.contextmanager
def _scratch_folder(root: Path) -> Iterator[Path]:
    """A temporary folder beside root's contents (same file system, so a rename moves it), always removed."""
    parent = root if root.is_dir() else root.parent
    parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".download-", dir=parent))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _load_torchvision(name: str, root: Path, split: str, download: bool, why: str = "task.data_dir",
                      pixel_scale: float = 0.0) -> Dataset:
    try:
        ds = _torchvision_dataset(name, root, split, download)
    except RuntimeError:
        raise _missing(name, root, split, why) from None
    images = ds.data.numpy()
    if name == "emnist":  # torchvision's EMNIST arrays are stored transposed
        images = images.transpose(0, 2, 1)
    return _from_arrays(name, images, ds.targets.numpy(), list(ds.classes),
                        f"{root} (torchvision {type(ds).__name__})", pixel_scale)


def _offline_copy(name: str, directory: Path, split: str, pixel_scale: float = 0.0) -> Dataset | None:
    """The data directory's offline copy of a named dataset's split, or None when it holds none."""
    npz = OFFLINE_NPZ.get((name, split))
    if npz and (directory / npz).is_file():
        return _load_npz(directory / npz, name, pixel_scale)
    idx = directory / OFFLINE_IDX.get(name, "-")
    prefix = "train" if split == "train" else "t10k"
    if idx.is_dir() and any(idx.glob(f"{prefix}*labels-idx1-ubyte*")):
        return _load_idx_dir(idx, split, name, pixel_scale)
    return None


def load_dataset(name: str, data_dir: str = "", split: str = "train", download: bool = False,
                 pixel_scale: float = 0.0) -> Dataset:
    """Load a dataset by name (see module docstring); missing or invalid data raises DataError with a fix.

    ``pixel_scale``: the stored value that means full intensity (0: 255 for uint8, 1 for other images).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if name.startswith("npz:"):
        return _load_npz(Path(name[4:]).expanduser(), pixel_scale=pixel_scale)
    if name.startswith("idx:"):
        return _load_idx_dir(Path(name[4:]).expanduser(), split, name, pixel_scale)
    if name == "digits":
        return _load_digits(pixel_scale)
    if name in _TORCHVISION:
        directory, why = data_directory(data_dir)
        return (_offline_copy(name, directory, split, pixel_scale)
                or _load_torchvision(name, directory, split, download, why, pixel_scale))
    if name in PLUGIN_DATASETS.entries or ":" in name:
        return _load_plugin(name, data_dir, split, pixel_scale)
    raise ValueError(
        f"unknown dataset {name!r}; choose emnist, mnist, fashion-mnist, digits, npz:PATH or idx:DIR"
    )


def _load_plugin(name: str, data_dir: str, split: str, pixel_scale: float = 0.0) -> Dataset:
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
    return _from_arrays(name, images.reshape(len(images), -1), labels, None, f"dataset plug-in {name!r}", pixel_scale)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cut_emnist_subset(directory: Path, download: bool = True) -> tuple[Path, str]:
    """Write directory/emnist-balanced-subset.npz, cut from torchvision's EMNIST download, and check it.

    Returns the file and a note on its checksum. The file is written only when its arrays are the
    published subset's (by sha256); nothing half-written is left behind.
    """
    raw = directory / "EMNIST" / "raw"
    if not all((raw / f"emnist-balanced-train-{kind}-ubyte").is_file() for kind in ("images-idx3", "labels-idx1")):
        if not download:
            raise DataError(f"no torchvision EMNIST download in {directory} (EMNIST/raw/emnist-balanced-train-*); "
                            "drop --no-download, or copy EMNIST/raw/ there")
        _torchvision_dataset("emnist", directory, "train", download=True)
    images = read_idx(raw / "emnist-balanced-train-images-idx3-ubyte")[EMNIST_SUBSET].transpose(0, 2, 1)
    labels = read_idx(raw / "emnist-balanced-train-labels-idx1-ubyte")[EMNIST_SUBSET]
    arrays = hashlib.sha256(np.ascontiguousarray(images).tobytes() + labels.tobytes()).hexdigest()
    if arrays != EMNIST_SUBSET_ARRAYS_SHA256:
        raise DataError(f"the EMNIST download in {raw} gives other images {EMNIST_SUBSET.start}-"
                        f"{EMNIST_SUBSET.stop - 1} than the published subset (arrays sha256 {arrays[:12]}…, "
                        f"expected {EMNIST_SUBSET_ARRAYS_SHA256[:12]}…); delete {directory / 'EMNIST'} and download "
                        "again")
    classes = np.array(_torchvision_class("emnist").classes_split_dict["balanced"])
    target = directory / OFFLINE_NPZ[("emnist", "train")]
    tmp = target.with_name(target.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, images=images, labels=labels, classes=classes)
        digest = _sha256(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    note = "sha256 matches" if digest == EMNIST_SUBSET_SHA256 else (
        f"file sha256 {digest} differs from {EMNIST_SUBSET_SHA256} (this numpy/zlib compresses differently); "
        "its arrays are the published ones")
    return target, note


DATA_NAMES = (*sorted(_TORCHVISION), "emnist-subset")
"""What ``evoplastic data`` fetches: torchvision's datasets, and the offline EMNIST subset cut from one."""


def main(argv: list[str] | None = None) -> int:
    """``evoplastic data NAME``: download a named dataset into the data directory and check that it loads."""
    p = argparse.ArgumentParser(prog="evoplastic data", description=main.__doc__)
    p.add_argument("name", choices=DATA_NAMES, help="dataset to download (through torchvision); emnist-subset: "
                                                    "cut the 9,120-image EMNIST subset (downloads EMNIST first)")
    p.add_argument("--split", choices=("train", "test"), default="train", help="split (default train)")
    p.add_argument("--data-dir", default="", help=f"target directory (default ${DATA_ENV}, else {DEFAULT_CACHE})")
    p.add_argument("--no-download", action="store_true", help="emnist-subset: cut from an existing download only")
    args = p.parse_args(argv)
    directory, _ = data_directory(args.data_dir)
    try:
        if args.name == "emnist-subset":
            target, note = cut_emnist_subset(directory, download=not args.no_download)
            print(f"{target}: 9120 EMNIST Balanced training images {EMNIST_SUBSET.start}-{EMNIST_SUBSET.stop - 1}, "
                  f"47 classes; {note}")
            return 0
        ds = load_dataset(args.name, str(directory), args.split, download=True)
    except DataError as err:
        print(f"evoplastic data: error: {err}", file=sys.stderr)
        return 2
    print(f"{args.name} ({args.split}): {len(ds.labels)} images, {len(ds.class_names)} classes, from {ds.source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
