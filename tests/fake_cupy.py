"""A stand-in for CuPy, so that the device path runs in every test run, GPU or not.

It behaves like CuPy where that matters for bugs, and is stricter where it can be:
- its `ndarray` is a type of its own that holds a NumPy array out of reach;
- mixing it with a NumPy array in arithmetic raises TypeError, and `np.asarray(device_array)`
  raises (as CuPy does): data crosses only through `asarray` (host -> device) and
  `asnumpy` / `.get()` (device -> host);
- NumPy functions called on it raise, so an op that calls `np.exp` instead of `xp.exp` fails;
- only functions that CuPy also has are offered (`xp.<name>` for any other raises);
- reductions give 0-d arrays, never host scalars, as in CuPy.
Every operation is done by NumPy underneath, so results equal the CPU path's.

`install()` makes minigrad's "cuda" device use this module (and `cupyx.scatter_add`).
"""

from __future__ import annotations

import contextlib
import operator
import sys
import types

import numpy as np

installed = False
host_reads = 0  # how many times device data was read back to the host (each a GPU sync)


def _count_read() -> None:
    global host_reads
    host_reads += 1


class ndarray:  # noqa: N801 - CuPy's name
    __array_ufunc__ = None  # NumPy operators defer to ours, which refuse NumPy operands
    __array_priority__ = 1000

    def __init__(self, array: np.ndarray):
        self._a = array

    # what NumPy may not touch
    def __array__(self, dtype=None, copy=None):
        raise TypeError("fake_cupy: implicit conversion to a NumPy array is not allowed; "
                        "use .get() or asnumpy()")

    def __array_function__(self, func, types_, args, kwargs):
        raise TypeError(f"fake_cupy: numpy.{func.__name__} was called on a device array; "
                        "use the array module (xp) of the tensor")

    def get(self) -> np.ndarray:
        _count_read()
        return self._a.copy()

    # what it is
    shape = property(lambda self: self._a.shape)
    ndim = property(lambda self: self._a.ndim)
    dtype = property(lambda self: self._a.dtype)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    device = property(lambda self: types.SimpleNamespace(id=0))
    T = property(lambda self: _wrap(self._a.T))

    @property
    def base(self):
        return None if self._a.base is None else _wrap(self._a.base)

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return f"fake_cupy.ndarray({self._a!r})"

    def __bool__(self):
        _count_read()
        return bool(self._a)

    def __int__(self):
        _count_read()
        return int(self._a)

    def __float__(self):
        _count_read()
        return float(self._a)

    def __index__(self):
        _count_read()
        return operator.index(self._a.item())

    def __iter__(self):
        return (_wrap(a) for a in self._a)

    def item(self):
        _count_read()
        return self._a.item()

    def tolist(self):
        _count_read()
        return self._a.tolist()

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value)

    def __getattr__(self, name):
        if name not in _METHODS:
            raise AttributeError(f"fake_cupy.ndarray has no attribute {name!r}")
        method = getattr(self._a, name)
        return lambda *args, **kwargs: _wrap(method(*_unwrap(args), **_unwrap(kwargs)))


_METHODS = {
    "reshape", "transpose", "swapaxes", "sum", "mean", "max", "min", "argmax", "argmin", "var",
    "std", "all", "any", "astype", "copy", "squeeze", "ravel", "flatten", "fill", "clip",
    "cumsum", "prod", "dot", "take", "repeat", "nonzero", "view",
}


def _binary(name):
    numpy_op = getattr(operator, name)

    def op(self, other):
        return _wrap(numpy_op(self._a, _operand(other)))

    def reflected(self, other):
        return _wrap(numpy_op(_operand(other), self._a))

    return op, reflected


def _operand(value):
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, np.ndarray):
        raise TypeError("fake_cupy: cannot mix a device array with a NumPy array; move it "
                        "with asarray() first")
    return value


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and_", "or_",
              "xor", "lt", "le", "gt", "ge", "eq", "ne"):
    _op, _reflected = _binary(_name)
    _dunder = _name.rstrip("_")
    setattr(ndarray, f"__{_dunder}__", _op)
    if _name not in ("lt", "le", "gt", "ge", "eq", "ne"):
        setattr(ndarray, f"__r{_dunder}__", _reflected)
    if _name not in ("lt", "le", "gt", "ge", "eq", "ne", "matmul"):
        in_place = getattr(operator, f"i{_dunder}")

        def _inplace(self, other, _f=in_place):
            _f(self._a, _operand(other))
            return self

        setattr(ndarray, f"__i{_dunder}__", _inplace)
