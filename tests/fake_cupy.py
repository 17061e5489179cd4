"""A stand-in for CuPy, so that the device path runs in every test run, GPU or not.

It behaves like CuPy where that matters for bugs, and is stricter where it can be:
- its `ndarray` is a type of its own that holds a NumPy array out of reach;
- mixing it with a NumPy array in arithmetic raises TypeError, and `np.asarray(device_array)`
  raises (as CuPy does): data crosses only through `asarray` (host -> device) and
  `asnumpy` / `.get()` (device -> host);
- NumPy functions called on it raise, so an op that calls `np.exp` instead of `xp.exp` fails;
- only functions that CuPy also has are offered (`xp.<name>` for any other raises);
- reductions give 0-d arrays, never host scalars, as in CuPy;
- out-of-bounds integer-array indices wrap around, as in CuPy (NumPy raises);
- elementwise ops (ufuncs, operators) return C-contiguous arrays whatever the layout of their
  operands, as CuPy's do (NumPy would keep the operands' layout);
- `shares_memory` answers True for any two 0-d arrays, as CuPy 14.2's does (its exact mode
  passes 0-d operands by value), so code that relies on it fails here as on a GPU;
- `ElementwiseKernel` runs the kernel's NumPy twin (minigrad.kernels.TWINS), after checking the
  arguments against the kernel's parameters as CuPy does.
Every operation is done by NumPy underneath, so results equal the CPU path's.

It also keeps the figures a GPU run would care about (`stats`): host reads, the 2-D and
batched matrix products, elementwise ops that read a poorly coalesced operand (innermost axis
not contiguous), and the live and peak bytes of device arrays (`track_memory()`).

`install()` makes minigrad's "cuda" device use this module (and `cupyx.scatter_add`).
"""

from __future__ import annotations

import contextlib
import math
import operator
import re
import sys
import types
import weakref

import numpy as np

installed = False
host_reads = 0  # how many times device data was read back to the host (each a GPU sync)
STRIDED_MIN_SIZE = 1 << 12  # smaller operands are not counted as strided reads


