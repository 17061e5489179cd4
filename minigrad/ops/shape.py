"""Shape ops: reshape/view/flatten, transpose/permute, squeeze/unsqueeze, expand, cat/stack,
and indexing (`x[...]`), whose gradient is scattered back to the indexed places.

Each moves or copies elements without changing them, so each backward moves the gradient
back the other way.
"""

from __future__ import annotations

import itertools
import math
import numbers

from minigrad import backend
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.ops.broadcast import unbroadcast
from minigrad.ops.dims import normalize_dim
from minigrad.ops.elementwise import promote
from minigrad.tensor import Tensor


def _sizes(args: tuple) -> tuple:
    """Accept both `x.reshape(2, 3)` and `x.reshape((2, 3))`."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape)


class Permute(Function):
    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, grad):
        inverse = [0] * len(ctx.dims)
        for position, dim in enumerate(ctx.dims):
            inverse[dim] = position
        return grad.transpose(inverse)


class Expand(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return get_array_module(x).broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return unbroadcast(grad, ctx.shape)


def reshape(x: Tensor, *shape) -> Tensor:
    """The same elements in a new shape; one dimension may be -1 (inferred)."""
    shape = tuple(int(n) for n in _sizes(shape))
    known = math.prod(n for n in shape if n != -1)
    fits = shape.count(-1) <= 1 and (
        known == x.array.size if -1 not in shape else known != 0 and x.array.size % known == 0
    )
    if not fits or any(n < -1 for n in shape):
        raise RuntimeError(
            f"reshape: cannot view a tensor of shape {x.shape} ({x.array.size} elements) "
            f"as shape {shape}"
        )
    return x if shape == x.shape else Reshape.apply(x, shape=shape)


view = reshape


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions start_dim..end_dim (inclusive) into one."""
    if x.ndim == 0:
        return reshape(x, 1)
    start = normalize_dim("flatten", start_dim, x.ndim)
    end = normalize_dim("flatten", end_dim, x.ndim)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    merged = math.prod(x.shape[start : end + 1])
    return reshape(x, x.shape[:start] + (merged,) + x.shape[end + 1 :])


