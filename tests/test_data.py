"""Dataset loaders on files the tests write themselves, the bundled digits and shared/data."""

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from evoplastic.families.paper.data import DataError, data_directory, load_dataset, read_idx

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EMNIST_SUBSET = SHARED_DATA / "emnist-balanced-subset.npz"
FASHION_IDX = SHARED_DATA / "fashion-mnist"


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding by hand: magic 0x0000 08 ndim, big-endian dims, unsigned bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    raw = idx_bytes(array)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return path


def toy_images(n=6, side=3, seed=0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
    images[0, 0, 0] = 255
    return images, np.arange(n, dtype=np.uint8) % 3


def test_idx_magic_numbers_are_the_standard_ones():
    images, labels = toy_images()
    assert idx_bytes(images)[:4] == (0x00000803).to_bytes(4, "big")
    assert idx_bytes(labels)[:4] == (0x00000801).to_bytes(4, "big")


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_roundtrip(tmp_path, suffix):
    images, _ = toy_images()
    path = write_idx(tmp_path / f"x-idx3-ubyte{suffix}", images)
    np.testing.assert_array_equal(read_idx(path), images)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("split, prefix", [("train", "train"), ("test", "t10k")])
def test_idx_directory(tmp_path, suffix, split, prefix):
    images, labels = toy_images()
    write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    ds = load_dataset(f"idx:{tmp_path}", split=split)
    assert ds.images.shape == (6, 9) and ds.images.dtype == torch.float32 and ds.n_features == 9
    torch.testing.assert_close(ds.images, torch.from_numpy(images.reshape(6, 9) / 255.0).float())
    assert ds.labels.tolist() == labels.tolist() and ds.labels.dtype == torch.int64
    assert ds.class_names == ("0", "1", "2")


def test_idx_directory_without_the_split_says_which_file(tmp_path):
    images, labels = toy_images()
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    with pytest.raises(DataError, match=r"no test images IDX file .*task.split"):
        load_dataset(f"idx:{tmp_path}", split="test")


def test_missing_idx_directory(tmp_path):
    with pytest.raises(DataError, match="not found; give a directory of IDX"):
        load_dataset(f"idx:{tmp_path / 'nowhere'}")


def test_read_idx_rejects_non_idx_and_truncated_files(tmp_path):
    bad = tmp_path / "bad-idx3-ubyte"
    bad.write_bytes(b"PK\x03\x04not an idx file")
    with pytest.raises(DataError, match="not an unsigned-byte IDX file"):
        read_idx(bad)
    images, _ = toy_images()
    short = tmp_path / "short-idx3-ubyte"
    short.write_bytes(idx_bytes(images)[:-5])
    with pytest.raises(DataError, match=r"header says \(6, 3, 3\)"):
        read_idx(short)


def test_npz_uint8_with_class_names(tmp_path):
    images, labels = toy_images()
    path = tmp_path / "toy.npz"
    np.savez(path, images=images, labels=labels, classes=np.array(["x", "y", "z"]))
    ds = load_dataset(f"npz:{path}")
    assert ds.images.shape == (6, 9) and float(ds.images.max()) == 1.0 and float(ds.images.min()) >= 0.0
    assert ds.class_names == ("x", "y", "z")
    assert ds.labels.tolist() == labels.tolist()


def test_npz_float_images_in_unit_range_are_kept(tmp_path):
    images = np.linspace(0, 1, 4 * 5, dtype=np.float64).reshape(4, 5)
    path = tmp_path / "floats.npz"
    np.savez(path, images=images, labels=np.array([0, 1, 1, 0]))
    ds = load_dataset(f"npz:{path}")
    torch.testing.assert_close(ds.images, torch.from_numpy(images).float())
    assert ds.class_names == ("0", "1")


def test_npz_errors(tmp_path):
    with pytest.raises(DataError, match="not found; give an existing file with arrays 'images' and 'labels'"):
        load_dataset(f"npz:{tmp_path / 'missing.npz'}")
    path = tmp_path / "nolabels.npz"
    np.savez(path, images=np.zeros((2, 4), np.uint8))
    with pytest.raises(DataError, match=r"lacks array\(s\) \['labels'\]"):
        load_dataset(f"npz:{path}")
    path = tmp_path / "mismatch.npz"
    np.savez(path, images=np.zeros((3, 4), np.uint8), labels=np.zeros(2, np.uint8))
    with pytest.raises(DataError, match="3 images but 2 labels"):
        load_dataset(f"npz:{path}")


def test_digits_bundled_with_scikit_learn():
    ds = load_dataset("digits")
    assert ds.images.shape == (1797, 64)
    assert float(ds.images.min()) == 0.0 and float(ds.images.max()) == 1.0
    assert sorted(torch.unique(ds.labels).tolist()) == list(range(10)) and len(ds.class_names) == 10


@pytest.mark.skipif(not EMNIST_SUBSET.is_file(), reason=f"shared EMNIST subset not present at {EMNIST_SUBSET}")
def test_shared_emnist_subset():
    ds = load_dataset(f"npz:{EMNIST_SUBSET}")
    assert ds.images.shape == (9120, 784)
    assert 0.0 <= float(ds.images.min()) and float(ds.images.max()) == 1.0
    assert len(ds.class_names) == 47 and ds.class_names[:3] == ("0", "1", "2") and ds.class_names[10] == "A"
    counts = torch.bincount(ds.labels, minlength=47)
    assert len(counts) == 47 and int(counts.min()) >= 60  # enough for k_shot 50 + n_query 10


@pytest.mark.skipif(not FASHION_IDX.is_dir(), reason=f"shared Fashion-MNIST IDX files not present at {FASHION_IDX}")
def test_shared_fashion_mnist_idx_gz():
    ds = load_dataset(f"idx:{FASHION_IDX}", split="test")
    assert ds.images.shape == (10000, 784) and len(torch.unique(ds.labels)) == 10


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; choose emnist, mnist, fashion-mnist, digits"):
        load_dataset("cifar")


def test_bad_split():
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_dataset("digits", split="valid")


def test_torchvision_without_download_explains_the_fix(tmp_path):
    with pytest.raises(DataError, match=rf"emnist \(train\) is not in the data directory {tmp_path} "
                                        r"\(task.data_dir\).*task.download=true"):
        load_dataset("emnist", data_dir=str(tmp_path), download=False)
    assert not any(tmp_path.rglob("*.gz"))  # nothing was fetched


# Validation as a dataset loads: bad entries are counted and the file named.

def save_npz(path: Path, images, labels, **extra) -> str:
    np.savez(path, images=images, labels=labels, **extra)
    return f"npz:{path}"


def test_nan_or_inf_images_are_counted_and_the_file_named(tmp_path):
    images = np.random.default_rng(0).random((6, 4))
    images[1, 2], images[4, 0] = np.nan, np.inf
    spec = save_npz(tmp_path / "nan.npz", images, np.arange(6) % 3)
    with pytest.raises(DataError, match=rf"{tmp_path / 'nan.npz'}: 2 of 6 images hold NaN or inf pixel values "
                                        r"\(first: image 1\)"):
        load_dataset(spec)


def test_float_labels_must_be_whole_numbers(tmp_path):
    images = np.zeros((4, 3), np.uint8)
    whole = load_dataset(save_npz(tmp_path / "whole.npz", images, np.array([0.0, 1.0, 2.0, 1.0])))
    assert whole.labels.tolist() == [0, 1, 2, 1] and whole.labels.dtype == torch.int64
    spec = save_npz(tmp_path / "frac.npz", images, np.array([0.0, 1.5, 2.0, 0.7]))
    with pytest.raises(DataError, match=r"frac.npz: 2 of 4 labels are not whole numbers \(first: 1.5 at index 1\)"):
        load_dataset(spec)  # before: silently truncated to 1 and 0


@pytest.mark.parametrize("images, labels, extra, message", [
    (np.zeros((3, 4)), np.array([0, -1, 1]), {}, "1 labels are negative"),
    (np.zeros((3, 4)), np.array(["a", "b", "c"]), {}, "labels have dtype <U1; give integer class ids"),
    (np.zeros((0, 4)), np.zeros(0, int), {}, r"holding at least one image, got shape \(0, 4\)"),
    (np.zeros(5), np.zeros(5, int), {}, r"holding at least one image, got shape \(5,\)"),
    (np.zeros((3, 4)), np.zeros((3, 2), int), {}, r"3 images but 6 labels \(shape \(3, 2\)\)"),
    (np.zeros((3, 4)), np.array([0, 2, 0]), {"classes": np.array(["x", "y", "z"])},
     r"1 of 3 named classes have no images \(ids \[1\]\)"),
    (np.zeros((3, 4)), np.array([0, 3, 1]), {"classes": np.array(["x", "y", "z"])},
     "1 labels are ≥ 3, the number of class names"),
])
def test_invalid_arrays_are_errors_naming_the_file(images, labels, extra, message, tmp_path):
    with pytest.raises(DataError, match=rf"bad.npz: .*{message}"):
        load_dataset(save_npz(tmp_path / "bad.npz", images, labels, **extra))


def test_garbage_npz_file_is_a_data_error(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match=r"junk.npz is not a readable npz file"):
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")


# Named datasets from a data directory.

def toy_emnist(directory: Path) -> Path:
    """A 3-class stand-in for the offline EMNIST subset, under its real file name."""
    images, labels = toy_images(n=9)
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / "emnist-balanced-subset.npz", images=images, labels=labels, classes=np.array(list("abc")))
    return directory


