"""MNIST / Fashion-MNIST (IDX files, search order, download with checksum) and Pascal VOC
(real layout written by make_synthetic_voc and by hand)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minigrad.data import (
    VOC_CLASSES,
    DataLoader,
    FashionMNIST,
    VOCClassification,
    make_synthetic_voc,
    read_idx,
)
from minigrad.data import transforms as T

FASHION = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fake_mnist(folder: Path, n: int = 5, gz: bool = True) -> dict[str, str]:
    """The four files, images[i] filled with i and labels i % 10; returns name -> MD5."""
    folder.mkdir(parents=True, exist_ok=True)
    checksums = {}
    for prefix in ("train", "t10k"):
        images = np.stack([np.full((28, 28), i) for i in range(n)])
        for stem, array in ((f"{prefix}-images-idx3-ubyte", images),
                            (f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)):
            data = gzip.compress(idx_bytes(array)) if gz else idx_bytes(array)
            name = stem + (".gz" if gz else "")
            (folder / name).write_bytes(data)
            checksums[name] = hashlib.md5(data).hexdigest()
    return checksums


def test_idx_files_read_gzipped_or_plain(tmp_path):
    write_fake_mnist(tmp_path / "gz")
    write_fake_mnist(tmp_path / "plain", gz=False)
    for folder in ("gz", "plain"):
        ds = FashionMNIST(tmp_path / folder, train=True, download=False)
        assert len(ds) == 5 and ds.data.shape == (5, 28, 28) and ds.data.dtype == np.uint8
        image, label = ds[3]
        assert image.shape == (28, 28) and (image == 3).all() and label == 3
        assert isinstance(label, int) and ds.targets.dtype == np.int64


def test_bad_idx_files_are_named(tmp_path):
    good = idx_bytes(np.zeros((4, 28, 28)))
    (tmp_path / "short").write_bytes(good[:-10])
    with pytest.raises(ValueError, match=r"short holds 3142 bytes.*\(4, 28, 28\).*truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "magic").write_bytes(b"\x00\x00\x0d\x03" + good[4:])
    with pytest.raises(ValueError, match="magic.*not an IDX file of unsigned bytes.*00000d03"):
        read_idx(tmp_path / "magic")
    noise = gzip.compress(idx_bytes(np.random.default_rng(0).integers(0, 256, (4, 28, 28))))
    (tmp_path / "cut.gz").write_bytes(noise[: len(noise) // 2])
    with pytest.raises(ValueError, match="cannot read .*cut.gz"):
        read_idx(tmp_path / "cut.gz")


def test_nothing_found_says_where_it_looked_and_how_to_get_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGRAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(FashionMNIST, "system_folders", [str(tmp_path / "system")])
    with pytest.raises(FileNotFoundError) as error:
        FashionMNIST(download=False)
    message = str(error.value)
    assert str(tmp_path / "cache" / "fashion-mnist") in message
    assert str(tmp_path / "system") in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_the_cache_comes_before_the_system_folder(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "cache" / "fashion-mnist", n=3)
    write_fake_mnist(tmp_path / "system", n=4)
    monkeypatch.setenv("MINIGRAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(FashionMNIST, "system_folders", [str(tmp_path / "system")])
    assert len(FashionMNIST()) == 3
    shutil.rmtree(tmp_path / "cache")
    assert len(FashionMNIST()) == 4


@pytest.fixture
def local_mirror(tmp_path):
    """A local HTTP server (loopback only) serving fake MNIST files; yields (url, checksums)."""
    served = tmp_path / "served"
    checksums = write_fake_mnist(served, n=6)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", checksums
    server.shutdown()
    server.server_close()


def test_download_from_a_mirror_with_checksums(tmp_path, monkeypatch, local_mirror):
    url, checksums = local_mirror
    monkeypatch.setenv("MINIGRAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(FashionMNIST, "system_folders", [])
    monkeypatch.setattr(FashionMNIST, "mirrors", ["http://127.0.0.1:9/broken/", url])
    monkeypatch.setattr(FashionMNIST, "resources", checksums)
    ds = FashionMNIST(train=False)
    assert len(ds) == 6 and ds.root == tmp_path / "cache" / "fashion-mnist"
    assert sorted(p.name for p in ds.root.iterdir()) == ["t10k-images-idx3-ubyte.gz",
                                                         "t10k-labels-idx1-ubyte.gz"]


def test_a_download_with_the_wrong_checksum_is_refused_and_not_kept(tmp_path, monkeypatch,
                                                                      local_mirror):
    url, checksums = local_mirror
    monkeypatch.setattr(FashionMNIST, "mirrors", [url])
    monkeypatch.setattr(FashionMNIST, "resources", {k: "0" * 32 for k in checksums})
    with pytest.raises(FileNotFoundError, match="has MD5 .*, expected 00000000"):
        FashionMNIST(tmp_path / "data", train=True)
    assert not any((tmp_path / "data").iterdir())


def test_download_from_a_file_url(tmp_path, monkeypatch):
    checksums = write_fake_mnist(tmp_path / "mirror", n=2)
    monkeypatch.setattr(FashionMNIST, "mirrors", [(tmp_path / "mirror").as_uri() + "/"])
    monkeypatch.setattr(FashionMNIST, "resources", checksums)
    assert len(FashionMNIST(tmp_path / "data", train=True)) == 2


@pytest.mark.skipif(not FASHION.is_dir(), reason="apt-get install dataset-fashion-mnist (.ci/run "
                                                  "installs it)")
def test_the_real_fashion_mnist_from_the_debian_package():
    train, test = FashionMNIST(FASHION, train=True), FashionMNIST(FASHION, train=False)
    assert train.data.shape == (60000, 28, 28) and test.data.shape == (10000, 28, 28)
    assert np.bincount(train.targets).tolist() == [6000] * 10
    assert np.bincount(test.targets).tolist() == [1000] * 10
    assert test.targets[:5].tolist() == [9, 2, 1, 1, 6]  # ankle boot, pullover, trouser, ...
    image, _ = test[0]
    assert image.dtype == np.uint8 and 0 < image.mean() < 255
    batch = next(iter(DataLoader(FashionMNIST(FASHION, train=False, transform=T.ToArray()), 64)))
    assert batch[0].shape == (64, 1, 28, 28) and batch[0].dtype == np.float32


# ---------------------------------------------------------------------------------------------
# VOC


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    make_synthetic_voc(root, n_images=24, image_size=(48, 64), seed=1)
    return root


def test_the_synthetic_tree_has_voc_s_layout(voc_root):
    folder = voc_root / "VOCdevkit" / "VOC2012"
    main = folder / "ImageSets" / "Main"
    ids = (main / "trainval.txt").read_text().split()
    assert len(ids) == 24 and (main / "train.txt").is_file() and (main / "val.txt").is_file()
    for cls in VOC_CLASSES:
        lines = (main / f"{cls}_train.txt").read_text().splitlines()
        assert all(line.split()[1] in ("1", "-1", "0") for line in lines)
    image = Image.open(folder / "JPEGImages" / f"{ids[0]}.jpg")
    assert image.format == "JPEG" and image.size == (64, 48)
    xml = (folder / "Annotations" / f"{ids[0]}.xml").read_text()
    assert "<bndbox>" in xml and "<difficult>" in xml and "<size><width>64</width>" in xml


@pytest.mark.parametrize("where", ["", "VOCdevkit", "VOCdevkit/VOC2012"])
def test_root_may_be_the_parent_vocdevkit_or_voc2012(voc_root, where):
    ds = VOCClassification(voc_root / where, image_set="trainval")
    assert len(ds) == 24 and ds.classes == VOC_CLASSES


def test_targets_agree_with_the_per_class_lists(voc_root):
    """make_synthetic_voc's per-class files say 1 / 0 (difficult only) / -1 per image."""
    main = voc_root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main"
    for use_difficult in (False, True):
        ds = VOCClassification(voc_root, image_set="train", use_difficult=use_difficult)
        for c, cls in enumerate(VOC_CLASSES):
            listed = dict(line.split() for line in (main / f"{cls}_train.txt").read_text()
                          .splitlines())
            wanted = {"1", "0"} if use_difficult else {"1"}
            expected = [1.0 if listed[i] in wanted else 0.0 for i in ds.ids]
            np.testing.assert_array_equal(ds.targets[:, c], expected, err_msg=cls)
    image, target = ds[0]
    assert image.mode == "RGB" and target.dtype == np.float32 and target.shape == (20,)


