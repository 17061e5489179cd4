"""Reductions: sum, mean, max/min (amax/amin), var/std, logsumexp, argmax/argmin.

Each takes `dim` (None for all axes, an int or a tuple) and `keepdim`, as in PyTorch. The
gradient of a reduction is the output's gradient spread back over the axes it reduced.
A float16 tensor is reduced in float32 and the result rounded to float16 (`in_float32`).
"""

from __future__ import annotations

import builtins
import math
from collections import namedtuple

import numpy as np

from minigrad import amp, backend
from minigrad.autograd import Function
from minigrad.backend import get_array_module, is_array
from minigrad.ops.dims import normalize_dim, normalize_dims
from minigrad.ops.registry import tensor_method
from minigrad.tensor import Tensor

values_indices_max = namedtuple("max", ["values", "indices"])
values_indices_min = namedtuple("min", ["values", "indices"])


def _spread(grad, shape: tuple, axes: tuple, keepdim: bool):
    """The gradient of a reduction over `axes`, broadcast back to the input's `shape`.

    Returns a new array (not a read-only broadcast view), since it may become a `.grad`; on
    Tensors (a recorded backward) the broadcast is an Expand node of its own.
    """
    xp = get_array_module(grad)
    if not keepdim:
        grad = xp.expand_dims(grad, axes)
    spread = xp.broadcast_to(grad, shape)
    return spread.copy() if is_array(spread) else spread


def _drop_axes(out, axes: tuple):
    """A keepdims=True result without its reduced axes (each of size 1)."""
    return out.reshape([n for i, n in enumerate(out.shape) if i not in axes])


def in_float32(op, *args, **kwargs):
    """`op(*args, **kwargs)` with its float16 tensors cast to float32 and its result cast back
    to float16, as PyTorch's CPU float16 reductions and losses accumulate in float32: in float16
    a sum past 65504 is inf, a count n past 65504 is inf (so 1 / n is 0), and a long sum loses
    its small terms. The casts carry the gradient both ways."""
    from minigrad.ops.elementwise import cast

    def widened(value):
        is_half = isinstance(value, Tensor) and value.dtype == backend.float16
        return cast(value, backend.float32) if is_half else value

    out = op(*[widened(a) for a in args], **{k: widened(v) for k, v in kwargs.items()})
    return cast(out, backend.float16)


def _is_half(x: Tensor) -> bool:
    return x.dtype == backend.float16


def _check_floating(op: str, x: Tensor) -> None:
    if not backend.is_floating(x.dtype):
        raise TypeError(f"{op}: expected a floating-point tensor, got dtype {x.dtype}")


