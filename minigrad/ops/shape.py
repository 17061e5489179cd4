"""Shape ops: reshape/view/flatten, transpose/permute, squeeze/unsqueeze, expand, cat/stack,
and indexing (`x[...]`), whose gradient is scattered back to the indexed places.

Each moves or copies elements without changing them, so each backward moves the gradient
back the other way.
"""

from __future__ import annotations

import itertools
import math
import numbers

import numpy as np

from minigrad import backend
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.ops.broadcast import unbroadcast
from minigrad.ops.dims import normalize_dim
from minigrad.ops.elementwise import promote
from minigrad.ops.registry import tensor_method
from minigrad.tensor import Tensor


def _sizes(args: tuple) -> tuple:
    """Accept both `x.reshape(2, 3)` and `x.reshape((2, 3))`."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


class Reshape(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape)


class Permute(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, grad):
        inverse = [0] * len(ctx.dims)
        for position, dim in enumerate(ctx.dims):
            inverse[dim] = position
        return get_array_module(grad).transpose(grad, inverse)


class Expand(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return get_array_module(x).broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return unbroadcast(grad, ctx.shape)


@tensor_method("reshape", "view")
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


@tensor_method()
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


@tensor_method()
def permute(x: Tensor, *dims) -> Tensor:
    """Reorder the dimensions: output dimension i is input dimension dims[i]."""
    dims = tuple(normalize_dim("permute", d, x.ndim) for d in _sizes(dims))
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the {x.ndim} dims of {x.shape}")
    return Permute.apply(x, dims=dims)


@tensor_method()
def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dimensions."""
    dims = list(range(x.ndim))
    a, b = normalize_dim("transpose", dim0, x.ndim), normalize_dim("transpose", dim1, x.ndim)
    dims[a], dims[b] = dims[b], dims[a]
    return Permute.apply(x, dims=tuple(dims))


def T(x: Tensor) -> Tensor:  # noqa: N802 - PyTorch's name
    """All dimensions reversed (the matrix transpose for 2-D)."""
    return Permute.apply(x, dims=tuple(reversed(range(x.ndim))))


@tensor_method()
def squeeze(x: Tensor, dim=None) -> Tensor:
    """Drop dimensions of size 1 (all of them, or those in `dim` that have size 1)."""
    if dim is None:
        dims = range(x.ndim)
    else:
        dims = (dim,) if isinstance(dim, int) else dim
        dims = [normalize_dim("squeeze", d, x.ndim) for d in dims]
    drop = {d for d in dims if x.shape[d] == 1}
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in drop))