ndarray.__neg__ = lambda self: _wrap(-self._a)
ndarray.__pos__ = lambda self: _wrap(+self._a)
ndarray.__abs__ = lambda self: _wrap(abs(self._a))
ndarray.__invert__ = lambda self: _wrap(~self._a)
ndarray.__hash__ = None


def _wrap(value):
    if isinstance(value, np.ndarray):
        return ndarray(value)
    if isinstance(value, np.generic):  # CuPy never hands out host scalars from arrays
        return ndarray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _unwrap(value):
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, np.ndarray):
        raise TypeError("fake_cupy: a NumPy array was passed where a device array belongs")
    if isinstance(value, tuple):
        return tuple(_unwrap(v) for v in value)
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------------------------
# the module's functions: NumPy's, for the names CuPy has too

_FUNCTIONS = {
    "zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like", "full_like",
    "arange", "eye", "exp", "log", "log1p", "sqrt", "abs", "sign", "maximum", "minimum", "where",
    "clip", "tanh", "matmul", "swapaxes", "expand_dims", "broadcast_to", "concatenate", "stack",
    "split", "take_along_axis", "isfinite", "isnan", "pad", "ascontiguousarray", "equal",
    "not_equal", "less", "less_equal", "greater", "greater_equal", "multiply", "add",
    "subtract", "divide", "logical_and", "logical_or", "logical_xor", "logical_not", "sum",
    "mean", "argmax", "argmin", "reshape", "transpose", "moveaxis", "shares_memory",
    "may_share_memory", "array_equal", "allclose", "copyto", "prod", "cumsum", "square",
    "power", "negative", "floor", "ceil", "round",
}
inf, nan, pi, newaxis = np.inf, np.nan, np.pi, np.newaxis
float16, float32, float64 = np.float16, np.float32, np.float64
int32, int64, uint8, bool_ = np.int32, np.int64, np.uint8, np.bool_


def asarray(value, dtype=None):
    """Host -> device (a copy of a NumPy array), or a device array as it is."""
    if isinstance(value, ndarray):
        return value if dtype is None else ndarray(value._a.astype(dtype, copy=False))
    return ndarray(np.array(value, dtype=dtype))


def array(value, dtype=None, copy=True):
    if isinstance(value, ndarray):
        return ndarray(np.array(value._a, dtype=dtype, copy=copy))
    return ndarray(np.array(value, dtype=dtype))


def asnumpy(value):
    return value.get() if isinstance(value, ndarray) else np.asarray(value)


def __getattr__(name):
    if name not in _FUNCTIONS:
        raise AttributeError(f"fake_cupy has no function {name!r} (CuPy may lack it too)")
    function = getattr(np, name)

    def call(*args, **kwargs):
        return _wrap(function(*_unwrap(args), **_unwrap(kwargs)))

    call.__name__ = name
    return call


class _StrideTricks:
    @staticmethod
    def as_strided(x, shape, strides):
        return ndarray(np.lib.stride_tricks.as_strided(x._a, shape=shape, strides=strides))


lib = types.SimpleNamespace(stride_tricks=_StrideTricks())


class _Generator:
    """cupy.random.Generator's methods that minigrad uses, giving device arrays."""

    def __init__(self, seed):
        self._rng = np.random.default_rng(seed)

    def standard_normal(self, size=None, dtype=np.float64):
        return ndarray(np.asarray(self._rng.standard_normal(size, dtype=dtype)))

    def random(self, size=None, dtype=np.float64):
        return ndarray(np.asarray(self._rng.random(size, dtype=dtype)))

    def integers(self, low, high=None, size=None):
        return ndarray(np.asarray(self._rng.integers(low, high, size)))

    def uniform(self, low=0.0, high=1.0, size=None):
        return ndarray(np.asarray(self._rng.uniform(low, high, size)))


random = types.SimpleNamespace(default_rng=_Generator)
cuda = types.SimpleNamespace(
    Device=lambda index=0: contextlib.nullcontext(),
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
)


def _scatter_add(target, index, values):
    np.add.at(target._a, _unwrap(index), _unwrap(values))  # the reference, on the host arrays


def install() -> None:
    """Make minigrad's "cuda" device (and `import cupyx`) use this stand-in."""
    global installed
    from minigrad import backend

    backend._cupy = sys.modules[__name__]
    sys.modules["cupyx"] = types.SimpleNamespace(scatter_add=_scatter_add)
    installed = True
