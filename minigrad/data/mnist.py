"""MNIST and Fashion-MNIST, read from their IDX files (gzipped or not) with NumPy.

An IDX file is a big-endian header, a magic number 0x0000 TT DD (TT: the element type, 0x08
for unsigned bytes; DD: the number of dimensions), then one 4-byte size per dimension, then
the elements. Images are (N, 28, 28) uint8, labels (N,) uint8.

Where the files are looked for, in order: `root` if given; else ~/.cache/minigrad/<name>, then
the folder a system package puts them in (Debian's `dataset-fashion-mnist`:
/usr/share/datasets/fashion-mnist); and if none has them and download=True, they are
downloaded from the dataset's mirrors into root (or the cache), each checked against its MD5.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from minigrad.data.dataset import Dataset

_IDX_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path) -> np.ndarray:
    """The array in an IDX file (.gz or plain), with clear errors for a bad or short file."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError, zlib.error) as error:  # gzip's errors for a damaged or cut file
        raise ValueError(f"read_idx: cannot read {path}: {error}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _IDX_UBYTE:
        hint = ("; it is gzip-compressed: name it with .gz" if data[:2] == _GZIP_MAGIC else "")
        raise ValueError(f"read_idx: {path} is not an IDX file of unsigned bytes (magic number "
                         f"{data[:4].hex() or 'missing'}, expected 000008xx){hint}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"read_idx: {path} is truncated inside its header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(f"read_idx: {path} holds {len(data)} bytes, but its header promises "
                         f"shape {shape}, {expected} bytes: the file is truncated or damaged")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, destination: Path, md5: str) -> None:
    """Fetch `url` (http(s) or file) to `destination`, atomically, if its MD5 is `md5`."""
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=destination.parent, suffix=".part")
    except OSError as error:
        raise OSError(error.errno, f"download: cannot write into {destination.parent}: "
                      f"{error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as file, urllib.request.urlopen(url, timeout=60) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                try:
                    file.write(chunk)
                except OSError as error:  # a full disk: name the file, not only the errno
                    raise OSError(error.errno, f"download: cannot write {destination} (via "
                                  f"{temporary}): {error.strerror}") from None
        actual = _md5(Path(temporary))
        if actual != md5:
            raise ValueError(f"download: {url} has MD5 {actual}, expected {md5}")
        os.replace(temporary, destination)
    finally:
        Path(temporary).unlink(missing_ok=True)


class MNIST(Dataset):
    """Handwritten digits: ds[i] is (a 28x28 uint8 image array, an int label), unless
    `transform` / `target_transform` make something else of them. `data` (N, 28, 28) and
    `targets` (N,) hold everything, for vectorised use."""

    name = "mnist"
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
               "7 - seven", "8 - eight", "9 - nine"]
    mirrors = ["https://ossci-datasets.s3.amazonaws.com/mnist/",
               "http://yann.lecun.com/exdb/mnist/"]
    resources = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    system_folders = ["/usr/share/datasets/mnist"]

    def __init__(self, root=None, train: bool = True, transform=None, target_transform=None,
                 download: bool = True):
        self.train, self.transform, self.target_transform = train, transform, target_transform
        prefix = "train" if train else "t10k"
        wanted = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
        folder = self._find(root, wanted, download)
        image_file, label_file = (self._file(folder, stem) for stem in wanted)
        images, labels = read_idx(image_file), read_idx(label_file)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{type(self).__name__}: {folder} holds images of shape "
                             f"{images.shape} and labels of shape {labels.shape}, which do "
                             "not match")
        if len(labels) and labels.max() >= len(self.classes):
            raise ValueError(f"{type(self).__name__}: {label_file} holds the label "
                             f"{labels.max()}, but there are {len(self.classes)} classes "
                             f"(0..{len(self.classes) - 1})")
        self.root = folder
        self.data = images
        self.targets = labels.astype(np.int64)

    @staticmethod
    def _file(folder: Path, stem: str) -> Path | None:
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                return candidate
        return None

    def _candidates(self, root) -> list[Path]:
        if root is not None:
            return [Path(root).expanduser()]
        cache = Path(os.environ.get("MINIGRAD_CACHE", Path.home() / ".cache" / "minigrad"))
        return [cache / self.name] + [Path(p) for p in self.system_folders]

    def _find(self, root, stems: list[str], download: bool) -> Path:
        candidates = self._candidates(root)
        for folder in candidates:
            if all(self._file(folder, stem) for stem in stems):
                return folder
        target = candidates[0]
        if download:
            errors = []
            for stem in stems:
                if self._file(target, stem) is None:
                    errors += self._download(f"{stem}.gz", target)
            if all(self._file(target, stem) for stem in stems):
                return target
        else:
            errors = ["download=False"]
        looked = ", ".join(str(c) for c in candidates)
        raise FileNotFoundError(
            f"{type(self).__name__}: the files {', '.join(s + '[.gz]' for s in stems)} were not "
            f"found in {looked}, and downloading failed ({'; '.join(errors)}). Put the four "
            f"IDX .gz files in one of these folders"
            + (" (on Debian: apt-get install dataset-fashion-mnist)"
               if self.name == "fashion-mnist" else "") + " or pass root=..."
        )

    def _download(self, filename: str, folder: Path) -> list[str]:
        """Try each mirror in turn; the list of what went wrong (empty on success)."""
        errors = []
        for mirror in self.mirrors:
            try:
                download(mirror + filename, folder / filename, self.resources[filename])
                return []
            except Exception as error:  # network, HTTP and checksum errors: try the next
                errors.append(f"{mirror}{filename}: {error}")
        return errors

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        image, label = self.data[index], int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}({split}, {len(self)} images, root={str(self.root)!r})"


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: 28x28 grey images of 10 kinds of clothing, in MNIST's format."""

    name = "fashion-mnist"
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    system_folders = ["/usr/share/datasets/fashion-mnist"]