def test_named_dataset_comes_from_the_data_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("EVOPLASTIC_DATA", raising=False)
    ds = load_dataset("emnist", data_dir=str(toy_emnist(tmp_path)))
    assert ds.name == "emnist" and ds.images.shape == (9, 9) and ds.class_names == ("a", "b", "c")
    assert ds.source == str(tmp_path / "emnist-balanced-subset.npz")


def test_environment_variable_names_the_data_directory_and_the_key_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOPLASTIC_DATA", str(toy_emnist(tmp_path / "env")))
    assert data_directory("") == (tmp_path / "env", "$EVOPLASTIC_DATA")
    assert load_dataset("emnist").source == str(tmp_path / "env" / "emnist-balanced-subset.npz")
    toy_emnist(tmp_path / "key")
    assert load_dataset("emnist", data_dir=str(tmp_path / "key")).source.startswith(str(tmp_path / "key"))
    monkeypatch.delenv("EVOPLASTIC_DATA")
    assert data_directory("")[0] == Path.home() / ".cache" / "evoplastic"


def test_named_idx_directory_in_the_data_directory(tmp_path):
    images, labels = toy_images()
    (tmp_path / "fashion-mnist").mkdir()
    write_idx(tmp_path / "fashion-mnist" / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz", labels)
    ds = load_dataset("fashion-mnist", data_dir=str(tmp_path), split="test")
    assert ds.name == "fashion-mnist" and ds.images.shape == (6, 9)
    with pytest.raises(DataError, match=r"fashion-mnist \(train\) is not in the data directory"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path), split="train")  # only the test split is there


