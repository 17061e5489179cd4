"""Checkpoints without pickle: `mg.save(obj, path)` and `mg.load(path)`.

One `.npz` file: every array of `obj` as a member `a0`, `a1`, ..., and a JSON index (member
`__index__`, stored as bytes) that describes the nesting of dicts, lists, tuples, numbers,
strings and where each array goes. A file can hold only data: loading one never runs code.

Saving writes under a temporary name in the same folder, fsyncs it, renames it over the target
and fsyncs the folder, so a crash, a kill or a full disk mid-save leaves the old checkpoint
intact; the temporary of a killed save is removed by the next save to that path. Like
`open(path, "wb")` it writes through a symbolic link and keeps an existing file's
permissions; an OS error names the path given.

Loading trusts nothing in the file: it reads the index first (bounded in size and depth),
then only the members the index names, and checks each member's header (dtype, shape, and
the size they declare against the bytes the member holds) before reading its data. Every
malformed file raises one CheckpointError naming the file and what is wrong.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import secrets
import stat
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from minigrad import backend
from minigrad.tensor import Tensor

FORMAT = "minigrad-checkpoint"
VERSION = 1
MAX_INDEX_BYTES = 64 * 2**20  # a checkpoint's JSON index, at most
MAX_DEPTH = 100  # nesting of the index (a training checkpoint is about 6 deep)


class CheckpointError(ValueError):
    """A file that is not a readable minigrad checkpoint (or weights file)."""


# ---------------------------------------------------------------------------------------------
# saving


def save(obj, path) -> None:
    """Save nested dicts/lists/tuples of arrays, Tensors, numbers, strings and None."""
    arrays: dict[str, np.ndarray] = {}
    index = {"format": FORMAT, "version": VERSION, "root": _encode(obj, arrays, "obj")}
    members = dict(arrays, __index__=np.frombuffer(json.dumps(index).encode(), dtype=np.uint8))
    atomic_write(path, lambda file: np.savez(file, **members))


def atomic_write(path, write: Callable, who: str = "save") -> None:
    """Write a file through `write(binary file)` so that `path` holds either its old content
    or all of the new: a temporary beside it, fsynced, renamed over it, the folder fsynced.

    As `open(path, "wb")` would, it writes through a symbolic link (to the file the link
    names; the link stays) and keeps an existing file's permissions (a private 0600
    checkpoint stays private); a new file gets the mode the umask gives. Every OS error (a
    full disk, a read-only folder, a missing one) is raised as the same kind of OSError,
    naming `path` and saying that the old file is intact; `error.path` is `path`."""
    given = Path(path)
    target = given
    if given.is_symlink():
        try:
            target = Path(os.path.realpath(given, strict=True))
        except FileNotFoundError:  # a dangling link: the file it names is made, as by open()
            target = Path(os.path.realpath(given))
        except OSError as error:  # a loop of links
            raise _os_error(error, who, given, "nothing was written") from None
    folder = target.parent
    if not folder.is_dir():
        raise _os_error(FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)), who, given,
                        f"its folder {folder} does not exist")
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except OSError:
        mode = None  # a new file
    temporary = folder / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        _remove_stale_temporaries(target)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask
    except OSError as error:
        raise _os_error(error, who, given, "nothing was written") from None
    try:
        with os.fdopen(descriptor, "wb") as file:
            if mode is not None:
                os.fchmod(file.fileno(), mode)
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _os_error(error, who, given, "the file there before, if any, is intact"
                            ) from None
        raise
    _fsync_folder(folder)


def writable_folder(path, who: str) -> Path:
    """`path` as a folder that files can be written into: made (with its parents) if missing,
    then tried with a temporary file. Else an OSError naming `who` and `path` (a file is in
    the way, a read-only file system, no permission). (A disk that fills later is caught by
    atomic_write, which names the file then.)"""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{who} {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".minigrad-write-test-"):
            pass
    except OSError as error:
        raise OSError(error.errno, f"{who} {folder}: cannot write there ({error.strerror})"
                      ) from None
    return folder


def write_failure(error: OSError) -> str:
    """Why a write failed, in words a user acts on (a full disk says so)."""
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        return "no space left on the device (the disk is full)"
    if error.errno == errno.EROFS:
        return "the file system is read-only"
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied ({reason})"
    return reason


def _os_error(error: OSError, who: str, path: Path, consequence: str) -> OSError:
    """`error` again (the same errno, so the same OSError subclass) with a message that names
    the file being written and what became of it."""
    named = OSError(error.errno, f"{who}: cannot write {path}: {write_failure(error)}; "
                    f"{consequence}")
    named.path = path
    return named


def atomic_write_text(path, text: str, who: str = "save") -> None:
    atomic_write(path, lambda file: file.write(text.encode()), who)


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporaries that saves to `path` left when their process was killed (their
    name holds the saving process's id; a live process's temporary is left alone)."""
    ours = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{8}}\.tmp")
    for leftover in path.parent.glob(f"{_glob_escape('.' + path.name)}.*.tmp"):
        match = ours.fullmatch(leftover.name)  # (not a longer name's: .ckpt.npz.* for ckpt)
        if match is None:
            continue
        owner = int(match.group(1))
        if owner != os.getpid() and not _alive(owner):
            leftover.unlink(missing_ok=True)


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # someone else's process, or cannot tell: keep its file
    return True


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# ---------------------------------------------------------------------------------------------
# loading


