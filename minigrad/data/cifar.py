"""CIFAR-10 and CIFAR-100, read from their "python version" files without running any code
from them; and a synthetic tree in the same layout, for tests and examples.

The layout (as torchvision, which looks for it under `root`):
    cifar-10-batches-py/data_batch_1 ... data_batch_5   10,000 training images each
    cifar-10-batches-py/test_batch                      10,000 test images
    cifar-10-batches-py/batches.meta                    the 10 class names
    cifar-100-python/train, test, meta                  50,000 and 10,000 images, 100 classes
download=True fetches cifar-10-python.tar.gz (or cifar-100-python.tar.gz) into root and
unpacks it there.

Each file is a Python pickle, written by Python 2, of a dict:
    b"data"       a (N, 3072) uint8 NumPy array. Row i is image i, one colour plane after
                  the other: 1024 red values (32 rows of 32, the top row first), then 1024
                  green, then 1024 blue. So data.reshape(N, 3, 32, 32) is (image, channel,
                  row, column), and moving the channel axis last gives the (N, 32, 32, 3)
                  "height, width, channel" images that Pillow, and torchvision, use.
    b"labels"     N ints in 0..9 (CIFAR-100: b"fine_labels" in 0..99, and b"coarse_labels"
                  in 0..19 for the 20 groups of 5 classes)
    b"filenames", b"batch_label"   names, which training does not need
The meta file is a dict too: b"label_names" (CIFAR-100: b"fine_label_names" and
b"coarse_label_names"), a list of byte strings. The keys are bytes because Python 2's `str`
was bytes: we unpickle with encoding="bytes", which keeps them so (torchvision uses
"latin1", which makes them str); str keys, as a Python 3 writer may use, are accepted too.

Why not plain `pickle.load`? A pickle is a little program for a stack machine. Its opcodes
can name any importable function (GLOBAL "os system") and call it with arguments built on
the stack (REDUCE), so loading a pickle runs whatever its author wrote. To rebuild objects,
the unpickler asks its `find_class(module, name)` for every function or class the file names,
before calling any of them. `_BatchUnpickler.find_class` hands out only what a NumPy array
needs to be rebuilt (numpy's `_reconstruct`, `ndarray` and `dtype`), plus a latin-1 encoder
that Python 3 protocol-2 pickles use for bytes, and refuses anything else: the error names
the file, and nothing from it has run.

MD5s: torchvision checks every file's MD5 each time a dataset is made. Here that happens
only with download=True (which fetches the archive when a file is missing or differs from
the original) or check_integrity=True, so that a tree written by make_synthetic_cifar, whose
files are of course not the originals, loads without it.
"""

from __future__ import annotations

import functools
import os
import pickle
import struct
from pathlib import Path

import numpy as np

from minigrad.data.dataset import Dataset
from minigrad.data.download import extract_tar, fetch, md5_of

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
_ROW = 3 * 32 * 32  # values in a row of b"data": three 32x32 colour planes


# ---------------------------------------------------------------------------------------------
# reading a batch file without running anything from it

class UnsafePickleError(ValueError):
    """A pickle asked for a function or class that a CIFAR file has no need of."""


def _numpy_multiarray():
    """numpy's multiarray module: numpy._core.multiarray from NumPy 2 on, numpy.core before.
    (The real files name numpy.core; NumPy 2 writes numpy._core; both mean this one.)"""
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1 before 1.26
        from numpy.core import multiarray
    return multiarray


def _allowed_globals() -> dict[tuple[str, str], object]:
    multiarray = _numpy_multiarray()
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[module, "_reconstruct"] = multiarray._reconstruct
        allowed[module, "ndarray"] = np.ndarray
        allowed[module, "dtype"] = np.dtype
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()


def _latin1_encode(owner: str, path: Path, text, encoding="latin1", errors="strict") -> bytes:
    """What `_codecs.encode` does for the bytes of a Python 3 protocol-2 pickle (protocol 2
    has no opcode for bytes, so `pickle` writes b"..." as encode("...", "latin1")); any other
    use of it is refused."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise UnsafePickleError(f"{owner}: {path} calls _codecs.encode with {encoding!r}, where "
                                "a CIFAR file only ever has latin1 text; the file is refused")
    return text.encode("latin1")


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild dicts, lists, numbers, strings and NumPy arrays, and
    nothing else."""

    def __init__(self, file, path: Path, owner: str):
        super().__init__(file, encoding="bytes")
        self.path, self.owner = path, owner

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return functools.partial(_latin1_encode, self.owner, self.path)
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise UnsafePickleError(
                f"{self.owner}: {self.path} asks for {module}.{name}, but a CIFAR file holds "
                "only a dict of NumPy arrays, lists, numbers and strings; the file is refused "
                "and nothing in it was run (it is damaged, or not a CIFAR file)")
        return found


