"""The Tensor: one array of the backend (numpy or cupy), plus what autograd needs.

A Tensor holds `.array` (the NumPy or CuPy array of its values), `.requires_grad`, `.grad` (a
Tensor once backward has run) and `.grad_fn` (the graph node that made it, None for a leaf).
`.data` is PyTorch's: the same values as a Tensor outside the graph, sharing the memory. Its
arithmetic operators and math methods (`x + y`, `x.sum()`, `x.relu()`) are ops from
`minigrad.ops`, bound to the class at the end of `minigrad/ops/__init__.py`. This file holds
the rest: construction, conversion, the factory functions (`tensor`, `zeros`, `randn`, ...) and
`backward`.
"""

from __future__ import annotations

import math

import numpy as np

from minigrad import autograd, backend
from minigrad.backend import Device


class Size(tuple):
    """A tensor's shape, as torch.Size: a tuple (it compares equal to one, unpacks and
    indexes as one) that prints as `minigrad.Size([2, 10])`; a slice of it is a Size too."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"minigrad.Size({list(self)})"

    def __getitem__(self, key):
        item = tuple.__getitem__(self, key)
        return Size(item) if isinstance(key, slice) else item

    def __add__(self, other):
        return Size(tuple(self) + tuple(other))

    def numel(self) -> int:
        """The number of elements of a tensor of this shape."""
        return math.prod(self)


class Tensor:
    """An n-dimensional array that can record the operations applied to it."""

    __slots__ = ("array", "grad", "requires_grad", "grad_fn", "_retains_grad", "_hooks",
                 "__weakref__")
    __array_ufunc__ = None  # `ndarray + Tensor` defers to Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False):
        if not isinstance(data, np.ndarray) and not backend.is_array(data):
            data = _to_array(data, dtype=None)
        if data.dtype.kind not in NUMERIC_KINDS:  # the one gate every array passes through
            raise TypeError(_not_numeric("Tensor", data.dtype))
        self.array = data
        self.grad: Tensor | None = None
        self.grad_fn = None
        self._retains_grad = False
        self._hooks = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # -- what it is ---------------------------------------------------------------------------
    @property
    def data(self) -> Tensor:
        """This tensor's values as a Tensor outside the graph that shares their memory, as in
        PyTorch: `w.data.normal_(0, 0.02)` changes w, and no gradient is recorded through it.
        (The backend array itself is `.array`; this one holds a view of it, another array
        object on the same memory, so a recorded backward never takes it for this tensor.)"""
        return Tensor(self.array.view())

    @data.setter
    def data(self, value: Tensor) -> None:
        """`t.data = other` makes t hold other's values (its memory, shape and dtype), as in
        PyTorch, without touching t's place in the graph."""
        if not isinstance(value, Tensor):
            raise TypeError(f"Tensor.data: expected a Tensor, got {type(value).__name__}; "
                            "wrap it with minigrad.tensor(...)")
        self.array = value.array

    @property
    def shape(self) -> Size:
        return Size(self.array.shape)

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def device(self) -> Device:
        return backend.device_of(self.array)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.array.ndim

    def numel(self) -> int:
        return int(self.array.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    __hash__ = object.__hash__  # == is elementwise, yet tensors can be dict keys (by identity)

    # -- autograd -----------------------------------------------------------------------------
    def backward(self, gradient: Tensor | None = None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs=None) -> None:
        """Gradients of this tensor with respect to the leaves, accumulated into their `.grad`
        (only into `inputs`' if given). `gradient` is d(something)/d(self), needed unless this
        tensor has a single element. With create_graph=True the gradients can be
        differentiated again (mg.autograd.backward)."""
        autograd.backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph,
                          inputs=inputs)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set whether gradients are recorded for this leaf; returns the tensor."""
        if requires_grad and not backend.is_floating(self.dtype):
            raise TypeError(
                f"Tensor: only floating-point tensors can require gradients, but this one has "
                f"dtype {self.dtype} (shape {self.shape}); convert it with .float() first"
            )
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError(
                "requires_grad_: only a leaf's flag can be changed; use .detach() on a result"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep `.grad` for this non-leaf tensor too when backward runs."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: this tensor does not require grad")
        self._retains_grad = True

    def register_hook(self, hook):
        """Call `hook(grad)` with the gradient of this tensor each time a backward pass
        computes it; a returned Tensor replaces that gradient (for a leaf, before it goes
        into `.grad`). Returns a handle whose remove() takes the hook off."""
        from minigrad.utils.hooks import RemovableHandle

        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't "
                               "require gradient")
        vertex = self if self.grad_fn is None else self.grad_fn
        if vertex._hooks is None:
            vertex._hooks = {}
        handle = RemovableHandle(vertex._hooks)
        vertex._hooks[handle.id] = hook
        return handle

    def detach_(self) -> Tensor:
        """Cut this tensor from the graph in place: it becomes a leaf that does not require
        grad (the values are kept)."""
        if self.grad_fn is not None and self.grad_fn._output is not None \
                and self.grad_fn._output() is not self:
            raise RuntimeError("detach_: this tensor is a view made by an in-place op; use "
                               "detach() instead")
        self.grad_fn, self.requires_grad, self._retains_grad = None, False, False
        return self

    def detach(self) -> Tensor:
        """The same data, cut from the graph (shares memory, as in PyTorch): a view, another
        array object, so that a recorded backward (autograd/higher.py, which tells saved
        arrays apart by identity) never takes `x.detach()` in `x * x.detach()` for x."""
        return Tensor(self.array.view())

    def __setitem__(self, index, value) -> None:
        """`x[index] = value`, in place. On a tensor in the graph (not a leaf that requires
        grad), or with a value in the graph, it is recorded (ops/arrange.py index_put): the
        overwritten places pass no gradient back, the value gets theirs."""
        if autograd.is_grad_enabled() and (self.requires_grad or (
                isinstance(value, Tensor) and value.requires_grad)):
            from minigrad.ops import arrange, inplace  # (_in_place refuses a leaf's change)

            inplace._in_place(self, "__setitem__",
                              lambda old: arrange.index_put(old, index, value),
                              lambda array: None, (value,))
            return
        if isinstance(value, Tensor):
            if value.device != self.device:
                raise RuntimeError(
                    f"__setitem__: value is on {value.device} but the tensor is on {self.device}"
                )
            value = value.array
        if isinstance(index, Tensor):
            index = index.array
        self.array[index] = value
        autograd.bump_version(self.array)  # a backward that saved these values must not run

    # -- conversion ---------------------------------------------------------------------------
    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.array.size != 1:
            raise RuntimeError(
                f"item: only one-element tensors can be converted to Python scalars, "
                f"but this tensor has shape {self.shape}"
            )
        backend.run_pending_checks()  # the read waits for the device anyway
        return self.array.item()

    def numpy(self) -> np.ndarray:
        """A NumPy copy of the data on the host (from any device)."""
        if self.device.type == "cpu":
            return self.array.copy()
        backend.run_pending_checks()  # the read waits for the device anyway
        return self.array.get()

    def tolist(self):
        return self.numpy().tolist()

    def __array__(self, dtype=None, copy=None):
        if self.device.type != "cpu":
            raise TypeError(
                f"can't convert a {self.device} tensor to NumPy implicitly; use .numpy() or .cpu()"
            )
        return self.array if dtype is None else self.array.astype(dtype)

    def __bool__(self) -> bool:
        if self.array.size != 1:
            raise RuntimeError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.array.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if backend.is_floating(self.dtype) or self.array.size != 1:
            raise TypeError(f"only one-element integer tensors can be used as an index, got "
                            f"shape {self.shape} and dtype {self.dtype}")
        return int(self.item())

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device: int | str | None = None) -> Tensor:
        if isinstance(device, int):
            device = f"cuda:{device}"
        return self.to(device or "cuda")

    def float(self) -> Tensor:
        return self.to(backend.float32)

    def double(self) -> Tensor:
        return self.to(backend.float64)

    def long(self) -> Tensor:
        return self.to(backend.int64)

    def __repr__(self) -> str:
        data = self.numpy()
        body = np.array2string(data, separator=", ", prefix="tensor(", precision=4,
                               floatmode="maxprec_equal")
        extras = []
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if data.dtype not in (backend.float32, backend.int64, backend.bool_) or data.size == 0:
            extras.append(f"dtype=minigrad.{data.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"


# ---------------------------------------------------------------------------------------------
# making tensors


NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats: what a Tensor holds


def _not_numeric(who: str, dtype) -> str:
    what = {"c": "complex numbers (minigrad has no complex tensors)", "U": "strings",
            "S": "bytes", "O": "Python objects", "M": "dates (datetime64)",
            "m": "time spans (timedelta64)", "V": "raw records (a structured or void dtype)"}
    return (f"{who}: cannot make a tensor of it: dtype {dtype} holds "
            f"{what.get(dtype.kind, 'no numbers')}; a tensor holds bool, integers or floats "
            "(convert first, e.g. array.astype(np.float32))")


def _items(sequence) -> list:
    if isinstance(sequence, Tensor):
        sequence = sequence.array
    return list(sequence)


def _ragged(data) -> str | None:
    """Where nested lists stop being rectangular, in torch's words, or None."""
    def length(item):  # a sequence's length (a list, tuple, array or Tensor), or None
        if isinstance(item, (list, tuple)):
            return len(item)
        shape = getattr(item, "shape", ())
        return shape[0] if shape else None

    level, depth = [data], 0
    while level and all(length(item) is not None for item in level):
        lengths = [length(item) for item in level]
        if len(set(lengths)) > 1:
            return (f"expected sequence of length {lengths[0]} at dim {depth} (got "
                    f"{next(n for n in lengths if n != lengths[0])})")
        level, depth = [x for item in level for x in _items(item)], depth + 1
        kinds = {length(item) is None for item in level}
        if len(kinds) > 1:
            return f"a mix of numbers and sequences at dim {depth}"
    return None