def write_voc(root: Path, annotations: dict[str, str], year="2012", set_name="train",
              jpeg=True) -> Path:
    folder = root / "VOCdevkit" / f"VOC{year}"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for image_id, xml in annotations.items():
        (folder / "Annotations" / f"{image_id}.xml").write_text(xml)
        if jpeg:
            Image.new("RGB", (8, 6), (200, 10, 10)).save(folder / "JPEGImages" / f"{image_id}.jpg")
    (folder / "ImageSets" / "Main" / f"{set_name}.txt").write_text("\n".join(annotations) + "\n")
    return folder


def obj(name, difficult=0, parts=()):
    part_xml = "".join(f"<part><name>{p}</name></part>" for p in parts)
    return f"<object><name>{name}</name><difficult>{difficult}</difficult>{part_xml}</object>"


def test_a_hand_written_2007_tree_parts_are_not_classes_difficult_counts_only_if_asked(tmp_path):
    write_voc(tmp_path, {
        "000001": f"<annotation>{obj('person', parts=['head', 'hand'])}{obj('dog', 1)}"
                  "</annotation>",
        "000002": f"<annotation>{obj('tvmonitor')}{obj('tvmonitor')}</annotation>",
    }, year="2007")
    ds = VOCClassification(tmp_path, year="2007", image_set="train")
    person, dog, tv = (VOC_CLASSES.index(c) for c in ("person", "dog", "tvmonitor"))
    assert np.flatnonzero(ds.targets[0]).tolist() == [person]
    assert np.flatnonzero(ds.targets[1]).tolist() == [tv]
    with_difficult = VOCClassification(tmp_path, year="2007", image_set="train",
                                       use_difficult=True)
    assert np.flatnonzero(with_difficult.targets[0]).tolist() == [dog, person]