class Sum(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        return x.sum(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):
        return _spread(grad, ctx.shape, ctx.axes, ctx.keepdim)


class Mean(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        ctx.count = math.prod(x.shape[a] for a in axes)  # a Python int: keeps float32 float32
        return x.mean(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):
        return _spread(grad / ctx.count, ctx.shape, ctx.axes, ctx.keepdim)


class Amax(Function):
    """The largest (or, with largest=False, smallest) element over `axes`.

    Where several elements tie for it, the gradient is shared evenly among them, as PyTorch's
    `amax` and full `max()` do (a NaN is the extremum; several NaNs share the gradient).
    """

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, axes, keepdim, largest=True):
        out = x.max(axis=axes, keepdims=True) if largest else x.min(axis=axes, keepdims=True)
        ctx.axes, ctx.keepdim, ctx.kept_shape = axes, keepdim, out.shape
        result = out if keepdim else _drop_axes(out, axes)
        ctx.save_for_backward(x, result)  # the output itself: a second derivative reads it
        return result

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        if not ctx.keepdim:
            grad, out = grad.reshape(ctx.kept_shape), out.reshape(ctx.kept_shape)
        xp = get_array_module(x)
        # a NaN is the extremum wherever there is one (PyTorch's rule): the NaNs share it
        winners = xp.where(xp.isnan(out), xp.isnan(x), x == out)
        count = winners.sum(axis=ctx.axes, keepdims=True)
        return winners * (grad / xp.asarray(count, dtype=grad.dtype))


class MaxAlongDim(Function):
    """`x.max(dim)` / `x.min(dim)`: the value at the arg-max index, which gets all the gradient."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, dim, keepdim, largest=True):
        xp = get_array_module(x)
        index = x.argmax(axis=dim, keepdims=True) if largest else x.argmin(axis=dim, keepdims=True)
        ctx.save_for_backward(index)
        ctx.shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        values = xp.take_along_axis(x, index, axis=dim)
        return values if keepdim else values.squeeze(dim)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        xp = get_array_module(grad)
        if not ctx.keepdim:
            grad = xp.expand_dims(grad, ctx.dim)
        positions = xp.arange(ctx.shape[ctx.dim]).reshape(
            [-1 if i == ctx.dim else 1 for i in range(len(ctx.shape))]
        )
        return (positions == index) * grad


def _variance(ctx, x, axes, keepdim, correction):
    """sum((x - mean)^2) / (n - correction) over `axes`, and x - mean."""
    centered = x - x.mean(axis=axes, keepdims=True)
    ctx.divisor = builtins.max(math.prod(x.shape[a] for a in axes) - correction, 0)
    ctx.axes, ctx.keepdim = axes, keepdim
    with np.errstate(divide="ignore", invalid="ignore"):
        return centered, (centered * centered).sum(axis=axes, keepdims=keepdim) / ctx.divisor


class Var(Function):
    """Variance over `axes` with Bessel's `correction` (1: unbiased, PyTorch's default)."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, axes, keepdim, correction):
        _, var = _variance(ctx, x, axes, keepdim, correction)
        ctx.save_for_backward(x)  # x, not x - mean: a second derivative goes through the mean
        return var

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        centered = x - x.mean(axis=ctx.axes, keepdims=True)
        if not ctx.keepdim:
            grad = get_array_module(grad).expand_dims(grad, ctx.axes)
        return grad * (2 * centered / ctx.divisor)


class Std(Function):
    """Standard deviation, the square root of the variance. Its gradient is
    (x - mean) / (divisor * std), taken as 0 where std is 0 (a constant), as PyTorch does,
    rather than 0 / 0."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, axes, keepdim, correction):
        _, var = _variance(ctx, x, axes, keepdim, correction)
        out = get_array_module(x).sqrt(var)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        xp = get_array_module(grad)
        centered = x - x.mean(axis=ctx.axes, keepdims=True)
        if not ctx.keepdim:
            grad, out = xp.expand_dims(grad, ctx.axes), xp.expand_dims(out, ctx.axes)
        # 0 where std is 0, and no 0 / 0 even inside where (its gradient would be nan)
        with np.errstate(divide="ignore", invalid="ignore"):  # (a divisor of 0: nan, as torch)
            local = xp.where(out == 0, 0, centered / (ctx.divisor * xp.where(out == 0, 1, out)))
        return grad * local


class LogSumExp(Function):
    """log(sum(exp(x))) over `axes`, computed as m + log(sum(exp(x - m))) with m the max, so
    that no exp overflows."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        xp = get_array_module(x)
        shift = x.max(axis=axes, keepdims=True)
        shift = xp.where(xp.isfinite(shift), shift, 0)  # rows of -inf give -inf, not nan
        with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer there
            out = xp.log(xp.exp(x - shift).sum(axis=axes, keepdims=True)) + shift
        ctx.keepdim, ctx.kept_shape = keepdim, out.shape
        result = out if keepdim else _drop_axes(out, axes)
        ctx.save_for_backward(x, result)
        return result

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        if not ctx.keepdim:
            grad, out = grad.reshape(ctx.kept_shape), out.reshape(ctx.kept_shape)
        return grad * get_array_module(x).exp(x - out)  # softmax(x) * grad


