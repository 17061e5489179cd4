"""CIFAR-10 / CIFAR-100: the real layout written by make_synthetic_cifar, files as Python 2
wrote them, pickles that try to run code, damaged files, MD5 checks and download=True (with
`fetch` replaced: no network)."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from minigrad.data import CIFAR10, CIFAR100, DataLoader, cifar, make_synthetic_cifar
from minigrad.data import transforms as T

BATCHES = [f"data_batch_{k}" for k in range(1, 6)]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """A CIFAR-10 tree of 60 training and 20 test images, written once (tests copy it
    before changing it)."""
    return make_synthetic_cifar(tmp_path_factory.mktemp("cifar"), n_train=60, n_test=20)


@pytest.fixture
def tree(synthetic, tmp_path) -> Path:
    """A copy of the synthetic tree that a test may damage."""
    shutil.copytree(synthetic / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    return tmp_path


def write_batch(path: Path, data, labels, key=b"labels") -> None:
    path.write_bytes(pickle.dumps({b"batch_label": b"a batch", key: labels, b"data": data,
                                   b"filenames": [b"x.png"] * len(labels)}, protocol=2))


def test_the_synthetic_tree_loads_with_torchvisions_shapes_and_types(synthetic):
    train, test = CIFAR10(synthetic), CIFAR10(synthetic, train=False)
    assert (len(train), len(test)) == (60, 20)
    assert train.data.shape == (60, 32, 32, 3) and train.data.dtype == np.uint8
    assert isinstance(train.targets, list) and all(type(t) is int for t in train.targets)
    assert sorted(set(train.targets)) == list(range(10))
    assert train.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                             "horse", "ship", "truck"]
    assert train.class_to_idx["cat"] == 3
    image, target = train[7]
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert target == train.targets[7] and np.array_equal(image, train.data[7])


def test_the_rows_are_red_then_green_then_blue_planes(tree):
    """A pixel's three values are 1024 apart in a row, as the real files have them."""
    rows = np.zeros((5, 3072), dtype=np.uint8)
    rows[:, 0], rows[:, 1024], rows[:, 2048 + 33] = 10, 20, 30  # (0,0) red, green; (1,1) blue
    for name in BATCHES:
        write_batch(tree / "cifar-10-batches-py" / name, rows, [0] * 5)
    image = CIFAR10(tree).data[0]
    assert image[0, 0].tolist() == [10, 20, 0] and image[1, 1].tolist() == [0, 0, 30]


def test_train_is_the_five_batches_in_order(tree):
    for k, name in enumerate(BATCHES, start=1):  # batch k: k images filled with k, labelled k
        write_batch(tree / "cifar-10-batches-py" / name, np.full((k, 3072), k, np.uint8), [k] * k)
    train = CIFAR10(tree)
    expected = [k for k in range(1, 6) for _ in range(k)]
    assert train.targets == expected
    assert train.data[:, 0, 0, 0].tolist() == expected


def test_transforms_are_applied_and_a_loader_batches_the_result(synthetic):
    train = CIFAR10(synthetic, transform=T.ToArray(), target_transform=lambda t: t + 100)
    image, target = train[3]
    assert image.shape == (3, 32, 32) and image.dtype == np.float32
    assert np.allclose(image, train.data[3].transpose(2, 0, 1) / 255)
    assert target == train.targets[3] + 100
    images, targets = next(iter(DataLoader(train, batch_size=8)))
    assert tuple(images.shape) == (8, 3, 32, 32) and tuple(targets.shape) == (8,)