def test_bad_voc_trees_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no VOC2012 tree"):
        VOCClassification(tmp_path / "nowhere")
    write_voc(tmp_path / "unknown", {"a": f"<annotation>{obj('unicorn')}</annotation>"})
    with pytest.raises(ValueError, match=r"unknown class 'unicorn' in .*a\.xml"):
        VOCClassification(tmp_path / "unknown")
    write_voc(tmp_path / "malformed", {"b": "<annotation><object><name>dog</name>"})
    with pytest.raises(ValueError, match=r"malformed XML in .*b\.xml"):
        VOCClassification(tmp_path / "malformed")
    write_voc(tmp_path / "nojpeg", {"c": f"<annotation>{obj('dog')}</annotation>"}, jpeg=False)
    missing = r"1 ids listed in .*train\.txt have no JPEG.*c\.jpg"
    with pytest.raises(FileNotFoundError, match=missing):
        VOCClassification(tmp_path / "nojpeg")
    write_voc(tmp_path / "empty", {})
    with pytest.raises(ValueError, match="lists no images"):
        VOCClassification(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"no image set .*val\.txt; the sets here are "
                                                r"\['train'\]"):
        VOCClassification(tmp_path / "unknown", image_set="val")


def test_a_corrupt_jpeg_is_named_and_can_be_skipped_by_the_loader(tmp_path):
    folder = write_voc(tmp_path, {f"{i}": f"<annotation>{obj('cat')}</annotation>"
                                  for i in range(5)})
    (folder / "JPEGImages" / "3.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    ds = VOCClassification(tmp_path, transform=T.Compose([T.Resize((4, 4)), T.ToArray()]))
    with pytest.raises(ValueError, match=r"cannot decode .*3\.jpg"):
        ds[3]
    with pytest.raises(RuntimeError, match="loading sample 3"):
        list(DataLoader(ds, 2))
    loader = DataLoader(ds, 2, skip_errors=True)
    with pytest.warns(UserWarning, match="skipped 1 samples"):
        assert sum(len(x) for x, _ in loader) == 4


def test_a_small_cnn_learns_the_synthetic_voc_shapes(tmp_path):
    """The whole stack end to end: synthetic VOC -> loader -> CNN -> BCE -> Adam -> mAP."""
    import minigrad as mg
    import minigrad.nn as nn
    from minigrad.metrics import mean_average_precision

    make_synthetic_voc(tmp_path, n_images=320, image_size=32, seed=0)
    pipeline = T.Compose([T.ToArray(), T.Normalize([0.5] * 3, [0.25] * 3)])
    train = VOCClassification(tmp_path, image_set="train", transform=pipeline)
    val = VOCClassification(tmp_path, image_set="val", transform=pipeline)
    mg.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, 20))
    optimizer = mg.optim.Adam(model.parameters(), lr=3e-3)

    def val_map():
        model.eval()
        with mg.no_grad():
            batches = list(DataLoader(val, 64))
            scores = np.concatenate([model(mg.tensor(x)).numpy() for x, _ in batches])
        model.train()
        return mean_average_precision(scores, np.concatenate([y for _, y in batches]))

    before = val_map()
    for epoch in range(9):
        for x, y in DataLoader(train, 16, shuffle=True, seed=epoch):
            loss = nn.functional.binary_cross_entropy_with_logits(model(mg.tensor(x)),
                                                                  mg.tensor(y))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    after = val_map()
    assert after > 0.24 and after > 1.5 * before, (before, after)