def load(path):
    """Load what `save` wrote. Arrays come back as NumPy arrays on the CPU, Tensors as CPU
    Tensors; move them with `Module.to` or `Tensor.to`. A truncated, damaged, hostile or
    foreign file raises CheckpointError naming the file; nothing is returned half-loaded."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load: no such checkpoint file: {path}")
    with _open_archive(path, "load") as archive:
        index = _read_index(archive, path)
        reader = _MemberReader(archive, path, "load")
        return _decode(index["root"], reader, 0)


def _open_archive(path: Path, who: str) -> zipfile.ZipFile:
    try:
        open(path, "rb").close()
    except OSError as error:  # not a damaged file (as far as we know): say why it is unreadable
        raise OSError(error.errno, f"{who}: cannot read {path}: {error.strerror}") from None
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise CheckpointError(f"{who}: {path} is not a readable .npz file: it is not a zip "
                              f"archive or is truncated ({type(error).__name__}: {error})"
                              ) from None


def _read_index(archive: zipfile.ZipFile, path: Path) -> dict:
    try:
        info = archive.getinfo("__index__.npy")
    except KeyError:
        raise CheckpointError(f"load: {path} is an .npz file but not a minigrad checkpoint "
                              "(it has no __index__)") from None
    if info.file_size > MAX_INDEX_BYTES:
        raise CheckpointError(f"load: the index of {path} declares {info.file_size} bytes, "
                              f"more than a checkpoint's index may hold ({MAX_INDEX_BYTES})")
    raw = _MemberReader(archive, path, "load").read("__index__")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"load: the index of {path} is {raw.dtype} of shape {raw.shape}, "
                              "not the bytes of a JSON text")
    try:
        index = json.loads(raw.tobytes().decode())
    except RecursionError:
        raise CheckpointError(f"load: the index of {path} is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"load: the index of {path} is not JSON ({error})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT or "root" not in index:
        raise CheckpointError(f"load: {path} is an .npz file but not a minigrad checkpoint")
    if index.get("version") != VERSION:
        raise CheckpointError(f"load: {path} has checkpoint version {index.get('version')!r}; "
                              f"this minigrad reads version {VERSION}")
    return index


MAX_DEFLATE_RATIO = 1100  # deflate expands a byte into at most ~1032: a larger claim is a lie
NUMERIC_KINDS = "biufc"  # bool, integers, floats, complex: what a checkpoint's arrays hold


class _MemberReader:
    """Reads single members of an .npz archive, each at most once, checking what the zip's
    directory claims against the file's real size and each .npy header against the claimed
    bytes before reading (or allocating for) any data."""

    def __init__(self, archive: zipfile.ZipFile, path: Path, who: str):
        self.archive, self.path, self.who = archive, path, who
        self.size = path.stat().st_size
        self.read_already: set[str] = set()

    def names(self) -> list[str]:
        return [n[:-4] for n in self.archive.namelist() if n.endswith(".npy")]

    def fail(self, message: str) -> CheckpointError:
        return CheckpointError(f"{self.who}: {self.path}: {message}")

    def read(self, name: str) -> np.ndarray:
        if name in self.read_already:  # (save never names a member twice)
            raise self.fail(f"member {name!r} is named twice by the index")
        self.read_already.add(name)
        try:
            info = self.archive.getinfo(f"{name}.npy")
        except KeyError:
            raise self.fail(f"member {name!r} is named but the file does not hold it") from None
        self._check_claims(info, name)
        try:
            with self.archive.open(info) as member:
                return self._read_member(member, info, name)
        except CheckpointError:
            raise
        except MemoryError:
            raise self.fail(f"member {name!r} ({info.file_size} bytes) does not fit in the "
                            "memory that is free") from None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
                RuntimeError) as error:  # RuntimeError: an encrypted member
            raise self.fail(f"member {name!r} cannot be read ({type(error).__name__}: "
                            f"{error})") from None

    def _check_claims(self, info: zipfile.ZipInfo, name: str) -> None:
        """What the zip's directory says of a member, against the bytes the file really has."""
        if info.header_offset + info.compress_size > self.size:
            raise self.fail(f"member {name!r} claims {info.compress_size} bytes from offset "
                            f"{info.header_offset}, beyond the file's {self.size}")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise self.fail(f"member {name!r} is stored uncompressed but claims {info.file_size}"
                            f" bytes in {info.compress_size}")
        if info.file_size > MAX_DEFLATE_RATIO * max(info.compress_size, 1):
            raise self.fail(f"member {name!r} claims to expand {info.compress_size} bytes into "
                            f"{info.file_size}, more than compression can")

    def _read_member(self, member, info: zipfile.ZipInfo, name: str) -> np.ndarray:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise self.fail(f"member {name!r} is .npy version {version}, which minigrad does "
                            "not read")
        if dtype.hasobject:
            raise self.fail(f"member {name!r} holds Python objects ({dtype}), which could only "
                            "be read by unpickling them; minigrad never does (allow_pickle is "
                            "off)")
        if dtype.kind not in NUMERIC_KINDS or dtype.itemsize == 0:
            raise self.fail(f"member {name!r} holds {dtype}, not numbers")
        declared = math.prod(shape) * dtype.itemsize
        held = info.file_size - member.tell()
        if declared != held:
            raise self.fail(f"member {name!r} declares shape {shape} of {dtype} "
                            f"({declared} bytes) but holds {held} bytes")
        array = np.empty(shape[::-1] if fortran else shape, dtype)
        view = memoryview(array.reshape(-1).view(np.uint8)) if array.size else memoryview(b"")
        filled = 0
        while filled < declared:
            count = member.readinto(view[filled:])
            if not count:
                raise self.fail(f"member {name!r} ends after {filled} of {declared} bytes")
            filled += count
        return array.T if fortran else array


