"""Writing into places, and arranging elements: `x[key] = value` on a tensor in the graph
(index_put), scatter, scatter_add, index_add; roll, tril/triu, diag, unfold, argsort.

Each is built on indexing's pair of ops (Index and IndexAdd in ops/shape.py: each the other's
transpose) or on one Function whose backward is made of them, so all are differentiable to
any order. A write replaces the old values at its places: they get no gradient there, the
written values get the gradient of the places they went to.
"""

from __future__ import annotations

import numpy as np

from minigrad import backend
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.ops.broadcast import unbroadcast
from minigrad.ops.dims import normalize_dim
from minigrad.ops.elementwise import where
from minigrad.ops.registry import tensor_method
from minigrad.ops.shape import Index, IndexAdd, _check_index, _normalize_index
from minigrad.tensor import Tensor


class IndexPut(Function):
    """out = x with out[key] = value (value broadcast to x[key]'s shape). x's gradient is the
    output's with zeros at the written places; value's is the output's at them (summed back
    over value's broadcast). Where an integer index repeats, the last write stays (NumPy's and
    PyTorch's CPU rule) and every written copy of value gets the place's gradient."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, value, key, advanced):
        xp = get_array_module(x)
        out = x.copy()
        out[key] = value
        ctx.key, ctx.value_shape, ctx.advanced = key, value.shape, advanced
        ctx.kept = xp.ones(x.shape, dtype=x.dtype)  # 1 where x's values are still in out
        ctx.kept[key] = 0
        return out

    @staticmethod
    def backward(ctx, grad):
        grad_x = grad * ctx.kept if ctx.needs_input_grad[0] else None
        grad_value = None
        if ctx.needs_input_grad[1]:
            grad_value = unbroadcast(Index.run(grad, index=ctx.key), ctx.value_shape)
        return grad_x, grad_value


def _value_for(op: str, x: Tensor, value) -> Tensor:
    """`value` as a tensor of x's dtype on x's device (a number, an array or a tensor)."""
    from minigrad.ops.elementwise import cast

    if not isinstance(value, Tensor):
        return Tensor(get_array_module(x.array).asarray(value, dtype=x.dtype))
    if value.device != x.device:
        raise RuntimeError(f"{op}: the value is on {value.device} but the tensor is on "
                           f"{x.device}")
    return value if value.dtype == x.dtype else cast(value, x.dtype)


def index_put(x: Tensor, key, value) -> Tensor:
    """A copy of x with x[key] = value, recorded: what `y[key] = value` does to a tensor in
    the graph (Tensor.__setitem__)."""
    key = _normalize_index(x, key)
    _check_index(x, key)
    value = _value_for("__setitem__", x, value)
    target = x.array[key].shape
    try:
        np.broadcast_shapes(value.shape, target)
    except ValueError:
        raise ValueError(f"__setitem__: a value of shape {value.shape} cannot be assigned to "
                         f"the indexed part of shape {target} (tensor shape {x.shape})") from None
    advanced = any(backend.is_array(item) for item in key)
    return IndexPut.apply(x, value, key=key, advanced=advanced)


def _along(op: str, x: Tensor, dim: int, index: Tensor, src_shape=None) -> tuple:
    """The full index (an open grid) of the places `index` names along `dim`, for scatter,
    after PyTorch's checks: an integer index with x's number of dims, no larger than x
    outside `dim` (and no larger than src anywhere)."""
    if not isinstance(index, Tensor) or index.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer tensor, got "
                        f"{index.dtype if isinstance(index, Tensor) else type(index).__name__}")
    if index.device != x.device:
        raise RuntimeError(f"{op}: index is on {index.device} but the tensor is on {x.device}")
    if index.ndim != x.ndim or any(i > s for k, (i, s) in enumerate(zip(index.shape, x.shape))
                                   if k != dim):
        raise ValueError(f"{op}: index of shape {index.shape} does not fit the tensor of shape "
                         f"{x.shape} along dim {dim}")
    if src_shape is not None and (len(src_shape) != index.ndim or any(
            i > s for i, s in zip(index.shape, src_shape))):
        raise ValueError(f"{op}: index of shape {index.shape} is larger than src of shape "
                         f"{src_shape}")
    if index.array.size and (int(index.array.min()) < -x.shape[dim]
                             or int(index.array.max()) >= x.shape[dim]):
        raise IndexError(f"{op}: index {int(index.array.max())} is out of bounds for dim "
                         f"{dim} of size {x.shape[dim]} (tensor shape {x.shape})")
    where = backend.open_grid(get_array_module(index.array), index.shape)
    where[dim] = index.array % x.shape[dim]  # (negative positions count from the end)
    return tuple(where)


def _source(op: str, x: Tensor, index: Tensor, src) -> Tensor:
    """scatter's values: the leading block of src that index covers, or the number."""
    if not isinstance(src, Tensor):
        xp = get_array_module(x.array)
        return Tensor(xp.full(index.shape, src, dtype=x.dtype))
    if src.dtype != x.dtype:
        raise RuntimeError(f"{op}: expected src of dtype {x.dtype} (the tensor's), got "
                           f"{src.dtype}")
    block = tuple(slice(0, n) for n in index.shape)
    return src if src.shape == index.shape else src[block]


