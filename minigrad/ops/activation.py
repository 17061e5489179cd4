"""Activations: relu, sigmoid, tanh, and the numerically stable softmax and log_softmax."""

from __future__ import annotations

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.ops import fast
from minigrad.ops.dims import normalize_dim
from minigrad.ops.elementwise import as_floating
from minigrad.ops.registry import tensor_method
from minigrad.tensor import Tensor


class ReLU(Function):
    @staticmethod
    def forward(ctx, x):
        out = get_array_module(x).maximum(x, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        # a multiply by the mask (much faster than where()); "not <= 0" rather than "> 0" so
        # that a NaN passes its gradient on, as in PyTorch
        return grad * ~(out <= 0)


class LeakyReLU(Function):
    @staticmethod
    def forward(ctx, x, negative_slope):
        ctx.save_for_backward(x > 0)
        ctx.negative_slope = negative_slope
        return get_array_module(x).where(x > 0, x, x * negative_slope)

    @staticmethod
    def backward(ctx, grad):
        (positive,) = ctx.saved_tensors
        return get_array_module(grad).where(positive, grad, grad * ctx.negative_slope)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        # 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) for x < 0: exp never overflows
        xp = get_array_module(x)
        e = xp.exp(-abs(x))
        out = xp.where(x >= 0, 1, e) / (1 + e)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out * (1 - out)


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        out = get_array_module(x).tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * (1 - out * out)


class Softmax(Function):
    """exp(x) / sum(exp(x)) along `dim`, shifted by the max so that exp never overflows."""

    @staticmethod
    def forward(ctx, x, dim):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=dim, keepdims=True))
        out = e / e.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(out)
        ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx, grad):
        # dx_i = y_i * (g_i - sum_j g_j y_j)
        (out,) = ctx.saved_tensors
        return out * (grad - (grad * out).sum(axis=ctx.dim, keepdims=True))


class LogSoftmax(Function):
    """x - logsumexp(x) along `dim`."""

    @staticmethod
    def forward(ctx, x, dim):
        xp = get_array_module(x)
        shifted = x - x.max(axis=dim, keepdims=True)
        out = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        ctx.save_for_backward(out)
        ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx, grad):
        # dx_i = g_i - softmax_i * sum_j g_j
        (out,) = ctx.saved_tensors
        softmax = get_array_module(out).exp(out)
        return grad - softmax * grad.sum(axis=ctx.dim, keepdims=True)


@tensor_method()
def relu(x: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0). `inplace=True` is accepted for PyTorch code (`F.relu(x, inplace=True)`) and
    gives the same result, computed out of place: minigrad frees a tensor that no backward
    saved as soon as it is dropped, so writing into it would save no memory."""
    return fast.select(ReLU, x).apply(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, else negative_slope * x."""
    return LeakyReLU.apply(x, negative_slope=negative_slope)


@tensor_method()
def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid.apply(as_floating(x))


@tensor_method()
def tanh(x: Tensor) -> Tensor:
    return Tanh.apply(as_floating(x))


@tensor_method()
def softmax(x: Tensor, dim: int) -> Tensor:
    return Softmax.apply(as_floating(x), dim=normalize_dim("softmax", dim, x.ndim))


@tensor_method()
def log_softmax(x: Tensor, dim: int) -> Tensor:
    return LogSoftmax.apply(as_floating(x), dim=normalize_dim("log_softmax", dim, x.ndim))