# what a damaged pickle makes the unpickler raise (an opcode's bytes cut off, a wrong type
# where an array's state should be, ...)
_DAMAGED = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OverflowError, MemoryError, struct.error)


def _text(value):
    """bytes as str (latin1, as torchvision decodes them); anything else as it is."""
    return value.decode("latin1") if isinstance(value, bytes) else value


def read_pickle(path, owner: str = "CIFAR") -> dict:
    """The dict in the CIFAR file at `path`, its keys as str, rebuilt by _BatchUnpickler;
    ValueError (naming the file) for a refused, truncated or damaged one."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            content = _BatchUnpickler(file, path, owner).load()
            rest = file.read(1)
    except UnsafePickleError:
        raise
    except OSError as error:
        raise ValueError(f"{owner}: cannot read {path}: {error.strerror or error}") from None
    except _DAMAGED as error:
        if isinstance(error, EOFError) or "truncated" in str(error):
            raise ValueError(f"{owner}: {path} ends early: the file is truncated (an "
                             "interrupted download or copy?)") from None
        raise ValueError(f"{owner}: {path} is damaged, or not a CIFAR file: "
                         f"{type(error).__name__}: {error}") from None
    if rest:
        raise ValueError(f"{owner}: {path} goes on after the end of its pickle: the file is "
                         "damaged")
    if not isinstance(content, dict):
        raise ValueError(f"{owner}: {path} holds a {type(content).__name__}, where a CIFAR file "
                         "holds a dict")
    return {_text(key): value for key, value in content.items()}


def _entry(content: dict, key: str, path: Path, owner: str):
    if key not in content:
        raise ValueError(f"{owner}: {path} has no {key!r} entry (its entries: "
                         f"{', '.join(map(str, content))})")
    return content[key]


def _images(content: dict, path: Path, owner: str) -> np.ndarray:
    """The (N, 3072) uint8 rows of b"data", checked."""
    data = _entry(content, "data", path, owner)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == _ROW):
        got = (f"an array of shape {data.shape} and dtype {data.dtype}"
               if isinstance(data, np.ndarray) else f"a {type(data).__name__}")
        raise ValueError(f"{owner}: the 'data' of {path} is {got}; a CIFAR file holds an "
                         f"(N, {_ROW}) uint8 array (N images of 3 x 32 x 32 values)")
    return data


def _labels(content: dict, key: str, path: Path, owner: str, n_images: int,
            n_classes: int) -> list[int]:
    """The labels under `key`, checked: ints, one per image, each naming a class."""
    labels = np.asarray(_entry(content, key, path, owner))
    if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
        raise ValueError(f"{owner}: the {key!r} of {path} is not a list of ints (an array of "
                         f"shape {labels.shape} and dtype {labels.dtype})")
    if len(labels) != n_images:
        raise ValueError(f"{owner}: {path} holds {n_images} images but {len(labels)} "
                         f"{key!r}; there must be one label per image")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        bad = labels.min() if labels.min() < 0 else labels.max()
        raise ValueError(f"{owner}: {path} holds the label {bad}, but the meta file names "
                         f"{n_classes} classes (0..{n_classes - 1})")
    return labels.tolist()


def _class_names(path: Path, key: str, owner: str) -> list[str]:
    names = _entry(read_pickle(path, owner), key, path, owner)
    if not (isinstance(names, list) and names and all(isinstance(n, (bytes, str))
                                                      for n in names)):
        raise ValueError(f"{owner}: the {key!r} of {path} is not a list of class names")
    return [_text(name) for name in names]


def _default_root() -> Path:
    """Where root=None points, as for MNIST: $MINIGRAD_CACHE, else ~/.cache/minigrad."""
    return Path(os.environ.get("MINIGRAD_CACHE", Path.home() / ".cache" / "minigrad"))


# ---------------------------------------------------------------------------------------------
# the datasets

class CIFAR10(Dataset):
    """CIFAR-10, as torchvision's: root/cifar-10-batches-py holds the files (see the module's
    docstring); ds[i] is (image, target), image a (32, 32, 3) uint8 array (height, width,
    RGB: an array, as this package's MNIST gives; `PIL.Image.fromarray(image)` makes it the
    Pillow image torchvision's CIFAR10 gives) and target an int, unless `transform` /
    `target_transform` make something else of them. Note that the geometric transforms of
    minigrad.data.transforms read an array as (C, H, W): put ToArray first, or make a Pillow
    image of it first.

    `data` (N, 32, 32, 3) uint8 holds every image, `targets` the N labels (a list of ints),
    `classes` the names from the meta file, `class_to_idx` name -> label.

    download=True: unless every file is there with its original MD5, cifar-10-python.tar.gz
    is fetched into root (a broken transfer resumes; the archive's MD5 is checked) and
    unpacked, and then every file's MD5 must be the original's. check_integrity=True: only
    that check, with nothing downloaded. Neither is done by default, so that a tree written
    by make_synthetic_cifar (whose MD5s cannot be the originals) loads. root=None: the cache
    folder, as for MNIST ($MINIGRAD_CACHE, else ~/.cache/minigrad).
    """

    name = "CIFAR-10"
    base_folder = "cifar-10-batches-py"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    filename = "cifar-10-python.tar.gz"
    archive_size = "163 MiB"
    tgz_md5 = "c58f30108f718f92721af3b95e74349a"
    train_list = [
        ["data_batch_1", "c99cafc152244af753f735de768cd75f"],
        ["data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"],
        ["data_batch_3", "54ebc095f3ab1f0389bbae665268c751"],
        ["data_batch_4", "634d18415352ddfa80567beed471001a"],
        ["data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"],
    ]
    test_list = [["test_batch", "40351d587109b95175f43aff81a1287e"]]
    meta = {"filename": "batches.meta", "key": "label_names",
            "md5": "5ff9c542aee3614f3951f8cda6e48888"}
    label_key = "labels"

    def __init__(self, root=None, train: bool = True, transform=None, target_transform=None,
                 download: bool = False, check_integrity: bool = False):
        self.root = _default_root() if root is None else Path(root).expanduser()
        self.train, self.transform, self.target_transform = train, transform, target_transform
        if download:
            self.download()
        files = [name for name, _ in (self.train_list if train else self.test_list)]
        self._require(files + [self.meta["filename"]])
        if check_integrity and not download:  # (download has just checked them)
            self._verify()
        owner = type(self).__name__
        self.classes = _class_names(self.folder / self.meta["filename"], self.meta["key"], owner)
        self.class_to_idx = {name: index for index, name in enumerate(self.classes)}
        self.data, self.targets = self._load(files)

    @property
    def folder(self) -> Path:
        return self.root / self.base_folder

    def _load(self, files: list[str]) -> tuple[np.ndarray, list[int]]:
        """Every image of `files`, in order, as (N, 32, 32, 3), and their labels."""
        owner, rows, targets = type(self).__name__, [], []
        for name in files:
            path = self.folder / name
            content = read_pickle(path, owner)
            data = _images(content, path, owner)
            targets += _labels(content, self.label_key, path, owner, len(data), len(self.classes))
            rows.append(data)
        images = np.concatenate(rows).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(images), targets

    def _require(self, files: list[str]) -> None:
        """FileNotFoundError, saying how to get them, unless all `files` are in the folder."""
        owner = type(self).__name__
        how = (f"pass download=True to fetch {self.url} ({self.archive_size}) into {self.root}, "
               f"or unpack {self.filename} there yourself")
        if not self.folder.is_dir():
            inside = (f" ({self.root} looks like that folder itself: root is the folder that "
                      "holds it)" if (self.root / files[0]).is_file() else "")
            raise FileNotFoundError(f"{owner}: no folder {self.folder}{inside}; {how}")
        missing = [name for name in files if not (self.folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{owner}: {self.folder} has no {', '.join(missing)} (the "
                                    f"{self.name} files are {', '.join(self._all_files())}); "
                                    f"{how}")

    def _all_files(self) -> list[str]:
        return [name for name, _ in self.train_list + self.test_list] + [self.meta["filename"]]

    def _integrity_problems(self) -> list[str]:
        """What differs from the original files: each missing file, and each MD5 that
        differs (the check torchvision makes)."""
        expected = self.train_list + self.test_list + [[self.meta["filename"], self.meta["md5"]]]
        problems = []
        for name, md5 in expected:
            path = self.folder / name
            if not path.is_file():
                problems.append(f"{name} is missing")
            elif (actual := md5_of(path)) != md5:
                problems.append(f"{name} has MD5 {actual}, the original {md5}")
        return problems

    def _check_integrity(self) -> bool:
        """True when every file is there with its original MD5 (torchvision's name)."""
        return not self._integrity_problems()

    def _verify(self) -> None:
        problems = self._integrity_problems()
        if problems:
            raise RuntimeError(
                f"{type(self).__name__}: {self.folder} does not hold the original {self.name} "
                f"files: {'; '.join(problems)}. The files are damaged or not the originals: "
                "download=True fetches them again (a tree from make_synthetic_cifar never "
                "passes this check: load it without check_integrity)")

    def download(self) -> None:
        """Nothing when every file is there with its original MD5; else fetch the archive into
        root (resuming a broken transfer, checking its MD5), unpack it, and check the files."""
        if self._check_integrity():
            return
        archive = fetch([self.url], self.root / self.filename, self.tgz_md5)
        extract_tar(archive, self.root)
        self._verify()

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        image, target = self.data[index], self.targets[index]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}({split}, {len(self)} images, root={str(self.root)!r})"


class CIFAR100(CIFAR10):
    """CIFAR-100, as torchvision's: CIFAR10's interface on root/cifar-100-python/{train, test,
    meta}; the targets are the 100 "fine" labels, `classes` the fine class names."""

    name = "CIFAR-100"
    base_folder = "cifar-100-python"
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    filename = "cifar-100-python.tar.gz"
    archive_size = "161 MiB"
    tgz_md5 = "eb9058c3a382ffc7106e4002c42a8d85"
    train_list = [["train", "16019d7e3df5f24257cddd939b257f8d"]]
    test_list = [["test", "f0ef6b0ae62326f3e7ffdfab6717acfc"]]
    meta = {"filename": "meta", "key": "fine_label_names",
            "md5": "7973b15100ade9c7d40fb424638fde48"}
    label_key = "fine_labels"


# ---------------------------------------------------------------------------------------------
# a synthetic tree in the real layout

# class c is drawn in colour c % 10 with pattern (c // 10 + c) % 10: ten classes differ in
# both, and a hundred are a hundred distinct (colour, pattern) pairs
_COLOURS = np.array([(230, 50, 50), (50, 190, 70), (50, 90, 230), (235, 205, 40),
                     (200, 60, 210), (40, 200, 210), (245, 140, 30), (150, 100, 60),
                     (240, 240, 240), (110, 110, 110)], dtype=np.float64)
_PATTERNS = (  # (name, the pixels (y, x) it covers); y, x are shifted a little per image
    ("horizontal stripes", lambda y, x: (y // 4) % 2 == 0),
    ("vertical stripes", lambda y, x: (x // 4) % 2 == 0),
    ("checkerboard", lambda y, x: (y // 4 + x // 4) % 2 == 0),
    ("disc", lambda y, x: (y - 15.5) ** 2 + (x - 15.5) ** 2 < 81),
    ("diagonal stripes", lambda y, x: ((y + x) // 4) % 2 == 0),
    ("ring", lambda y, x: np.abs(np.hypot(y - 15.5, x - 15.5) - 8.5) < 2.5),
    ("cross", lambda y, x: (np.abs(y - 15.5) < 4) | (np.abs(x - 15.5) < 4)),
    ("frame", lambda y, x: np.abs(np.maximum(np.abs(y - 15.5), np.abs(x - 15.5)) - 10) < 2),
    ("anti-diagonal stripes", lambda y, x: ((y - x) // 4) % 2 == 0),
    ("dots", lambda y, x: (y % 8 < 3) & (x % 8 < 3)),
)


def synthetic_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 32, 32, 3) uint8 images: each label's pattern in its colour on a darker ground of
    the same colour, shifted by up to 3 pixels, with random brightness and noise."""
    n = len(labels)
    shift = rng.integers(-3, 4, size=(n, 2))
    rows, columns = np.mgrid[0:32, 0:32]
    y = rows[None] + shift[:, 0, None, None]  # (N, 32, 32): each image's own coordinates
    x = columns[None] + shift[:, 1, None, None]
    pattern = (labels // 10 + labels) % 10
    covered = np.zeros((n, 32, 32), dtype=bool)
    for index, (_, draw) in enumerate(_PATTERNS):
        chosen = pattern == index
        covered[chosen] = draw(y[chosen], x[chosen])
    colour = _COLOURS[labels % 10][:, None, None, :]
    pixels = np.where(covered[..., None], colour, 0.25 * colour + 30)
    pixels = pixels * rng.uniform(0.8, 1.2, (n, 1, 1, 1)) + rng.normal(0, 16, pixels.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _balanced_labels(n: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    """n labels, each class as often as the others (give or take one), in random order."""
    return rng.permutation(np.arange(n) % classes)


def _batch(batch_label: str, images: np.ndarray, labels: dict[bytes, np.ndarray],
           first: int) -> dict:
    """A batch dict as the real files hold it: bytes keys, the images as (N, 3072) rows
    (red plane, green plane, blue plane), labels as lists of ints."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), _ROW)
    names = [f"synthetic_{first + i:05d}.png".encode() for i in range(len(images))]
    return {b"batch_label": batch_label.encode(), **{key: [int(v) for v in value]
                                                     for key, value in labels.items()},
            b"data": np.ascontiguousarray(rows), b"filenames": names}


def _dump(path: Path, content: dict) -> None:
    with open(path, "wb") as file:
        pickle.dump(content, file, protocol=2)


def _write_cifar10(folder: Path, train: tuple, test: tuple, classes: int) -> None:
    (images, labels), (test_images, test_labels) = train, test
    for number, part in enumerate(np.array_split(np.arange(len(labels)), 5), start=1):
        _dump(folder / f"data_batch_{number}", _batch(
            f"training batch {number} of 5", images[part], {b"labels": labels[part]},
            int(part[0])))
    _dump(folder / "test_batch", _batch("testing batch 1 of 1", test_images,
                                        {b"labels": test_labels}, 0))
    _dump(folder / "batches.meta", {
        b"num_cases_per_batch": -(-len(labels) // 5),
        b"label_names": [name.encode() for name in CIFAR10_CLASSES[:classes]], b"num_vis": _ROW})


def _write_cifar100(folder: Path, train: tuple, test: tuple, classes: int) -> None:
    """As CIFAR-100: one train and one test file; the coarse label of class c is c // 5."""
    for name, (images, labels) in (("train", train), ("test", test)):
        _dump(folder / name, _batch(f"{'training' if name == 'train' else 'testing'} batch 1 "
                                    "of 1", images, {b"fine_labels": labels,
                                                     b"coarse_labels": labels // 5}, 0))
    _dump(folder / "meta", {
        b"fine_label_names": [f"class_{c:02d}".encode() for c in range(classes)],
        b"coarse_label_names": [f"superclass_{g:02d}".encode()
                                for g in range(-(-classes // 5))]})


def make_synthetic_cifar(root, n_train: int = 500, n_test: int = 100, seed: int = 0,
                         classes: int = 10, cifar100: bool = False) -> Path:
    """Write a small tree in CIFAR-10's layout under root/cifar-10-batches-py (cifar100=True:
    CIFAR-100's, root/cifar-100-python) and return root, to pass to CIFAR10 (CIFAR100).

    The files are what the real ones are, smaller: dicts pickled with protocol 2 whose
    b"data" is a uint8 NumPy array and whose labels are lists of ints; the n_train training
    images are shared out over data_batch_1..5 in order. Images of class c show pattern
    (c // 10 + c) % 10 in colour c % 10 (see _PATTERNS, _COLOURS) with noise, which a small
    network learns to tell apart. The CIFAR-10 class names are the real ones (the first
    `classes`); CIFAR-100's are class_00, class_01, ... An OS error while writing (a full
    disk, a read-only folder) names the tree's folder.
    """
    most = 100 if cifar100 else 10
    files = 1 if cifar100 else 5
    if not 2 <= classes <= most:
        raise ValueError(f"make_synthetic_cifar: classes must be 2..{most}, got {classes}")
    if n_train < files or n_test < 1:
        raise ValueError(f"make_synthetic_cifar: need at least {files} training image(s) (one "
                         f"per file) and 1 test image, got n_train={n_train}, n_test={n_test}")
    folder = Path(root) / (CIFAR100 if cifar100 else CIFAR10).base_folder
    try:
        _write_synthetic_cifar(folder, n_train, n_test, seed, classes, cifar100)
    except OSError as error:
        raise OSError(error.errno, f"make_synthetic_cifar: cannot write the tree {folder}: "
                      f"{error.strerror or error}"
                      + (f" ({error.filename})" if error.filename else "")) from None
    return Path(root)


def _write_synthetic_cifar(folder: Path, n_train: int, n_test: int, seed: int, classes: int,
                           cifar100: bool) -> None:
    rng = np.random.default_rng(seed)
    splits = []
    for n in (n_train, n_test):
        labels = _balanced_labels(n, classes, rng)
        splits.append((synthetic_images(labels, rng), labels))
    folder.mkdir(parents=True, exist_ok=True)
    (_write_cifar100 if cifar100 else _write_cifar10)(folder, *splits, classes)
