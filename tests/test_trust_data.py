"""Data a user can trust: values checked after the cast, an explicit pixel scale, a rebuildable EMNIST subset."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from evoplastic.cli import main as cli_main
from evoplastic.config import ConfigError, load_config
from evoplastic.families.paper import data
from evoplastic.families.paper.data import DataError, load_dataset

SHARED_SUBSET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "emnist-balanced-subset.npz"


def save_npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return f"npz:{path}"


def unit_images(n: int = 6) -> np.ndarray:
    return np.random.default_rng(0).random((n, 4))


# Values are checked as the network will see them (after the cast to float32), labels before any cast.

def test_float64_pixels_that_overflow_float32_are_refused(tmp_path):
    images = unit_images()
    images[2, 1] = 1e300  # finite in float64, inf in float32
    with pytest.raises(DataError, match=r"1 of 6 images hold NaN or inf pixel values \(first: image 2\)"):
        load_dataset(save_npz(tmp_path / "big.npz", images=images, labels=np.arange(6) % 3))


@pytest.mark.parametrize("labels", [
    np.array([0, 1, 2, 2**64 - 1, 1, 0], dtype=np.uint64),  # wraps to -1 in int64
    np.array([0, 1, 2, 2.0**63, 1, 0]),  # becomes -2**63 in int64
    np.array([0, 1, 2, 10**9, 1, 0]),  # one class name and index list per id would exhaust memory
])
def test_huge_class_ids_are_refused_before_any_cast(labels, tmp_path):
    with pytest.raises(DataError, match=r"1 labels are class ids ≥ 1048576 \(first: [0-9.e+]+ at index 3\)"):
        load_dataset(save_npz(tmp_path / "huge.npz", images=unit_images(), labels=labels))


def test_huge_labels_stop_training_before_a_run_directory_is_made(tmp_path, capsys):
    spec = save_npz(tmp_path / "huge.npz", images=np.zeros((6, 64), np.uint8),
                    labels=np.array([0, 1, 2, 2**64 - 1, 1, 0], dtype=np.uint64))
    code = cli_main(["train", "configs/quickstart.yaml", f"task.dataset={spec}", "--runs-dir", str(tmp_path / "runs"),
                     "--no-progress"])
    assert code == 2 and "labels are class ids ≥" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_truncated_npz_is_one_line(tmp_path):
    save_npz(tmp_path / "whole.npz", images=unit_images(), labels=np.arange(6) % 3)
    raw = (tmp_path / "whole.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"cut.npz is truncated or damaged \(BadZipFile"):
        load_dataset(f"npz:{tmp_path / 'cut.npz'}")


def test_garbage_npz_is_not_called_pickled_data(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"\x00\x01 certainly not a zip" * 10)
    with pytest.raises(DataError, match="no zip archive header") as err:
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")
    assert "pickle" not in str(err.value)
    np.save(tmp_path / "one.npy", unit_images())
    (tmp_path / "one.npz").write_bytes((tmp_path / "one.npy").read_bytes())
    with pytest.raises(DataError, match="is a single .npy array, not an npz archive"):
        load_dataset(f"npz:{tmp_path / 'one.npz'}")


def test_object_arrays_are_named_as_such(tmp_path):
    np.savez(tmp_path / "obj.npz", images=np.array([None] * 3, dtype=object), labels=np.arange(3))
    with pytest.raises(DataError, match="holds object arrays"):
        load_dataset(f"npz:{tmp_path / 'obj.npz'}")


def test_wrong_array_names_list_what_the_file_holds(tmp_path):
    spec = save_npz(tmp_path / "xy.npz", x=unit_images(), y=np.arange(6) % 3)
    with pytest.raises(DataError, match=r"lacks array\(s\) \['images', 'labels'\]; it holds \['x', 'y'\]"):
        load_dataset(spec)


# The pixel scale is explicit: uint8 is divided by 255, anything else must be in [0, 1] or name its scale.

@pytest.mark.parametrize("high", [16.0, 1e30])
def test_floats_above_one_are_refused_without_a_scale(high, tmp_path):
    images = unit_images() * 16
    images[0, 0] = high
    with pytest.raises(DataError, match=r"pixel values must lie in \[0, 1\].*set task.pixel_scale"):
        load_dataset(save_npz(tmp_path / "raw.npz", images=images, labels=np.arange(6) % 3))


def test_pixel_scale_divides_and_is_checked(tmp_path):
    images = np.round(unit_images() * 16)
    spec = save_npz(tmp_path / "digits16.npz", images=images, labels=np.arange(6) % 3)
    scaled = load_dataset(spec, pixel_scale=16)
    torch.testing.assert_close(scaled.images, torch.from_numpy(images / 16).float())
    with pytest.raises(DataError, match=r"values divided by task.pixel_scale=8 span \[0, 1.875\]"):
        load_dataset(spec, pixel_scale=8)


def test_integer_images_other_than_uint8_need_a_scale(tmp_path):
    spec = save_npz(tmp_path / "int.npz", images=np.full((3, 4), 200, np.int64), labels=np.arange(3))
    with pytest.raises(DataError, match=r"the int64 values span \[200, 200\]"):
        load_dataset(spec)
    assert float(load_dataset(spec, pixel_scale=255).images.max()) == pytest.approx(200 / 255)


def test_uint8_keeps_its_division_by_255(tmp_path):
    images = np.arange(24, dtype=np.uint8).reshape(6, 4) * 10
    ds = load_dataset(save_npz(tmp_path / "u8.npz", images=images, labels=np.arange(6) % 3))
    assert torch.equal(ds.images, torch.from_numpy(images.astype(np.float32) / 255.0))


def test_pixel_scale_reaches_the_loader_through_the_config(tmp_path):
    spec = save_npz(tmp_path / "d16.npz", images=np.round(np.random.default_rng(1).random((30, 64)) * 16),
                    labels=np.arange(30) % 3)
    base = ["steps=1", "network.dims=[64,12,10]", "task.n_way=3", "task.k_shot=5", "task.n_query=3",
            "es.population_size=4", "final_eval_tasks=2", "eval_every=0", "--runs-dir", str(tmp_path / "runs"),
            "--no-progress"]
    assert cli_main(["train", "configs/quickstart.yaml", f"task.dataset={spec}", *base]) == 2
    assert cli_main(["train", "configs/quickstart.yaml", f"task.dataset={spec}", "task.pixel_scale=16", *base]) == 0


def test_negative_pixel_scale_is_a_config_error():
    with pytest.raises(ConfigError, match="task.pixel_scale must be > 0"):
        load_config(None, ["task.pixel_scale=-1"])


# The offline EMNIST subset can be rebuilt from torchvision's download, and offline failure is one line.

def fake_emnist_raw(raw: Path, subset: Path) -> None:
    """torchvision's EMNIST/raw layout (uncompressed IDX, images stored transposed) with the subset in place."""
    with np.load(subset) as z:
        images, labels = z["images"], z["labels"]
    n = data.EMNIST_SUBSET.stop + 7
    all_images = np.zeros((n, 28, 28), np.uint8)
    all_images[data.EMNIST_SUBSET] = images.transpose(0, 2, 1)
    all_images[: data.EMNIST_SUBSET.start] = 9  # any other image would change the digest
    all_labels = np.zeros(n, np.uint8)
    all_labels[data.EMNIST_SUBSET] = labels
    raw.mkdir(parents=True)
    for kind, array in (("images-idx3", all_images), ("labels-idx1", all_labels)):
        header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        (raw / f"emnist-balanced-train-{kind}-ubyte").write_bytes(header + array.tobytes())