@tensor_method()
def scatter(x: Tensor, dim: int, index: Tensor, src=None, *, value=None,
            reduce: str | None = None) -> Tensor:
    """torch.scatter: a copy of x with out[..., index[i], ...] = src[i] along `dim` (src a
    tensor, or a number: `value`). reduce="add" or "multiply" as torch's (deprecated there)."""
    dim = normalize_dim("scatter", dim, x.ndim)
    src = value if src is None else src
    if src is None:
        raise TypeError("scatter: give src (a tensor) or value (a number)")
    where = _along("scatter", x, dim, index, src.shape if isinstance(src, Tensor) else None)
    values = _source("scatter", x, index, src)
    if reduce == "add":
        return x + IndexAdd.apply(values, shape=x.shape, index=where, advanced=True)
    if reduce is not None:
        raise NotImplementedError(f"scatter: reduce={reduce!r}; minigrad has reduce='add' "
                                  "(and scatter_add)")
    return IndexPut.apply(x, values, key=where, advanced=True)


@tensor_method()
def scatter_add(x: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """torch.scatter_add: a copy of x with src[i] added at out[..., index[i], ...] along
    `dim`; repeated places add up."""
    dim = normalize_dim("scatter_add", dim, x.ndim)
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_add: src must be a tensor, got {type(src).__name__}")
    where = _along("scatter_add", x, dim, index, src.shape)
    values = _source("scatter_add", x, index, src)
    return x + IndexAdd.apply(values, shape=x.shape, index=where, advanced=True)


@tensor_method()
def index_add(x: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha=1) -> Tensor:
    """torch.index_add: a copy of x with alpha * source[i] added to x's slice index[i] along
    `dim` (index 1-D; repeated slices add up)."""
    dim = normalize_dim("index_add", dim, x.ndim)
    if not isinstance(index, Tensor) or index.ndim != 1 or index.dtype.kind not in "iu":
        raise TypeError("index_add: index must be a 1-D integer tensor")
    if not isinstance(source, Tensor):
        raise TypeError(f"index_add: source must be a tensor, got {type(source).__name__}")
    expected = x.shape[:dim] + (index.shape[0],) + x.shape[dim + 1:]
    if source.shape != expected:
        raise ValueError(f"index_add: source of shape {source.shape} does not fit; expected "
                         f"{expected} (tensor {x.shape}, {index.shape[0]} indices on dim {dim})")
    key = _normalize_index(x, (slice(None),) * dim + (index,))
    _check_index(x, key)
    if alpha != 1:
        source = source * alpha
    return x + IndexAdd.apply(source, shape=x.shape, index=key, advanced=True)


# ---------------------------------------------------------------------------------------------
# arranging: roll, the triangles, diagonals, sliding windows, argsort


@tensor_method()
def roll(x: Tensor, shifts, dims=None) -> Tensor:
    """torch.roll: elements moved `shifts` places along `dims`, those past the end coming
    round to the front (with no dims, over the flattened tensor, then the shape restored)."""
    if dims is None:
        if not isinstance(shifts, int):
            raise ValueError("roll: give dims for more than one shift")
        return roll(x.reshape(-1), shifts, 0).reshape(x.shape)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts) != len(dims):
        raise ValueError(f"roll: {len(shifts)} shifts for {len(dims)} dims")
    from minigrad.ops.shape import cat

    for shift, dim in zip(shifts, dims):
        dim = normalize_dim("roll", dim, x.ndim)
        n = x.shape[dim]
        if n == 0 or shift % n == 0:
            continue
        cut = n - shift % n  # the last shift elements move to the front
        before = (slice(None),) * dim
        x = cat([x[before + (slice(cut, None),)], x[before + (slice(0, cut),)]], dim)
    return x