class _Stats:
    """What a GPU run would care about, counted as the stand-in runs."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.matmuls: list[tuple[int, int]] = []  # (ndim of a, ndim of b) of each product
        self.strided_elementwise: list[tuple] = []  # shapes/strides of poorly coalesced reads
        self.kernels: list[str] = []  # names of the elementwise kernels run
        # (ndim of a, dtype, "tf32" or "fp32") of each matrix product: how it was computed
        self.gemm_precisions: list[tuple[int, str, str]] = []


stats = _Stats()


def _count_read() -> None:
    global host_reads
    host_reads += 1


class _MemoryTracker:
    """Live and peak bytes of the memory that device arrays own (views add nothing): every
    array the stand-in makes is counted from birth until NumPy frees its memory."""

    def __init__(self):
        self.live = self.peak = 0
        self._tracked: set[int] = set()

    def add(self, array: np.ndarray) -> None:
        root = array
        while isinstance(root.base, np.ndarray):
            root = root.base
        key = id(root)
        if key in self._tracked or root.base is not None:  # base: memory NumPy does not own
            return
        self._tracked.add(key)
        self.live += root.nbytes
        self.peak = max(self.peak, self.live)
        weakref.finalize(root, self._release, key, root.nbytes)

    def _release(self, key: int, nbytes: int) -> None:
        self._tracked.discard(key)
        self.live -= nbytes


_memory = _MemoryTracker()


class MemoryWindow:
    """Device memory over a stretch of code, in bytes above what was live when it began."""

    def __init__(self):
        self.start = _memory.live
        _memory.peak = _memory.live

    @property
    def live(self) -> int:
        return _memory.live - self.start

    @property
    def peak(self) -> int:
        return _memory.peak - self.start


@contextlib.contextmanager
def track_memory():
    """Yields a MemoryWindow: .peak and .live, in bytes above the start of the block."""
    yield MemoryWindow()


def _check_strided(*operands) -> None:
    for a in operands:
        if (isinstance(a, np.ndarray) and a.size >= STRIDED_MIN_SIZE and a.ndim
                and a.shape[-1] > 1 and a.strides[-1] != a.itemsize):
            stats.strided_elementwise.append((a.shape, a.strides))


class ndarray:  # noqa: N801 - CuPy's name
    __array_ufunc__ = None  # NumPy operators defer to ours, which refuse NumPy operands
    __array_priority__ = 1000

    def __init__(self, array: np.ndarray):
        self._a = array
        _memory.add(array)
        _register_buffer(array)

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
    flags = property(lambda self: self._a.flags)
    device = property(lambda self: types.SimpleNamespace(id=0))
    # CuPy's MemoryPointer: .ptr is the address of the first element
    data = property(lambda self: types.SimpleNamespace(
        ptr=self._a.__array_interface__["data"][0]))
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
        return _wrap(self._a[_wrap_around(_unwrap(key), self._a.shape)])

    def __setitem__(self, key, value):
        self._a[_wrap_around(_unwrap(key), self._a.shape)] = _unwrap(value)

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
        return _elementwise(numpy_op, self._a, _operand(other))

    def reflected(self, other):
        return _elementwise(numpy_op, _operand(other), self._a)

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
ndarray.__neg__ = lambda self: _elementwise(operator.neg, self._a)
ndarray.__pos__ = lambda self: _elementwise(operator.pos, self._a)
ndarray.__abs__ = lambda self: _elementwise(operator.abs, self._a)
ndarray.__invert__ = lambda self: _elementwise(operator.invert, self._a)


def _elementwise(function, *operands, **kwargs):
    """An elementwise op as CuPy runs it: the result is C-contiguous unless `out` is given."""
    if function is operator.matmul or function is np.matmul:
        stats.matmuls.append(tuple(np.ndim(a) for a in operands[:2]))
        return _wrap(_matmul_as_cublas(*operands[:2]))
    else:
        _check_strided(*operands)
    result = function(*operands, **kwargs)
    if kwargs.get("out") is None and isinstance(result, np.ndarray):
        result = result if result.flags.c_contiguous else result.copy(order="C")
    return _wrap(result)
ndarray.__hash__ = None


def tf32_round(a: np.ndarray) -> np.ndarray:
    """float32 values rounded to TF32's 10-bit mantissa (round to nearest even), in float32:
    what a tensor core reads of each operand."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0xFFF) + ((bits >> np.uint32(13)) & np.uint32(1))) \
        & np.uint32(0xFFFFE000)
    finite = np.isfinite(a)
    return np.where(finite, rounded.view(np.float32), a).astype(np.float32)


def _matmul_as_cublas(a, b):
    """A product as CuPy computes it: a 2-D float32 one in TF32 when the compute type says
    so; batched (ndim > 2) float32 ones always in float32 (CuPy's batched path ignores TF32);
    float16 ones with float32 accumulation, rounded to float16 at the end."""
    a, b = np.asarray(a), np.asarray(b)
    two_d = a.ndim <= 2 and b.ndim <= 2
    precision = "fp32"
    if a.dtype == np.float32 and b.dtype == np.float32 and two_d and (
            _routines_linalg.compute_types.get("float32") == _routines_linalg.COMPUTE_TYPE_TF32):
        a, b, precision = tf32_round(a), tf32_round(b), "tf32"
    stats.gemm_precisions.append((max(a.ndim, b.ndim), str(np.result_type(a, b)), precision))
    if a.dtype == np.float16 and b.dtype == np.float16:
        return np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(np.float16)
    return np.matmul(a, b)


class _RoutinesLinalg:
    """cupy._core._routines_linalg's compute-type switch (COMPUTE_TYPE_TF32 is 7)."""

    COMPUTE_TYPE_DEFAULT, COMPUTE_TYPE_PEDANTIC, COMPUTE_TYPE_TF32 = 1, 2, 7

    def __init__(self):
        self.compute_types: dict[str, int] = {}

    def set_compute_type(self, dtype, compute_type: int) -> None:
        self.compute_types[np.dtype(dtype).name] = compute_type

    def get_compute_type(self, dtype) -> int:
        return self.compute_types.get(np.dtype(dtype).name, self.COMPUTE_TYPE_DEFAULT)