def permute(x: Tensor, *dims) -> Tensor:
    """Reorder the dimensions: output dimension i is input dimension dims[i]."""
    dims = tuple(normalize_dim("permute", d, x.ndim) for d in _sizes(dims))
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the {x.ndim} dims of {x.shape}")
    return Permute.apply(x, dims=dims)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dimensions."""
    dims = list(range(x.ndim))
    a, b = normalize_dim("transpose", dim0, x.ndim), normalize_dim("transpose", dim1, x.ndim)
    dims[a], dims[b] = dims[b], dims[a]
    return Permute.apply(x, dims=tuple(dims))


def T(x: Tensor) -> Tensor:  # noqa: N802 - PyTorch's name
    """All dimensions reversed (the matrix transpose for 2-D)."""
    return Permute.apply(x, dims=tuple(reversed(range(x.ndim))))


def squeeze(x: Tensor, dim=None) -> Tensor:
    """Drop dimensions of size 1 (all of them, or those in `dim` that have size 1)."""
    if dim is None:
        dims = range(x.ndim)
    else:
        dims = (dim,) if isinstance(dim, int) else dim
        dims = [normalize_dim("squeeze", d, x.ndim) for d in dims]
    drop = {d for d in dims if x.shape[d] == 1}
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in drop))


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """Insert a dimension of size 1 at `dim`."""
    dim = normalize_dim("unsqueeze", dim, x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def expand(x: Tensor, *sizes) -> Tensor:
    """A broadcast view of `x` with the given sizes (-1 keeps a dimension's size)."""
    sizes = tuple(int(n) for n in _sizes(sizes))
    added = len(sizes) - x.ndim
    if added < 0:
        raise ValueError(f"expand: {sizes} has fewer dimensions than the tensor's shape {x.shape}")
    shape = tuple(
        x.shape[i - added] if n == -1 and i >= added else n for i, n in enumerate(sizes)
    )
    for i, n in enumerate(x.shape):
        if (n != 1 and n != shape[added + i]) or any(s < 0 for s in shape):
            raise ValueError(
                f"expand: cannot expand shape {x.shape} to {sizes}: a dimension of size {n} "
                "can only stay as it is, and only size-1 dimensions are stretched"
            )
    return Expand.apply(x, shape=shape)


# ---------------------------------------------------------------------------------------------
# joining


class Cat(Function):
    @staticmethod
    def forward(ctx, *arrays, dim):
        ctx.dim = dim
        ctx.ends = list(itertools.accumulate(a.shape[dim] for a in arrays))
        return get_array_module(arrays[0]).concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        return tuple(get_array_module(grad).split(grad, ctx.ends[:-1], axis=ctx.dim))


class Stack(Function):
    @staticmethod
    def forward(ctx, *arrays, dim):
        ctx.dim = dim
        return get_array_module(arrays[0]).stack(arrays, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        count = grad.shape[ctx.dim]
        before = (slice(None),) * ctx.dim
        return tuple(grad[before + (i,)] for i in range(count))


def _same_dtype(op: str, tensors) -> list:
    tensors = list(tensors)
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(f"{op}: expected a non-empty sequence of tensors")
    return list(promote(*tensors))


def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension; their other dimensions must agree."""
    tensors = _same_dtype("cat", tensors)
    first = tensors[0]
    dim = normalize_dim("cat", dim, first.ndim)
    for i, t in enumerate(tensors[1:], start=1):
        if t.ndim != first.ndim or any(
            a != b for d, (a, b) in enumerate(zip(t.shape, first.shape)) if d != dim
        ):
            raise ValueError(
                f"cat: tensor {i} has shape {t.shape} but tensor 0 has shape {first.shape}; "
                f"all dimensions except dim {dim} must match"
            )
    return Cat.apply(*tensors, dim=dim)


def stack(tensors, dim: int = 0) -> Tensor:
    """Join equally shaped tensors along a new dimension."""
    tensors = _same_dtype("stack", tensors)
    first = tensors[0]
    for i, t in enumerate(tensors[1:], start=1):
        if t.shape != first.shape:
            raise ValueError(
                f"stack: tensor {i} has shape {t.shape} but tensor 0 has shape {first.shape}; "
                "stack needs equal shapes"
            )
    return Stack.apply(*tensors, dim=normalize_dim("stack", dim, first.ndim + 1))


# ---------------------------------------------------------------------------------------------
# indexing


class Index(Function):
    """x[index] for basic (ints, slices, None, ...) and advanced (integer or bool arrays)
    indexing. Integer arrays may pick one element twice; its gradient then adds up."""

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.index = x.shape, index
        ctx.advanced = any(backend.is_array(item) for item in index)
        return x[index]

    @staticmethod
    def backward(ctx, grad):
        xp = get_array_module(grad)
        grad_x = xp.zeros(ctx.shape, dtype=grad.dtype)
        if ctx.advanced:
            backend.scatter_add(grad_x, ctx.index, grad)
        else:
            grad_x[ctx.index] = grad
        return grad_x


def index(x: Tensor, key) -> Tensor:
    """`x[key]`, with the index checked against x's shape before anything is read."""
    key = _normalize_index(x, key)
    _check_index(x, key)
    return Index.apply(x, index=key)


def _normalize_index(x: Tensor, key) -> tuple:
    """The index as a tuple of ints, slices, None, Ellipsis and arrays on x's device."""
    xp = get_array_module(x.array)
    items = key if isinstance(key, tuple) else (key,)
    normalized = []
    for item in items:
        if isinstance(item, Tensor):
            if item.device != x.device:
                raise RuntimeError(
                    f"index: the index tensor is on {item.device} but the tensor is on {x.device}"
                )
            item = item.array
        elif isinstance(item, list) or (
            backend.is_array(item) and backend.get_array_module(item) is not xp
        ):
            item = xp.asarray(item)
        if backend.is_array(item):
            if item.dtype.kind not in "iub":
                raise IndexError(
                    f"index: tensors used as indices must be integer or bool, got {item.dtype}"
                )
            if item.ndim == 0 and item.dtype.kind != "b":
                item = int(item)
        elif not (item is None or item is Ellipsis or isinstance(item, (slice, numbers.Integral))):
            raise IndexError(f"index: unsupported index {item!r} of type {type(item).__name__}")
        normalized.append(item)
    return tuple(normalized)


def _check_index(x: Tensor, key: tuple) -> None:
    """Raise IndexError for any integer out of range. CuPy would wrap such integer arrays
    around silently, so they are checked here on every device."""
    consumed = sum(
        item.ndim if backend.is_array(item) and item.dtype.kind == "b" else 1
        for item in key
        if item is not None and item is not Ellipsis
    )
    if consumed > x.ndim:
        raise IndexError(f"index: too many indices ({consumed}) for a tensor of shape {x.shape}")
    axis = 0
    for item in key:
        if item is None:
            continue
        if item is Ellipsis:
            axis += x.ndim - consumed
            continue
        if backend.is_array(item) and item.dtype.kind == "b":
            if item.shape != x.shape[axis : axis + item.ndim]:
                raise IndexError(
                    f"index: bool mask of shape {item.shape} does not match the tensor's "
                    f"dimensions {x.shape[axis : axis + item.ndim]} at axis {axis} "
                    f"(tensor shape {x.shape})"
                )
            axis += item.ndim
            continue
        if isinstance(item, slice) or (backend.is_array(item) and item.size == 0):
            axis += 1
            continue
        size = x.shape[axis]
        if isinstance(item, numbers.Integral):
            low = high = int(item)
        else:
            low, high = int(item.min()), int(item.max())
        if low < -size or high >= size:
            bad = low if low < -size else high
            raise IndexError(
                f"index: index {bad} is out of range for axis {axis} of size {x.shape[axis]} "
                f"(tensor shape {x.shape})"
            )
        axis += 1