_KINDS = ("int", "float", "array", "scalar", "tensor", "dict", "list", "tuple")


def _decode(node, reader: _MemberReader, depth: int):
    if depth > MAX_DEPTH:
        raise reader.fail(f"the index is nested more than {MAX_DEPTH} deep")
    if node is None or isinstance(node, (bool, str)):
        return node
    if not isinstance(node, dict) or len(node) != 1 or next(iter(node)) not in _KINDS:
        shown = json.dumps(node)[:60] if not isinstance(node, dict) else repr(list(node)[:3])
        raise reader.fail(f"the index is damaged: {type(node).__name__} {shown} where an "
                          f"entry ({{kind: content}}, kind one of {', '.join(_KINDS)}) belongs")
    (kind, content), = node.items()
    try:
        if kind in ("int", "float"):
            if not isinstance(content, str):
                raise TypeError(f"{kind} written as {type(content).__name__}")
            return int(content) if kind == "int" else float(content)
        if kind in ("array", "scalar", "tensor"):
            if not isinstance(content, str):
                raise TypeError(f"{kind} member named by {type(content).__name__}")
            array = reader.read(content)
            return array if kind == "array" else array[()] if kind == "scalar" else Tensor(array)
        if not isinstance(content, list):
            raise TypeError(f"{kind} content is {type(content).__name__}, not a list")
        if kind == "dict":
            result = {}
            for pair in content:
                if not isinstance(pair, list) or len(pair) != 2:
                    raise TypeError("a dict item is not a [key, value] pair")
                key = _decode(pair[0], reader, depth + 1)
                if not isinstance(key, (str, int)):
                    raise TypeError(f"a dict key is {type(key).__name__}")
                result[key] = _decode(pair[1], reader, depth + 1)
            return result
        items = [_decode(v, reader, depth + 1) for v in content]
        return items if kind == "list" else tuple(items)
    except CheckpointError:
        raise
    except (TypeError, ValueError) as error:
        raise reader.fail(f"the index is damaged ({error})") from None