def _to_array(data, dtype, device: Device | None = None):
    """`data` (nested lists, numbers, a NumPy or CuPy array) as an array of the backend.

    Arrays keep their dtype; Python floats become the default dtype (float32), Python ints
    int64, as in PyTorch. Nothing is moved between devices unless `device` says so.
    """
    if isinstance(data, Tensor):
        data = data.array
    if backend.is_array(data) or isinstance(data, np.generic):
        array = data
        if array.dtype.kind not in NUMERIC_KINDS:
            raise TypeError(_not_numeric("tensor", array.dtype))
    else:
        try:
            array = np.asarray(data)  # Python floats are float64 here: exact for any dtype
        except ValueError:
            where = _ragged(data) if isinstance(data, (list, tuple)) else None
            if where is None:
                raise
            raise ValueError(f"tensor: the nested lists are not rectangular: {where}") from None
        if array.dtype.kind not in NUMERIC_KINDS:
            raise TypeError(_not_numeric(f"tensor: a {type(data).__name__} that NumPy reads as "
                                         f"{array.dtype}", array.dtype))
        if dtype is None and array.dtype.kind == "f":
            array = array.astype(backend.get_default_dtype(), copy=False)
        elif dtype is None and array.dtype.kind in "iu" and array.dtype != backend.uint8:
            array = array.astype(backend.int64, copy=False)
    if device is not None:
        array = backend.to_device(array, device)
    xp = backend.get_array_module(array)
    if dtype is not None:
        array = array.astype(backend.as_dtype(dtype), copy=False)
    return xp.asarray(array)


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new leaf tensor holding a copy of `data` (a number, nested lists or an array)."""
    if device is not None:
        device = Device(device)
    elif backend.get_default_device() != backend.CPU and not isinstance(data, Tensor):
        device = backend.get_default_device()  # (torch.set_default_device)
    array = _to_array(data, dtype, device)
    source = data.array if isinstance(data, Tensor) else data
    if array is source:
        array = array.copy()
    return Tensor(array, requires_grad=requires_grad)


def _shape_of(size: tuple) -> tuple:
    """Accept both `zeros(2, 3)` and `zeros((2, 3))`."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if not all(isinstance(n, (int, np.integer)) and n >= 0 for n in size):
        raise ValueError(f"expected a shape of non-negative integers, got {size}")
    return tuple(int(n) for n in size)