def test_missing_named_dataset_prints_the_command_that_gets_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOPLASTIC_DATA", str(tmp_path / "my data"))
    with pytest.raises(DataError) as err:
        load_dataset("emnist")
    message = str(err.value)
    assert f"is not in the data directory {tmp_path / 'my data'} ($EVOPLASTIC_DATA)" in message
    assert f"Get it with: evoplastic data emnist --data-dir '{tmp_path / 'my data'}'" in message


def test_data_command_reports_an_offline_copy(tmp_path, capsys):
    from evoplastic.cli import main

    assert main(["data", "emnist", "--data-dir", str(toy_emnist(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert f"emnist (train): 9 images, 3 classes, from {tmp_path / 'emnist-balanced-subset.npz'}" in out


CONFIGS = [p for p in sorted(Path(__file__).resolve().parents[1].glob("configs/**/*.yaml"))
           if (yaml.safe_load(p.read_text()) or {}).get("family", "paper") == "paper"]
"""The configs of the paper's family, whose tasks read an image dataset."""


@pytest.mark.skipif(not EMNIST_SUBSET.is_file(), reason=f"shared EMNIST subset not present at {EMNIST_SUBSET}")
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_config_finds_its_data_through_the_data_directory(config, monkeypatch):
    """configs/ name datasets (no ../shared paths); with the data directory CI uses, each one loads."""
    from evoplastic.config import load_config

    monkeypatch.setenv("EVOPLASTIC_DATA", str(SHARED_DATA))
    task = load_config(config).task
    assert not task.dataset.startswith(("npz:", "idx:")), "configs name datasets instead of paths"
    ds = _cached_load(task.dataset, task.data_dir, task.split)
    assert len(ds.labels) > 0


_LOADED: dict = {}


def _cached_load(name: str, data_dir: str, split: str):
    if (name, data_dir, split) not in _LOADED:
        _LOADED[name, data_dir, split] = load_dataset(name, data_dir, split)
    return _LOADED[name, data_dir, split]
