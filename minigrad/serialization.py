"""Checkpoints without pickle: `mg.save(obj, path)` and `mg.load(path)`.

One `.npz` file: every array of `obj` as a member `a0`, `a1`, ..., and a JSON index (member
`__index__`, stored as bytes) that describes the nesting of dicts, lists, tuples, numbers,
strings and where each array goes. Loading uses `allow_pickle=False`, so a file can hold only
data: loading one can never run code. The file is written under a temporary name in the same
folder and renamed over the target, so a crash mid-save leaves the old checkpoint intact.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from minigrad import backend
from minigrad.tensor import Tensor

FORMAT = "minigrad-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a readable minigrad checkpoint."""


def save(obj, path) -> None:
    """Save nested dicts/lists/tuples of arrays, Tensors, numbers, strings and None."""
    arrays: dict[str, np.ndarray] = {}
    index = {"format": FORMAT, "version": VERSION, "root": _encode(obj, arrays, "obj")}
    members = dict(arrays, __index__=np.frombuffer(json.dumps(index).encode(), dtype=np.uint8))
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.",
                                     suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, **members)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load(path):
    """Load what `save` wrote. Arrays come back as NumPy arrays on the CPU, Tensors as CPU
    Tensors; move them with `Module.to` or `Tensor.to`. A truncated, damaged or foreign file
    raises CheckpointError naming the file; nothing is returned half-loaded."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            members = {name: archive[name] for name in archive.files}
        if "__index__" not in members:
            raise CheckpointError(f"load: {path} is an .npz file but not a minigrad checkpoint "
                                  "(it has no __index__)")
        index = json.loads(members.pop("__index__").tobytes().decode())
    except (FileNotFoundError, CheckpointError):
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError, UnicodeDecodeError) as e:
        raise CheckpointError(f"load: {path} is not a readable minigrad checkpoint "
                              f"({type(e).__name__}: {e})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise CheckpointError(f"load: {path} is an .npz file but not a minigrad checkpoint")
    if index.get("version") != VERSION:
        raise CheckpointError(f"load: {path} has checkpoint version {index.get('version')}; "
                              f"this minigrad reads version {VERSION}")
    try:
        return _decode(index["root"], members)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"load: the index of {path} is damaged ({e})") from None


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


def _decode(node, members: dict):
    if node is None or isinstance(node, (bool, str)):
        return node
    (kind, content), = node.items()
    if kind == "int":
        return int(content)
    if kind == "float":
        return float(content)
    if kind == "array":
        return members[content]
    if kind == "scalar":
        return members[content][()]
    if kind == "tensor":
        return Tensor(members[content])
    if kind == "dict":
        return {_decode(k, members): _decode(v, members) for k, v in content}
    if kind in ("list", "tuple"):
        items = [_decode(v, members) for v in content]
        return items if kind == "list" else tuple(items)
    raise ValueError(f"unknown entry {kind!r}")