def _triangle(op: str, x: Tensor, diagonal: int, lower: bool) -> Tensor:
    if x.ndim < 2:
        raise ValueError(f"{op}: expects a tensor of at least 2 dims, got shape {x.shape}")
    xp = get_array_module(x.array)
    rows, cols = x.shape[-2:]
    offset = xp.arange(cols)[None, :] - xp.arange(rows)[:, None]  # column minus row
    keep = offset <= diagonal if lower else offset >= diagonal
    return where(Tensor(keep), x, 0)


@tensor_method()
def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (on and below `diagonal`), zeros above."""
    return _triangle("tril", x, diagonal, lower=True)


@tensor_method()
def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (on and above `diagonal`), zeros below."""
    return _triangle("triu", x, diagonal, lower=False)


@tensor_method()
def diag(x: Tensor, diagonal: int = 0) -> Tensor:
    """torch.diag: of a vector, the square matrix with it on `diagonal`; of a matrix, its
    `diagonal` as a vector."""
    xp = get_array_module(x.array)
    if x.ndim == 1:
        n = x.shape[0] + abs(diagonal)
        rows = xp.arange(x.shape[0]) + max(-diagonal, 0)
        return IndexAdd.apply(x, shape=(n, n), index=(rows, rows + diagonal), advanced=True)
    if x.ndim == 2:
        rows, cols = x.shape
        length = max(0, min(rows + min(diagonal, 0), cols - max(diagonal, 0)))
        start = xp.arange(length)
        return x[Tensor(start + max(-diagonal, 0)), Tensor(start + max(diagonal, 0))]
    raise ValueError(f"diag: expects a 1-D or 2-D tensor, got shape {x.shape}")


@tensor_method()
def unfold(x: Tensor, dimension: int, size: int, step: int) -> Tensor:
    """Tensor.unfold: the windows of `size` elements, `step` apart, along `dimension`: that
    dim becomes the number of windows and a last dim of `size` is added."""
    dim = normalize_dim("unfold", dimension, x.ndim)
    n = x.shape[dim] if x.ndim else 1
    if size > n or size < 0 or step < 1:
        raise RuntimeError(f"unfold: size {size} and step {step} do not fit dim {dim} of size "
                           f"{n} (tensor shape {x.shape}); need 0 <= size <= {n} and step > 0")
    xp = get_array_module(x.array)
    count = (n - size) // step + 1
    where = xp.arange(count)[:, None] * step + xp.arange(size)[None, :]  # (windows, size)
    windows = x[(slice(None),) * dim + (Tensor(where),)]  # (..., windows, size, ...)
    return windows.movedim(dim + 1, -1) if dim + 1 != windows.ndim - 1 else windows


@tensor_method()
def argsort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The int64 positions that sort x along `dim` (stably: ties keep their order)."""
    from minigrad.ops.shape import sort

    return sort(x, dim, descending).indices