def _aliases(op: str, dim, keepdim, axis, keepdims):
    """dim and keepdim, given also as NumPy's axis and keepdims (torch takes both spellings)."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: got both dim and its alias axis")
        dim = axis
    return dim, (keepdim or bool(keepdims))


@tensor_method()
def sum(x: Tensor, dim=None, keepdim: bool = False, *, axis=None,  # noqa: A001 - torch's name
        keepdims: bool = False) -> Tensor:
    dim, keepdim = _aliases("sum", dim, keepdim, axis, keepdims)
    x = amp.full_precision_one(x)  # float32 inside mg.autocast
    if _is_half(x):
        return in_float32(sum, x, dim, keepdim)
    axes = normalize_dims("sum", dim, x.ndim)
    if x.dtype.kind in "biu":  # PyTorch sums bools and every integer type as int64
        x = x.to(backend.int64)
    return Sum.apply(x, axes=axes, keepdim=keepdim)


@tensor_method()
def mean(x: Tensor, dim=None, keepdim: bool = False, *, axis=None,
         keepdims: bool = False) -> Tensor:
    dim, keepdim = _aliases("mean", dim, keepdim, axis, keepdims)
    _check_floating("mean", x)
    if _is_half(x):
        return in_float32(mean, x, dim, keepdim)
    return Mean.apply(x, axes=normalize_dims("mean", dim, x.ndim), keepdim=keepdim)


def _extremum(op: str, x: Tensor, dim, keepdim: bool, largest: bool):
    if x.array.size == 0:
        raise RuntimeError(f"{op}: the tensor of shape {x.shape} is empty")
    if dim is None:
        return Amax.apply(x, axes=tuple(range(x.ndim)), keepdim=False, largest=largest)
    dim = normalize_dim(op, dim, x.ndim)
    values = MaxAlongDim.apply(x, dim=dim, keepdim=keepdim, largest=largest)
    indices = (argmax if largest else argmin)(x, dim, keepdim)
    return (values_indices_max if largest else values_indices_min)(values, indices)


@tensor_method()
def max(x: Tensor, dim: int | None = None, keepdim: bool = False):  # noqa: A001
    """The largest element; with `dim`, a (values, indices) pair along that axis; with
    another tensor (`max(a, b)`), the elementwise maximum, as torch's overload."""
    if isinstance(dim, Tensor):
        from minigrad.ops.elementwise import maximum

        return maximum(x, dim)
    return _extremum("max", x, dim, keepdim, largest=True)


@tensor_method()
def min(x: Tensor, dim: int | None = None, keepdim: bool = False):  # noqa: A001
    """The smallest element; with `dim`, a (values, indices) pair along that axis; with
    another tensor (`min(a, b)`), the elementwise minimum, as torch's overload."""
    if isinstance(dim, Tensor):
        from minigrad.ops.elementwise import minimum

        return minimum(x, dim)
    return _extremum("min", x, dim, keepdim, largest=False)


@tensor_method()
def amax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return Amax.apply(x, axes=normalize_dims("amax", dim, x.ndim), keepdim=keepdim, largest=True)