needs_subset = pytest.mark.skipif(not SHARED_SUBSET.is_file(), reason=f"needs the published subset {SHARED_SUBSET} "
                                  "to build a fake download around it")


@needs_subset
def test_subset_is_cut_from_a_download_with_the_published_sha256(tmp_path, capsys):
    fake_emnist_raw(tmp_path / "EMNIST" / "raw", SHARED_SUBSET)
    assert data.main(["emnist-subset", "--data-dir", str(tmp_path), "--no-download"]) == 0
    written = tmp_path / "emnist-balanced-subset.npz"
    assert hashlib.sha256(written.read_bytes()).hexdigest() == data.EMNIST_SUBSET_SHA256
    assert "sha256 matches" in capsys.readouterr().out
    assert load_dataset("emnist", str(tmp_path)).class_names == load_dataset(f"npz:{SHARED_SUBSET}").class_names


@needs_subset
def test_subset_download_goes_through_a_scratch_folder(tmp_path, monkeypatch):
    """A fake torchvision class downloads into whatever root it gets; only a whole download is moved in."""
    class FakeEMNIST:
        classes_split_dict = {"balanced": list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt")}
        roots: list[Path] = []

        def __init__(self, root, train, download, split):
            raw = Path(root) / "EMNIST" / "raw"
            if download:
                FakeEMNIST.roots.append(Path(root))
                fake_emnist_raw(raw, SHARED_SUBSET)
            elif not raw.is_dir():
                raise RuntimeError("Dataset not found. You can use download=True to download it")

    FakeEMNIST.__name__ = "EMNIST"  # torchvision's folder name
    monkeypatch.setattr(data, "_torchvision_class", lambda name: FakeEMNIST)
    assert data.main(["emnist-subset", "--data-dir", str(tmp_path / "d")]) == 0
    assert FakeEMNIST.roots and FakeEMNIST.roots[0] != tmp_path / "d"  # downloaded elsewhere, then moved
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["EMNIST", "emnist-balanced-subset.npz"]


def test_subset_from_a_different_download_is_refused_and_not_written(tmp_path, capsys):
    raw = tmp_path / "EMNIST" / "raw"
    raw.mkdir(parents=True)
    n = data.EMNIST_SUBSET.stop
    for kind, shape in (("images-idx3", (n, 28, 28)), ("labels-idx1", (n,))):
        header = bytes([0, 0, 8, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
        (raw / f"emnist-balanced-train-{kind}-ubyte").write_bytes(header + bytes(int(np.prod(shape))))
    assert data.main(["emnist-subset", "--data-dir", str(tmp_path), "--no-download"]) == 2
    assert "gives other images 103680-112799 than the published subset" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["EMNIST"]


@pytest.mark.parametrize("name", ["emnist", "emnist-subset"])
def test_offline_download_is_one_line_and_writes_nothing(name, tmp_path, capsys, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    directory = tmp_path / "data"
    directory.mkdir()
    assert data.main([name, "--data-dir", str(directory)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "cannot download emnist (" in captured.err
    assert "this machine may be offline" in captured.err and not captured.out
    assert not any(directory.iterdir())  # no empty EMNIST/raw/, no scratch folder