_routines_linalg = _RoutinesLinalg()
_core = types.SimpleNamespace(_routines_linalg=_routines_linalg)


def _wrap_around(key, shape):
    """Integer-array indices taken modulo their axis's length: CuPy wraps out-of-bounds array
    indices around where NumPy raises (a GPU cannot stop to check them)."""
    parts = key if isinstance(key, tuple) else (key,)
    consuming = sum(1 for p in parts if p is not None and p is not Ellipsis)
    wrapped, axis = [], 0
    for part in parts:
        if part is Ellipsis:
            axis += len(shape) - consuming
        elif isinstance(part, np.ndarray) and part.dtype.kind in "iu" and axis < len(shape):
            part = np.mod(part, shape[axis]) if shape[axis] else part
        if part is not None and part is not Ellipsis:
            axis += part.ndim if isinstance(part, np.ndarray) and part.dtype == bool else 1
        wrapped.append(part)
    return tuple(wrapped) if isinstance(key, tuple) else wrapped[0]


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
    "mean", "argmax", "argmin", "reshape", "transpose", "moveaxis",
    "may_share_memory", "array_equal", "allclose", "copyto", "prod", "cumsum", "square",
    "power", "negative", "floor", "ceil", "round", "sin", "cos", "floor_divide", "bitwise_and",
    "bitwise_or", "bitwise_xor", "invert", "flip", "indices", "argsort", "diagonal", "cumprod",
    "take", "expm1",
}
# the functions that CuPy runs as ufuncs (or elementwise kernels): C-contiguous results
_ELEMENTWISE = {
    "exp", "log", "log1p", "sqrt", "abs", "sign", "maximum", "minimum", "where", "clip", "tanh",
    "isfinite", "isnan", "equal", "not_equal", "less", "less_equal", "greater",
    "greater_equal", "multiply", "add", "subtract", "divide", "logical_and", "logical_or",
    "logical_xor", "logical_not", "square", "power", "negative", "floor", "ceil", "round",
    "matmul", "ascontiguousarray", "sin", "cos", "floor_divide", "bitwise_and", "bitwise_or",
    "bitwise_xor", "invert", "expm1",
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


def _refuse_what_cupy_refuses(name, args, kwargs) -> None:
    """CuPy's signatures where they are narrower than NumPy's (each found on a real GPU)."""
    if name == "where" and len(args) == 3 and not isinstance(args[0], ndarray):
        # cupy.where calls condition.astype: a Python or NumPy condition fails
        raise AttributeError(f"fake_cupy: where: the condition must be a device array, got "
                             f"{type(args[0]).__name__} (CuPy: 'bool' object has no attribute "
                             "'astype')")
    if name == "indices" and "sparse" in kwargs:
        raise TypeError("fake_cupy: indices() got an unexpected keyword argument 'sparse' "
                        "(CuPy has no sparse=)")


def __getattr__(name):
    if name not in _FUNCTIONS:
        raise AttributeError(f"fake_cupy has no function {name!r} (CuPy may lack it too)")
    function = getattr(np, name)

    def call(*args, **kwargs):
        _refuse_what_cupy_refuses(name, args, kwargs)
        if name in _ELEMENTWISE:
            return _elementwise(function, *_unwrap(args), **_unwrap(kwargs))
        return _wrap(function(*_unwrap(args), **_unwrap(kwargs)))

    call.__name__ = name
    return call


def shares_memory(a, b, max_work=None):
    """CuPy 14.2's answer: True for any two 0-d arrays, else NumPy's exact one."""
    if a.ndim == 0 and b.ndim == 0:
        return True
    return np.shares_memory(_unwrap(a), _unwrap(b))


_PARAM = re.compile(r"^(raw\s+)?(\w+)\s+(\w+)$")
_SCALAR_TYPES = {"int8", "int16", "int32", "int64", "uint8", "float32", "float64", "bool"}


class ElementwiseKernel:
    """CuPy's ElementwiseKernel, running the NumPy twin that minigrad registers for `name`.

    The call is checked as CuPy checks it: one argument per parameter (inputs, then outputs);
    arrays where array parameters are, on the device; numbers where scalar ones are; and every
    array of one type placeholder (T, I, ...) of one dtype."""

    def __init__(self, in_params: str, out_params: str, operation: str, name: str, **options):
        from minigrad.kernels import TWINS

        if name not in TWINS:
            raise NotImplementedError(f"fake_cupy: no NumPy twin registered for kernel {name!r}")
        self.params = [_PARAM.match(p.strip()).groups()
                       for p in f"{in_params}, {out_params}".split(",")]
        self.twin, self.name = TWINS[name], name

    def __call__(self, *args, size=None):
        if len(args) != len(self.params):
            raise TypeError(f"fake_cupy: kernel {self.name} takes {len(self.params)} arguments, "
                            f"got {len(args)}")
        types_: dict[str, np.dtype] = {}
        for (_, kind, param), arg in zip(self.params, args):
            if kind in _SCALAR_TYPES:
                if not isinstance(arg, (int, float, np.integer, np.floating)):
                    raise TypeError(f"fake_cupy: kernel {self.name}: {param} must be a "
                                    f"number, got {type(arg).__name__}")
                continue
            if not isinstance(arg, ndarray):
                raise TypeError(f"fake_cupy: kernel {self.name}: {param} must be a device "
                                f"array, got {type(arg).__name__}")
            if types_.setdefault(kind, arg.dtype) != arg.dtype:
                raise TypeError(f"fake_cupy: kernel {self.name}: {param} is {arg.dtype}, but "
                                f"type {kind} is {types_[kind]}")
        arrays = [raw for raw, kind, _ in self.params if kind not in _SCALAR_TYPES]
        if size is None and all(arrays):
            raise ValueError(f"fake_cupy: kernel {self.name}: loop size is undecided (every "
                             "array parameter is raw: CuPy needs size=)")
        stats.kernels.append(self.name)
        return _wrap(self.twin(*_unwrap(args)))


class _StrideTricks:
    @staticmethod
    def as_strided(x, shape, strides):
        return ndarray(np.lib.stride_tricks.as_strided(x._a, shape=shape, strides=strides))


lib = types.SimpleNamespace(stride_tricks=_StrideTricks())
linalg = types.SimpleNamespace(qr=lambda a: _wrap(np.linalg.qr(_unwrap(a))))


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
# device memory by address, for the cuBLAS stand-in, which is handed pointers
_buffers: dict[int, weakref.ref] = {}


def _register_buffer(array: np.ndarray) -> None:
    root = array
    while isinstance(root.base, np.ndarray):
        root = root.base
    _buffers[root.__array_interface__["data"][0]] = weakref.ref(root)


def _buffer_at(pointer: int, what: str) -> tuple[np.ndarray, int]:
    """The live device buffer holding `pointer` (flat), and the pointer's byte offset in it."""
    for start, ref in list(_buffers.items()):
        root = ref()
        if root is None:
            del _buffers[start]
        elif start <= pointer < start + max(root.nbytes, 1):
            return root.reshape(-1) if root.flags.c_contiguous else root, pointer - start
    raise ValueError(f"fake_cupy cuBLAS: {what} points at no live device array")


_CUDA_TYPES = {0: np.float32, 1: np.float64, 2: np.float16}


def _column_major(pointer, data_type, rows, cols, ld, stride, batch, what) -> np.ndarray:
    """The (batch, rows, cols) matrices that cuBLAS reads at `pointer`: column-major, leading
    dimension `ld`, `stride` elements apart; checked to lie inside one array of that type."""
    root, offset = _buffer_at(pointer, what)
    dtype = np.dtype(_CUDA_TYPES[data_type])
    if root.dtype != dtype or root.ndim != 1:
        raise TypeError(f"fake_cupy cuBLAS: {what} is declared {dtype} but points into a "
                        f"{root.dtype} array of shape {root.shape}")
    if offset % dtype.itemsize or ld < max(1, rows):
        raise ValueError(f"fake_cupy cuBLAS: {what}: misaligned, or ld={ld} < rows={rows}")
    start = offset // dtype.itemsize
    last = start + (batch - 1) * stride + (rows - 1) + (cols - 1) * ld
    if last >= root.size:
        raise ValueError(f"fake_cupy cuBLAS: {what} reads element {last} of an array of "
                         f"{root.size}: rows={rows} cols={cols} ld={ld} stride={stride}")
    return np.lib.stride_tricks.as_strided(root[start:], shape=(batch, rows, cols),
                                           strides=(stride * dtype.itemsize, dtype.itemsize,
                                                    ld * dtype.itemsize))


class _Cublas:
    """cuBLAS's gemmStridedBatchedEx as CuPy wraps it (pointers and host scalars), computed
    with NumPy as its compute type says: 68 float32 (float16 inputs summed in float32),
    77 TF32-rounded inputs, 70 float64."""

    def gemmStridedBatchedEx(self, handle, transa, transb, m, n, k, alpha, A, Atype, lda,  # noqa: N802,N803
                             strideA, B, Btype, ldb, strideB, beta, C, Ctype, ldc, strideC,  # noqa: N803
                             batchCount, computeType, algo):  # noqa: N803
        import ctypes

        a = _column_major(A, Atype, *((m, k) if transa == 0 else (k, m)), lda, strideA,
                          batchCount, "A")
        b = _column_major(B, Btype, *((k, n) if transb == 0 else (n, k)), ldb, strideB,
                          batchCount, "B")
        c = _column_major(C, Ctype, m, n, ldc, strideC, batchCount, "C")
        a = a if transa == 0 else a.swapaxes(1, 2)
        b = b if transb == 0 else b.swapaxes(1, 2)
        if a.dtype != b.dtype:
            raise TypeError(f"fake_cupy cuBLAS: A is {a.dtype}, B {b.dtype}")
        if computeType == 70 and a.dtype == np.float64:
            compute, scalar = np.float64, ctypes.c_double
        elif computeType == 68 and a.dtype in (np.float32, np.float16):
            compute, scalar = np.float32, ctypes.c_float
        elif computeType == 77 and a.dtype == np.float32:
            a, b = tf32_round(a), tf32_round(b)
            compute, scalar = np.float32, ctypes.c_float
        else:
            raise ValueError(f"fake_cupy cuBLAS: compute type {computeType} does not take "
                             f"{a.dtype} inputs (CUBLAS_STATUS_NOT_SUPPORTED)")
        stats.gemm_precisions.append((3, str(a.dtype), "tf32" if computeType == 77 else
                                      "fp32" if compute == np.float32 else "fp64"))
        alpha_, beta_ = (scalar.from_address(p).value for p in (alpha, beta))
        product = np.matmul(a.astype(compute), b.astype(compute)) * compute(alpha_)
        if beta_ != 0:
            product += compute(beta_) * c.astype(compute)
        c[...] = product.astype(c.dtype)


class _Device:
    """cupy.cuda.Device: a context, with the id and compute capability of an H100."""

    compute_capability = "90"

    def __init__(self, index=0):
        self.id = int(index)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def synchronize(self) -> None:
        pass


cuda = types.SimpleNamespace(
    Device=_Device,
    cublas=_Cublas(),
    device=types.SimpleNamespace(get_cublas_handle=lambda: 1),
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
)


def _scatter_add(target, index, values):
    np.add.at(target._a, _unwrap(index), _unwrap(values))  # the reference, on the host arrays


def install() -> None:
    """Make minigrad's "cuda" device (and `import cupyx`) use this stand-in."""
    global installed
    from minigrad import backend

    backend._cupy = sys.modules[__name__]
    special = types.ModuleType("cupyx.scipy.special")
    special.erf = _erf
    scipy = types.ModuleType("cupyx.scipy")
    scipy.special = special
    cupyx = types.ModuleType("cupyx")
    cupyx.scatter_add, cupyx.scipy = _scatter_add, scipy
    sys.modules.update({"cupyx": cupyx, "cupyx.scipy": scipy, "cupyx.scipy.special": special})
    installed = True


def _erf(x):
    """cupyx.scipy.special.erf: elementwise, on the device, C-contiguous."""
    host = _unwrap(x)
    return ndarray(np.ascontiguousarray(np.frompyfunc(math.erf, 1, 1)(host).astype(host.dtype)))