def _factory(fill, size, dtype, device, requires_grad) -> Tensor:
    device = Device(device) if device is not None else backend.get_default_device()
    xp = backend.array_module(device)
    dtype = backend.as_dtype(dtype) if dtype is not None else backend.get_default_dtype()
    with backend.device_context(device):
        array = fill(xp, _shape_of(size), dtype)
    return Tensor(array, requires_grad=requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _factory(lambda xp, s, d: xp.zeros(s, d), size, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _factory(lambda xp, s, d: xp.ones(s, d), size, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _factory(lambda xp, s, d: xp.empty(s, d), size, dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if dtype is None and not isinstance(fill_value, float):
        dtype = backend.bool_ if isinstance(fill_value, bool) else backend.int64
    return _factory(lambda xp, s, d: xp.full(s, fill_value, d), (size,), dtype, device,
                    requires_grad)


def zeros_like(other: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return zeros(other.shape, dtype=dtype or other.dtype, device=device or other.device,
                 requires_grad=requires_grad)


def ones_like(other: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return ones(other.shape, dtype=dtype or other.dtype, device=device or other.device,
                requires_grad=requires_grad)


def full_like(other: Tensor, fill_value, dtype=None, device=None,
              requires_grad: bool = False) -> Tensor:
    return full(other.shape, fill_value, dtype=dtype or other.dtype,
                device=device or other.device, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None,
           requires_grad: bool = False) -> Tensor:
    """Numbers from `start` up to (not including) `end`; int64 for integer arguments."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must not be zero")
    if dtype is None:
        integral = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = backend.int64 if integral else backend.get_default_dtype()
    count = max(0, math.ceil((end - start) / step))
    return _factory(lambda xp, s, d: start + step * xp.arange(count).astype(d), (), dtype,
                    device, requires_grad)


def eye(n: int, m: int | None = None, dtype=None, device=None,
        requires_grad: bool = False) -> Tensor:
    return _factory(lambda xp, s, d: xp.eye(n, m, dtype=d), (), dtype, device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Samples of the standard normal distribution, from the device's seeded generator."""
    return _random(lambda rng, s, d: rng.standard_normal(s, dtype=d), size, dtype, device,
                   requires_grad)


def rand(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Samples of the uniform distribution on [0, 1), from the device's seeded generator."""
    return _random(lambda rng, s, d: rng.random(s, dtype=d), size, dtype, device, requires_grad)


def randint(low: int, high: int | None = None, size: tuple = (), dtype=None,
            device=None) -> Tensor:
    """Random integers in [low, high) (or [0, low) when `high` is omitted), int64 by default."""
    if high is None:
        low, high = 0, low
    if low >= high:
        raise ValueError(f"randint: expected low < high, got low={low}, high={high}")
    dtype = backend.as_dtype(dtype) if dtype is not None else backend.int64
    return _random(lambda rng, s, d: rng.integers(low, high, size=s).astype(d), (size,), dtype,
                   device, False)


def _random(draw, size, dtype, device, requires_grad) -> Tensor:
    device = Device(device) if device is not None else backend.get_default_device()
    dtype = backend.as_dtype(dtype) if dtype is not None else backend.get_default_dtype()
    with backend.device_context(device):
        array = draw(backend.generator(device), _shape_of(size), dtype)
    return Tensor(array, requires_grad=requires_grad)


def linspace(start: float, end: float, steps: int, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """`steps` evenly spaced values from start to end, both included."""
    values = np.linspace(start, end, steps)
    return tensor(values, dtype=dtype or backend.get_default_dtype(), device=device,
                  requires_grad=requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A CPU tensor sharing the NumPy array's memory (and dtype), as torch.from_numpy."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    if array.dtype.kind not in NUMERIC_KINDS:
        raise TypeError(_not_numeric("from_numpy", array.dtype))
    return Tensor(array)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """`data` as a tensor, sharing memory when it already is an array of that dtype and
    device (a Tensor is returned as it is then), else a copy."""
    if device is None and backend.get_default_device() != backend.CPU and not isinstance(
            data, Tensor):
        device = backend.get_default_device()  # (torch.set_default_device)
    if isinstance(data, Tensor):
        if (dtype is None or data.dtype == backend.as_dtype(dtype)) and (
                device is None or data.device == Device(device)):
            return data
        data = data.array
    if backend.is_array(data) and data.dtype.kind not in NUMERIC_KINDS:
        raise TypeError(_not_numeric("as_tensor", data.dtype))
    if backend.is_array(data) and (dtype is None or data.dtype == backend.as_dtype(dtype)) and (
            device is None or backend.device_of(data) == Device(device)):
        return Tensor(data)
    return tensor(data, dtype=dtype, device=device)


def randn_like(other: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return randn(*other.shape, dtype=dtype or other.dtype, device=device or other.device,
                 requires_grad=requires_grad)


def rand_like(other: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return rand(*other.shape, dtype=dtype or other.dtype, device=device or other.device,
                requires_grad=requires_grad)