@tensor_method()
def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """Insert a dimension of size 1 at `dim`."""
    dim = normalize_dim("unsqueeze", dim, x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


@tensor_method()
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
    twice_differentiable = True

    @staticmethod
    def forward(ctx, *arrays, dim):
        ctx.dim = dim
        ctx.ends = list(itertools.accumulate(a.shape[dim] for a in arrays))
        return get_array_module(arrays[0]).concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        return tuple(get_array_module(grad).split(grad, ctx.ends[:-1], axis=ctx.dim))


class Stack(Function):
    twice_differentiable = True

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

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.index = x.shape, index
        ctx.advanced = any(backend.is_array(item) for item in index)
        return x[index]

    @staticmethod
    def backward(ctx, grad):
        return IndexAdd.run(grad, shape=ctx.shape, index=ctx.index, advanced=ctx.advanced)


class IndexAdd(Function):
    """Indexing's gradient: `grad` put into zeros of the input's shape at `index`, added up
    where an integer index repeats. Its own gradient is indexing again (each is the other's
    transpose), so both are twice differentiable, to any order."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, grad, shape, index, advanced):
        ctx.index = index
        grad_x = get_array_module(grad).zeros(shape, dtype=grad.dtype)
        if advanced:
            backend.scatter_add(grad_x, index, grad)
        else:
            grad_x[index] = grad
        return grad_x

    @staticmethod
    def backward(ctx, grad):
        return Index.run(grad, index=ctx.index)


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


# ---------------------------------------------------------------------------------------------
# selecting along a dim: gather and what is built on it (sort, topk), flips, repeats, splits


class Gather(Function):
    """out[..., i, ...] = x[..., index[..., i, ...], ...] along `dim` (index has out's shape).
    The gradient adds each output's gradient back at the place it was read from."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, index, dim):
        ctx.x_shape, ctx.dim, ctx.index = x.shape, dim, index
        ctx.save_for_backward(index)  # (so that a change of index in place is refused)
        # index may be shorter than x in the other dims: read the leading block of those
        block = tuple(slice(None) if k == dim else slice(0, n) for k, n in enumerate(index.shape))
        return get_array_module(x).take_along_axis(x[block], index, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        ctx.saved_tensors  # noqa: B018  (checks that index was not changed in place)
        # the full index of every output element: its own position, with `dim` from index
        where = backend.open_grid(get_array_module(ctx.index), ctx.index.shape)
        where[ctx.dim] = ctx.index
        return IndexAdd.run(grad, shape=ctx.x_shape, index=tuple(where), advanced=True), None


@tensor_method()
def gather(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """torch.gather: the elements of x at `index` along `dim`."""
    dim = normalize_dim("gather", dim, x.ndim)
    if not isinstance(index, Tensor) or index.dtype.kind not in "iu":
        raise TypeError("gather: index must be an integer tensor")
    if index.ndim != x.ndim or any(i > s for k, (i, s) in enumerate(zip(index.shape, x.shape))
                                   if k != dim):
        raise ValueError(f"gather: index of shape {index.shape} does not fit input {x.shape} "
                         f"along dim {dim}")
    return Gather.apply(x, index, dim=dim)


@tensor_method()
def sort(x: Tensor, dim: int = -1, descending: bool = False):
    """(values, indices) sorted along `dim` (stable), as torch.sort; values carry the gradient."""
    dim = normalize_dim("sort", dim, x.ndim)
    keys = -x.array if descending else x.array
    if isinstance(keys, np.ndarray):
        order = np.argsort(keys, axis=dim, kind="stable")
    else:  # CuPy's sort is always stable
        order = get_array_module(keys).argsort(keys, axis=dim)
    indices = Tensor(order.astype(backend.int64))
    return SortResult(gather(x, dim, indices), indices)


@tensor_method()
def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
    """(values, indices) of the k largest (or smallest) along `dim`, as torch.topk."""
    dim = normalize_dim("topk", dim, x.ndim)
    if not 0 <= k <= x.shape[dim]:
        raise ValueError(f"topk: k={k} is out of range for dim {dim} of size {x.shape[dim]}")
    values, indices = sort(x, dim, descending=largest)
    keep = (slice(None),) * dim + (slice(0, k),)
    return SortResult(values[keep], indices[keep])


class SortResult(tuple):
    """(values, indices), also readable as .values and .indices (as torch's return types)."""

    def __new__(cls, values, indices):
        return super().__new__(cls, (values, indices))

    values = property(lambda self: self[0])
    indices = property(lambda self: self[1])


@tensor_method()
def flip(x: Tensor, dims) -> Tensor:
    """The elements in reverse order along each of `dims`."""
    dims = [normalize_dim("flip", d, x.ndim) for d in (dims if isinstance(dims, (tuple, list))
                                                         else (dims,))]
    return x[tuple(slice(None, None, -1) if d in dims else slice(None) for d in range(x.ndim))]


@tensor_method()
def repeat(x: Tensor, *sizes) -> Tensor:
    """torch's repeat: x tiled sizes[i] times along dim i (leading sizes add dims)."""
    sizes = _sizes(sizes)
    if len(sizes) < x.ndim:
        raise ValueError(f"repeat: {len(sizes)} repeat counts for a tensor of {x.ndim} dims")
    shape = (1,) * (len(sizes) - x.ndim) + x.shape
    # (s0, s1, ...) -> (1, s0, 1, s1, ...) -> expand to (r0, s0, r1, s1, ...) -> (r0*s0, ...)
    interleaved = x.reshape(tuple(v for s in shape for v in (1, s)))
    tiled = interleaved.expand(tuple(v for r, s in zip(sizes, shape) for v in (r, s)))
    return tiled.reshape(tuple(r * s for r, s in zip(sizes, shape)))


@tensor_method()
def split(x: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Pieces of x along `dim`: of split_size each (the last may be smaller), or of the sizes
    listed."""
    dim = normalize_dim("split", dim, x.ndim)
    n = x.shape[dim]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size < 1:
            raise ValueError(f"split: split_size must be >= 1, got {size}")
        sections = [min(size, n - start) for start in range(0, n, size)] or [0]
    else:
        sections = list(split_size_or_sections)
        if sum(sections) != n:
            raise ValueError(f"split: sections {sections} do not add up to {n} (dim {dim})")
    starts = itertools.accumulate([0] + sections[:-1])
    return tuple(x[(slice(None),) * dim + (slice(s, s + size),)]
                 for s, size in zip(starts, sections))


@tensor_method()
def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple:
    """x split into `chunks` pieces of ceil(n / chunks) along `dim` (fewer if n is small)."""
    if chunks < 1:
        raise ValueError(f"chunk: chunks must be >= 1, got {chunks}")
    n = x.shape[normalize_dim("chunk", dim, x.ndim)]
    return split(x, max(1, math.ceil(n / chunks)), dim)


@tensor_method()
def index_select(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """The slices of x at the integer positions `index` (1-D) along `dim`."""
    dim = normalize_dim("index_select", dim, x.ndim)
    if not isinstance(index, Tensor) or index.ndim != 1:
        raise ValueError("index_select: index must be a 1-D integer tensor")
    return x[(slice(None),) * dim + (index,)]


@tensor_method()
def masked_fill(x: Tensor, mask: Tensor, value) -> Tensor:
    """x with `value` where the bool `mask` (broadcast) is True."""
    from minigrad.ops.elementwise import where

    return where(mask, value, x)


class Pad(Function):
    """x with `value` around its last dims; the gradient is the middle part of the output's."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, widths, value):
        ctx.inner = tuple(slice(before, before + n) for (before, _), n in zip(widths, x.shape))
        return get_array_module(x).pad(x, widths, constant_values=value)

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.inner]


def pad(x: Tensor, pad: tuple, mode: str = "constant", value: float = 0.0) -> Tensor:
    """torch's F.pad: `pad` lists (before, after) for the last dim, then the one before, ...
    Only the constant mode, with non-negative widths."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r}; minigrad pads with a constant only")
    if len(pad) % 2 or len(pad) // 2 > x.ndim or any(w < 0 for w in pad):
        raise ValueError(f"pad: {pad} must be (before, after) pairs, non-negative, for at most "
                         f"the {x.ndim} dims of {x.shape}")
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)][::-1]  # first dim first
    widths = ((0, 0),) * (x.ndim - len(pairs)) + tuple(pairs)
    return Pad.apply(x, widths=widths, value=value)


def one_hot(labels: Tensor, num_classes: int = -1) -> Tensor:
    """(..., num_classes) int64 rows with a 1 at each label (outside the graph)."""
    if not isinstance(labels, Tensor) or labels.dtype.kind not in "iu":
        raise TypeError("one_hot: expected an integer tensor of class indices")
    xp = get_array_module(labels.array)
    classes = int(labels.array.max()) + 1 if num_classes == -1 else num_classes
    if labels.array.size and (int(labels.array.min()) < 0 or int(labels.array.max()) >= classes):
        raise ValueError(f"one_hot: class values must be in [0, {classes})")
    return Tensor((labels.array[..., None] == xp.arange(classes)).astype(backend.int64))


@tensor_method("t")
def matrix_transpose(x: Tensor) -> Tensor:
    """x.t(): a matrix's transpose (a tensor of fewer than 2 dims as it is), as torch's."""
    if x.ndim > 2:
        raise ValueError(f"t: expects a tensor of at most 2 dims, got shape {x.shape}")
    return transpose(x, 0, 1) if x.ndim == 2 else x


@tensor_method()
def view_as(x: Tensor, other: Tensor) -> Tensor:
    return reshape(x, other.shape)


@tensor_method()
def new_zeros(x: Tensor, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Zeros of `size`, on x's device, of x's dtype unless another is given."""
    from minigrad.tensor import zeros

    return zeros(*size, dtype=dtype or x.dtype, device=device or x.device,
                 requires_grad=requires_grad)


@tensor_method()
def contiguous(x: Tensor) -> Tensor:
    """x itself: minigrad's ops take any memory layout."""
    return x


@tensor_method("movedim", "moveaxis")
def movedim(x: Tensor, source, destination) -> Tensor:
    """x with its dims `source` moved to the places `destination`, the others in order."""
    source = [source] if isinstance(source, int) else list(source)
    destination = [destination] if isinstance(destination, int) else list(destination)
    if len(source) != len(destination):
        raise ValueError(f"movedim: {len(source)} source dims for {len(destination)} "
                         "destinations")
    source = [normalize_dim("movedim", d, x.ndim) for d in source]
    destination = [normalize_dim("movedim", d, x.ndim) for d in destination]
    rest = iter(d for d in range(x.ndim) if d not in source)
    placed = dict(zip(destination, source))
    return permute(x, [placed[k] if k in placed else next(rest) for k in range(x.ndim)])


@tensor_method()
def reshape_as(x: Tensor, other: Tensor) -> Tensor:
    return reshape(x, other.shape)


@tensor_method()
def is_contiguous(x: Tensor, memory_format=None) -> bool:
    """Whether x's elements lie in memory in row-major order, without gaps (torch's meaning;
    minigrad's ops take any layout, so it is a question, never a requirement)."""
    return bool(x.array.flags.c_contiguous)


@tensor_method()
def new_tensor(x: Tensor, data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor of `data` (copied), with x's dtype and device unless given."""
    from minigrad.tensor import tensor

    if isinstance(data, Tensor):
        data = data.detach().numpy()
    return tensor(data, dtype=dtype or x.dtype, device=device or x.device,
                  requires_grad=requires_grad)


@tensor_method()
def new_ones(x: Tensor, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    from minigrad.tensor import ones

    return ones(*size, dtype=dtype or x.dtype, device=device or x.device,
                requires_grad=requires_grad)


@tensor_method()
def new_full(x: Tensor, size, fill_value, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    from minigrad.tensor import full

    return full(size, fill_value, dtype=dtype or x.dtype, device=device or x.device,
                requires_grad=requires_grad)


@tensor_method()
def new_empty(x: Tensor, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    from minigrad.tensor import empty

    return empty(*size, dtype=dtype or x.dtype, device=device or x.device,
                 requires_grad=requires_grad)