def test_the_synthetic_classes_can_be_learned(synthetic):
    """Even a nearest-class-mean classifier tells the synthetic test images apart."""
    train, test = CIFAR10(synthetic), CIFAR10(synthetic, train=False)
    x, y = train.data.reshape(len(train), -1).astype(np.float64), np.array(train.targets)
    means = np.stack([x[y == c].mean(0) for c in range(10)])
    xt = test.data.reshape(len(test), -1).astype(np.float64)
    predicted = ((xt[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    assert (predicted == np.array(test.targets)).mean() >= 0.9


def test_make_synthetic_cifar_is_seeded_and_writes_standard_protocol_2_pickles(tmp_path):
    first = make_synthetic_cifar(tmp_path / "a", n_train=10, n_test=5, seed=3)
    make_synthetic_cifar(tmp_path / "b", n_train=10, n_test=5, seed=3)
    make_synthetic_cifar(tmp_path / "c", n_train=10, n_test=5, seed=4)

    def read(root):
        return (root / "cifar-10-batches-py" / "data_batch_2").read_bytes()

    assert read(first) == read(tmp_path / "b") != read(tmp_path / "c")
    assert read(first)[:2] == b"\x80\x02"  # the PROTO 2 opcode
    with pytest.raises(ValueError, match="classes must be 2..10"):
        make_synthetic_cifar(tmp_path / "d", classes=11)


def test_a_pickle_that_calls_a_function_is_refused_and_nothing_runs(tree):
    marker = tree / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tree / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(pickle.dumps({b"data": Payload(), b"labels": []}, protocol=2))
    with pytest.raises(cifar.UnsafePickleError, match=r"data_batch_2 asks for \w+\.system"):
        CIFAR10(tree)
    assert not marker.exists()
    path.write_bytes(b"\x80\x02cbuiltins\neval\nX\x05\x00\x00\x001 + 1\x85R.")  # eval("1 + 1")
    with pytest.raises(ValueError, match="data_batch_2 asks for builtins.eval"):
        CIFAR10(tree)


def test_codecs_encode_is_allowed_for_latin1_only(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13"
                     b"\x86R.")
    with pytest.raises(cifar.UnsafePickleError, match="batch calls _codecs.encode with 'rot13'"):
        cifar.read_pickle(path)


class Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2's pickle did (SHORT_BINSTRING / BINSTRING, not
    _codecs.encode), as in the real CIFAR files."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        size = len(obj)
        header = (pickle.SHORT_BINSTRING + bytes([size]) if size < 256
                  else pickle.BINSTRING + struct.pack("<i", size))
        self.write(header + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def test_a_batch_as_python_2_wrote_it_loads(tree):
    """As the real files: no _codecs.encode, NumPy named numpy.core.multiarray, the dtype's
    arguments as bytes."""
    rows = np.arange(4 * 3072, dtype=np.int64).astype(np.uint8).reshape(4, 3072)
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump({b"data": rows, b"labels": [1, 2, 3, 4]})
    data = buffer.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"_codecs" not in data and b"numpy.core.multiarray\n_reconstruct" in data
    (tree / "cifar-10-batches-py" / "test_batch").write_bytes(data)
    test = CIFAR10(tree, train=False)
    assert test.targets == [1, 2, 3, 4]
    assert np.array_equal(test.data, rows.reshape(4, 3, 32, 32).transpose(0, 2, 3, 1))


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[: len(data) // 2], "data_batch_3 ends early: the file is truncated"),
    (lambda data: b"", "data_batch_3 ends early"),
    (lambda data: b"\x00garbage" + data, "data_batch_3 is damaged, or not a CIFAR file"),
    (lambda data: data + b"\x00", "data_batch_3 goes on after the end of its pickle"),
])
def test_a_damaged_batch_file_is_named(tree, damage, message):
    path = tree / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=message):
        CIFAR10(tree)


@pytest.mark.parametrize("data, labels, message", [
    (np.zeros((4, 3000), np.uint8), [0] * 4, r"data_batch_4 is an array of shape \(4, 3000\)"),
    (np.zeros((4, 3072), np.float32), [0] * 4, "dtype float32"),
    (np.zeros((4, 3072), np.uint8), [0] * 3, "data_batch_4 holds 4 images but 3 'labels'"),
    (np.zeros((4, 3072), np.uint8), [0, 1, 2, 10], "data_batch_4 holds the label 10"),
    (np.zeros((4, 3072), np.uint8), ["a"] * 4, "'labels' of .*data_batch_4 is not a list of int"),
])
def test_wrong_arrays_and_labels_are_named(tree, data, labels, message):
    write_batch(tree / "cifar-10-batches-py" / "data_batch_4", data, labels)
    with pytest.raises(ValueError, match=message):
        CIFAR10(tree)


def test_a_missing_folder_or_file_says_how_to_get_it(tmp_path, tree):
    with pytest.raises(FileNotFoundError, match="no folder .*cifar-10-batches-py; pass "
                                                "download=True to fetch https://www.cs"):
        CIFAR10(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="looks like that folder itself"):
        CIFAR10(tree / "cifar-10-batches-py")
    (tree / "cifar-10-batches-py" / "batches.meta").unlink()
    with pytest.raises(FileNotFoundError, match="has no batches.meta .*download=True"):
        CIFAR10(tree, train=False)


def synthetic_md5s(monkeypatch, root: Path, dataset=CIFAR10) -> None:
    """Make the synthetic files `dataset`'s "originals", as if they were the real ones."""
    folder = root / dataset.base_folder
    md5 = {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in folder.iterdir()}
    monkeypatch.setattr(dataset, "train_list", [[n, md5[n]] for n, _ in dataset.train_list])
    monkeypatch.setattr(dataset, "test_list", [[n, md5[n]] for n, _ in dataset.test_list])
    monkeypatch.setattr(dataset, "meta", {**dataset.meta, "md5": md5[dataset.meta["filename"]]})


def test_md5s_are_checked_only_when_asked_and_catch_a_changed_file(tree, monkeypatch):
    with pytest.raises(RuntimeError, match="data_batch_1 has MD5 [0-9a-f]{32}, the original "
                                           "c99cafc152244af753f735de768cd75f"):
        CIFAR10(tree, check_integrity=True)
    synthetic_md5s(monkeypatch, tree)
    assert len(CIFAR10(tree, check_integrity=True)) == 60
    write_batch(tree / "cifar-10-batches-py" / "data_batch_2", np.zeros((1, 3072), np.uint8), [0])
    assert len(CIFAR10(tree)) == 49  # a valid file: only the MD5 tells it is not the original
    with pytest.raises(RuntimeError, match="data_batch_2 has MD5") as caught:
        CIFAR10(tree, check_integrity=True)
    assert "data_batch_1" not in str(caught.value)


def test_download_fetches_unpacks_and_checks_then_skips(tmp_path, synthetic, monkeypatch):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(synthetic / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    calls = []

    def fake_fetch(urls, path, md5, progress=True):
        calls.append((urls, Path(path), md5))
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # as fetch does
        Path(path).write_bytes(buffer.getvalue())
        return Path(path)

    monkeypatch.setattr(cifar, "fetch", fake_fetch)
    synthetic_md5s(monkeypatch, synthetic)
    root = tmp_path / "data"
    assert len(CIFAR10(root, download=True)) == 60
    assert calls == [([CIFAR10.url], root / "cifar-10-python.tar.gz",
                      "c58f30108f718f92721af3b95e74349a")]
    assert len(CIFAR10(root, train=False, download=True)) == 20
    assert len(calls) == 1  # every file there with its MD5: nothing fetched
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", "0" * 32]])
    with pytest.raises(RuntimeError, match="test_batch has MD5 .*download=True fetches"):
        CIFAR10(tmp_path / "other", download=True)  # unpacked, but not the originals


def test_cifar100_loads_its_layout_with_fine_labels(tmp_path, monkeypatch):
    root = make_synthetic_cifar(tmp_path, n_train=40, n_test=10, classes=20, cifar100=True)
    assert sorted(p.name for p in (root / "cifar-100-python").iterdir()) == ["meta", "test",
                                                                             "train"]
    train, test = CIFAR100(root), CIFAR100(root, train=False)
    assert (len(train), len(test)) == (40, 10) and train.data.shape == (40, 32, 32, 3)
    assert len(train.classes) == 20 and train.classes[0] == "class_00"
    coarse = cifar.read_pickle(root / "cifar-100-python" / "train")["coarse_labels"]
    assert [t // 5 for t in train.targets] == coarse and max(train.targets) >= 5
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        CIFAR10(root)
    synthetic_md5s(monkeypatch, root, CIFAR100)
    assert len(CIFAR100(root, check_integrity=True)) == 40