@tensor_method()
def amin(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return Amax.apply(x, axes=normalize_dims("amin", dim, x.ndim), keepdim=keepdim, largest=False)


def _correction(op: str, dim, unbiased, correction):
    """PyTorch's overloads: (dim, unbiased), (unbiased) with no dim, or correction=."""
    if isinstance(dim, bool):  # var(unbiased): PyTorch's overload with no dim
        if unbiased is not None:
            raise TypeError(f"{op}: got unbiased twice ({dim!r} and {unbiased!r})")
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: give unbiased or correction, not both")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return dim, correction


@tensor_method()
def var(x: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: int | None = None) -> Tensor:
    """Variance, with PyTorch's argument order: `var(dim, unbiased, keepdim)`, `var(unbiased)`
    or `var(dim, correction=c, keepdim=...)`. `unbiased=True` (or `correction=1`, the default)
    divides by n - 1; `unbiased=False` (`correction=0`) by n."""
    _check_floating("var", x)
    if _is_half(x):
        return in_float32(var, x, dim, unbiased, keepdim, correction=correction)
    dim, correction = _correction("var", dim, unbiased, correction)
    axes = normalize_dims("var", dim, x.ndim)
    return Var.apply(x, axes=axes, keepdim=keepdim, correction=correction)


@tensor_method()
def std(x: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: int | None = None) -> Tensor:
    """Standard deviation, with the arguments of `var`."""
    _check_floating("std", x)
    if _is_half(x):
        return in_float32(std, x, dim, unbiased, keepdim, correction=correction)
    dim, correction = _correction("std", dim, unbiased, correction)
    axes = normalize_dims("std", dim, x.ndim)
    return Std.apply(x, axes=axes, keepdim=keepdim, correction=correction)


@tensor_method()
def logsumexp(x: Tensor, dim, keepdim: bool = False) -> Tensor:
    x = amp.full_precision_one(x)
    _check_floating("logsumexp", x)
    if _is_half(x):
        return in_float32(logsumexp, x, dim, keepdim)
    return LogSumExp.apply(x, axes=normalize_dims("logsumexp", dim, x.ndim), keepdim=keepdim)


@tensor_method()
def argmax(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the largest element (of the flattened tensor when `dim` is None)."""
    if dim is None:  # over the flattened tensor; keepdim keeps every dim, as size 1
        index = get_array_module(x.array).asarray(x.array.argmax()).astype(backend.int64)
        return Tensor(index.reshape((1,) * x.ndim) if keepdim else index)
    dim = normalize_dim("argmax", dim, x.ndim)
    return Tensor(x.array.argmax(axis=dim, keepdims=keepdim).astype(backend.int64))


@tensor_method()
def argmin(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the smallest element (of the flattened tensor when `dim` is None)."""
    if dim is None:  # over the flattened tensor; keepdim keeps every dim, as size 1
        index = get_array_module(x.array).asarray(x.array.argmin()).astype(backend.int64)
        return Tensor(index.reshape((1,) * x.ndim) if keepdim else index)
    dim = normalize_dim("argmin", dim, x.ndim)
    return Tensor(x.array.argmin(axis=dim, keepdims=keepdim).astype(backend.int64))


@tensor_method()
def all(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001
    axes = normalize_dims("all", dim, x.ndim)
    return Tensor(get_array_module(x.array).asarray(x.array.all(axis=axes, keepdims=keepdim)))


@tensor_method()
def any(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001
    axes = normalize_dims("any", dim, x.ndim)
    return Tensor(get_array_module(x.array).asarray(x.array.any(axis=axes, keepdims=keepdim)))


class CumSum(Function):
    """Running sums along `dim`; the gradient is the running sum of the gradient taken from
    the other end."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        return x.cumsum(axis=dim)

    @staticmethod
    def backward(ctx, grad):
        xp = get_array_module(grad)
        return xp.flip(xp.cumsum(xp.flip(grad, axis=ctx.dim), axis=ctx.dim), axis=ctx.dim)


@tensor_method()
def cumsum(x: Tensor, dim: int) -> Tensor:
    x = amp.full_precision_one(x)
    if x.dtype.kind in "biu":  # as sum: integers add up as int64
        x = x.to(backend.int64)
    if _is_half(x):
        return in_float32(cumsum, x, dim)
    return CumSum.apply(x, dim=normalize_dim("cumsum", dim, x.ndim))


class Norm(Function):
    """The p-norm (sum |x|^p)^(1/p) over `axes`, for a finite p other than 0. Its gradient
        sign(x) * (|x| / norm)^(p - 1)
    is taken as 0 where x is 0 and where the norm is 0, as PyTorch does: the zero subgradient
    of the norm at x = 0 rather than 0 / 0 (and, for p < 1, rather than an infinite slope)."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, axes, keepdim, p):
        xp = get_array_module(x)
        if p == 2:
            out = xp.sqrt((x * x).sum(axis=axes, keepdims=True))
        else:
            out = (xp.abs(x) ** p).sum(axis=axes, keepdims=True) ** (1 / p)
        ctx.keepdim, ctx.p, ctx.kept_shape = keepdim, p, out.shape
        result = out if keepdim else _drop_axes(out, axes)
        ctx.save_for_backward(x, result)
        return result

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        xp = get_array_module(x)
        if not ctx.keepdim:
            grad, out = grad.reshape(ctx.kept_shape), out.reshape(ctx.kept_shape)
        # no 0 / 0 (nor 0^-k) even inside where: its gradient, for a second derivative, is nan
        zero = out == 0
        safe_out = xp.where(zero, 1, out)
        if ctx.p == 2:  # x / norm: no kink at x = 0 for a second derivative to miss
            return grad * xp.where(zero, 0, x / safe_out)
        masked = (x == 0) | zero
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            slope = xp.sign(x) * (xp.abs(xp.where(masked, 1, x)) / safe_out) ** (ctx.p - 1)
        return grad * xp.where(masked, 0, slope)


@tensor_method()
def norm(x: Tensor, p=2, dim=None, keepdim: bool = False) -> Tensor:
    """The p-norm over `dim` (all elements by default): (sum |x|^p)^(1/p). p = inf is the
    largest |x|, -inf the smallest, 0 the count of nonzero elements (with no gradient)."""
    x = amp.full_precision_one(x)
    _check_floating("norm", x)
    if p == "fro":  # the Frobenius norm: the 2-norm of all the elements (of `dim`)
        p = 2
    if isinstance(p, str):
        raise ValueError(f"norm: p must be a number or 'fro', got {p!r} (the nuclear norm is "
                         "not implemented)")
    if _is_half(x):
        return in_float32(norm, x, p, dim, keepdim)
    axes = normalize_dims("norm", dim, x.ndim)
    if p in (math.inf, -math.inf):
        return Amax.apply(x.abs(), axes=axes, keepdim=keepdim, largest=p > 0)
    if p == 0:
        return (x != 0).to(x.dtype).sum(dim=dim, keepdim=keepdim)
    return Norm.apply(x, axes=axes, keepdim=keepdim, p=p)


def normalize(x: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """x divided by its p-norm along `dim` (at least eps), as torch's F.normalize."""
    return x / norm(x, p, dim, keepdim=True).clamp(min=eps)


def _products_of_the_others(x, axis: int):
    """For each element, the product of the other elements along `axis`: exclusive running
    products from both ends multiplied, exact even where x has zeros (out / x would not be)."""
    xp = get_array_module(x)
    ones = xp.ones_like(xp.take(x, [0], axis=axis))
    before = xp.concatenate([ones, xp.cumprod(x, axis=axis)], axis=axis)
    after = xp.flip(xp.concatenate([ones, xp.cumprod(xp.flip(x, axis=axis), axis=axis)],
                                   axis=axis), axis=axis)
    n = x.shape[axis]
    take = [slice(None)] * x.ndim
    take[axis] = slice(0, n)
    left = before[tuple(take)]
    take[axis] = slice(1, n + 1)
    return left * after[tuple(take)]


class Prod(Function):
    """The product over `dim` (all elements when None); each element's gradient is the product
    of the others."""

    @staticmethod
    def formula(x, dim, keepdim):
        """The product as a chain of multiplications, one per element along dim: exact where
        x has zeros, as the backward's running products are."""
        if dim is None:
            x, dim = x.reshape(-1), 0
        before = (slice(None),) * dim
        out = x[before + (slice(0, 1),)]
        for i in range(1, x.shape[dim]):
            out = out * x[before + (slice(i, i + 1),)]
        return out if keepdim else out.squeeze(dim)

    @staticmethod
    def forward(ctx, x, dim, keepdim):
        ctx.save_for_backward(x)
        ctx.dim, ctx.keepdim = dim, keepdim
        return x.prod(axis=dim, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        xp = get_array_module(grad)
        if ctx.dim is None:
            others = _products_of_the_others(x.reshape(-1), 0).reshape(x.shape)
            return grad * others
        if not ctx.keepdim:
            grad = xp.expand_dims(grad, ctx.dim)
        return grad * _products_of_the_others(x, ctx.dim)


@tensor_method()
def prod(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """The product of the elements (along `dim`); integers multiply as int64, as in torch."""
    x = amp.full_precision_one(x)
    if x.dtype.kind in "biu":
        x = x.to(backend.int64)
    dim = None if dim is None else normalize_dim("prod", dim, x.ndim)
    return Prod.apply(x, dim=dim, keepdim=keepdim and dim is not None)