def _encode(value, arrays: dict, where: str):
    """A JSON-able description of `value`; arrays are put in `arrays` and referenced by name."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return {"int": str(value)}  # exact, whatever its size
    if isinstance(value, float):
        return {"float": repr(value)}  # round-trips exactly, inf and nan included
    if isinstance(value, Tensor) or backend.is_array(value) or isinstance(value, np.generic):
        kind = "tensor" if isinstance(value, Tensor) else "scalar" if isinstance(
            value, np.generic) else "array"
        array = value.numpy() if isinstance(value, Tensor) else (
            np.asarray(value) if isinstance(value, (np.ndarray, np.generic)) else value.get())
        if array.dtype.hasobject:
            raise TypeError(f"save: {where} is an array of Python objects, which cannot be "
                            "saved without pickle")
        if array.dtype.kind not in NUMERIC_KINDS:
            raise TypeError(f"save: {where} is an array of {array.dtype}, not numbers; a "
                            "checkpoint holds strings as str")
        name = f"a{len(arrays)}"
        arrays[name] = array
        return {kind: name}
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(f"save: {where} has a key {key!r} of type {type(key).__name__};"
                                " only str and int keys can be saved")
        return {"dict": [[_encode(k, arrays, where), _encode(v, arrays, f"{where}[{k!r}]")]
                         for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]}
    raise TypeError(f"save: {where} is a {type(value).__name__}, which a checkpoint cannot hold "
                    "(arrays, Tensors, numbers, strings, None, and dicts/lists/tuples of them)")


# ---------------------------------------------------------------------------------------------
# weights from elsewhere: NumPy's .npz, minigrad checkpoints, PyTorch state_dicts


def read_state_dict(path, wanted=None, who: str = "load_pretrained") -> dict:
    """A state_dict (name -> NumPy array) from any of: an `np.savez` file of named arrays; a
    checkpoint of `mg.save` (a bare state_dict, or a training checkpoint's "model"); a PyTorch
    file of a state_dict (bare, or wrapped as {"state_dict": ...} or {"model": ...}), read
    with torch's safe loader (never unpickling other objects). The kind is found from the
    content, not the file's name. `wanted` (names): members of an .npz outside it are not
    read, only listed (their value is None), so load_state_dict reports them unexpected.
    Every unreadable file raises CheckpointError (or FileNotFoundError) naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{who}: no such file: {path}")
    if zipfile.is_zipfile(path):
        with _open_archive(path, who) as archive:
            names = archive.namelist()
            if "__index__.npy" in names:
                return _state_of_checkpoint(load(path), path, who)
            if names and all(name.endswith(".npy") for name in names):
                reader = _MemberReader(archive, path, who)
                return {name: reader.read(name) if wanted is None or name in wanted else None
                        for name in reader.names()}
    return _read_torch_state_dict(path, who)


def _state_of_checkpoint(obj, path: Path, who: str) -> dict:
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]  # a training checkpoint (minigrad.training.fit's last.npz)
    if isinstance(obj, dict) and all(isinstance(k, str) and (isinstance(v, Tensor)
                                                             or isinstance(v, np.ndarray))
                                     for k, v in obj.items()):
        return {k: v.numpy() if isinstance(v, Tensor) else v for k, v in obj.items()}
    raise CheckpointError(f"{who}: {path} is a minigrad checkpoint, but of a "
                          f"{type(obj).__name__} that is not a state_dict (names -> arrays) "
                          "nor a training checkpoint holding one under 'model'")


def _read_torch_state_dict(path: Path, who: str) -> dict:
    try:
        import torch
    except ImportError:
        raise CheckpointError(f"{who}: {path} is not an .npz file or minigrad checkpoint; if it "
                              "is a PyTorch file, reading it needs torch (pip install torch), "
                              "or export its state_dict to .npz with numpy") from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several kinds (UnpicklingError, RuntimeError)
        text = str(error)
        if "Weights only load failed" in text or "weights_only" in text:
            raise CheckpointError(
                f"{who}: {path} holds Python objects besides tensors and plain containers; "
                "torch's safe loader refused them, and minigrad never unpickles a weights "
                "file (doing so can run any code). Save the weights with "
                "torch.save(model.state_dict(), path), or export them to .npz") from None
        first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        raise CheckpointError(f"{who}: {path} is not a PyTorch weights file, an .npz file "
                              f"or a minigrad checkpoint ({first_line})") from None
    if isinstance(loaded, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(loaded.get(wrapper), dict) and not all(
                    isinstance(v, torch.Tensor) for v in loaded.values()):
                loaded = loaded[wrapper]
                break
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{who}: {path} holds a {type(loaded).__name__}, not a state_dict "
                              "(names -> tensors)")
    state = {}
    for name, value in loaded.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{who}: {path}: entry {name!r} is a {type(value).__name__}, "
                                  "not a tensor; expected a state_dict (names -> tensors)")
        try:
            value = value.detach().cpu()
            if value.dtype == torch.bfloat16:  # NumPy has no bfloat16; float32 holds it exactly
                value = value.float()
            state[str(name)] = value.numpy()
        except (TypeError, RuntimeError) as error:  # float8, complex32, sparse layouts...
            raise CheckpointError(f"{who}: {path}: entry {name!r} ({value.dtype}, "
                                  f"{value.layout}) cannot become a NumPy array: {error}"
                                  ) from None
    return state
