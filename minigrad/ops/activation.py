"""Activations: relu, sigmoid, tanh, the numerically stable softmax and log_softmax, and the
smooth and clipped relatives of relu: gelu, elu, silu, softplus, hardtanh, relu6, prelu."""

from __future__ import annotations

import math

import numpy as np

from minigrad import amp, backend
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.ops import fast
from minigrad.ops.dims import normalize_dim
from minigrad.ops.elementwise import as_floating, exp, where
from minigrad.ops.reduce import in_float32
from minigrad.ops.registry import tensor_method
from minigrad.tensor import Tensor


class ReLU(Function):
    twice_differentiable = True

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
    twice_differentiable = True

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
    twice_differentiable = True

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
    twice_differentiable = True

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

    twice_differentiable = True

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

    twice_differentiable = True

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


def _erf(x):
    """The error function, elementwise. On a GPU, CuPy's. On the CPU (NumPy has none): for
    float64, Python's math.erf for each element (exact; slow on large arrays); for float32,
    erf = 1 - erfc with Numerical Recipes' Chebyshev fit of erfc, whose error (below 1e-7
    everywhere) is under float32's own rounding."""
    if isinstance(x, np.generic):  # NumPy turns 0-d results into scalars
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        from cupyx.scipy.special import erf

        return erf(x)
    if x.dtype == np.float64:
        return np.array(np.frompyfunc(math.erf, 1, 1)(x), dtype=x.dtype)
    z = np.abs(x).astype(np.float64)  # (in float64, so that only the fit's error remains)
    t = 1 / (1 + 0.5 * z)
    coefficients = (0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807,
                    -0.18628806, 0.09678418, 0.37409196, 1.00002368, -1.26551223)
    poly = np.full_like(t, coefficients[0])
    for c in coefficients[1:]:  # Horner: -1.26551223 + t (1.00002368 + t (0.37409196 + ...))
        poly = poly * t + c
    erfc = t * np.exp(-z * z + poly)
    return (np.sign(x) * (1 - erfc)).astype(x.dtype)


class Erf(Function):
    """The error function; its derivative is 2 / sqrt(pi) e^(-x^2)."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _erf(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (2 / math.sqrt(math.pi)) * get_array_module(grad).exp(-x * x)


@tensor_method()
def erf(x: Tensor) -> Tensor:
    return Erf.apply(as_floating(x))


def _gelu_formula(x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1 + tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return x * 0.5 * (1 + erf(x / math.sqrt(2)))


class GELU(Function):
    """x * Phi(x), Phi the standard normal's distribution function (PyTorch's exact GELU;
    approximate="tanh" gives 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))))."""

    formula = staticmethod(_gelu_formula)

    @staticmethod
    def forward(ctx, x, approximate):
        xp = get_array_module(x)
        if approximate == "tanh":
            inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
            t = xp.tanh(inner)
            ctx.save_for_backward(x, t)
            ctx.approximate = approximate
            return 0.5 * x * (1 + t)
        cdf = 0.5 * (1 + _erf(x / math.sqrt(2)))
        ctx.save_for_backward(x, cdf)
        ctx.approximate = approximate
        return x * cdf

    @staticmethod
    def backward(ctx, grad):
        x, saved = ctx.saved_tensors
        xp = get_array_module(grad)
        if ctx.approximate == "tanh":  # d/dx of 0.5 x (1 + t)
            d_inner = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x**2)
            return grad * (0.5 * (1 + saved) + 0.5 * x * (1 - saved**2) * d_inner)
        pdf = xp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return grad * (saved + x * pdf)  # Phi(x) + x phi(x)


class ELU(Function):
    """x where x > 0, else alpha (e^x - 1)."""

    @staticmethod
    def formula(x, alpha):  # (where, not minimum, whose tie at 0 would halve the slope)
        return where(x > 0, x, alpha * (exp(where(x > 0, 0.0, x)) - 1))

    @staticmethod
    def forward(ctx, x, alpha):
        xp = get_array_module(x)
        negative = alpha * xp.expm1(xp.minimum(x, 0))
        ctx.save_for_backward(x > 0, negative)
        ctx.alpha = alpha
        return xp.where(x > 0, x, negative)

    @staticmethod
    def backward(ctx, grad):
        positive, negative = ctx.saved_tensors  # below 0 the slope is alpha e^x = out + alpha
        return get_array_module(grad).where(positive, grad, grad * (negative + ctx.alpha))


class SiLU(Function):
    """x * sigmoid(x) (also called swish)."""

    formula = staticmethod(lambda x: x * sigmoid(x))

    @staticmethod
    def forward(ctx, x):
        xp = get_array_module(x)
        e = xp.exp(-abs(x))
        s = xp.where(x >= 0, 1, e) / (1 + e)  # sigmoid, stable both ways
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved_tensors
        return grad * s * (1 + x * (1 - s))


class Softplus(Function):
    """log(1 + e^(beta x)) / beta, and x itself where beta x > threshold (as PyTorch)."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, beta, threshold):
        xp = get_array_module(x)
        z = beta * x
        linear = z > threshold
        # log(1 + e^z) = max(z, 0) + log1p(e^-|z|): no overflow for large z
        out = xp.where(linear, x, (xp.maximum(z, 0) + xp.log1p(xp.exp(-abs(z)))) / beta)
        ctx.save_for_backward(x, linear)
        ctx.beta = beta
        return out

    @staticmethod
    def backward(ctx, grad):  # the slope is sigmoid(beta x), the Function (smooth at 0)
        x, linear = ctx.saved_tensors
        return grad * get_array_module(grad).where(linear, 1, Sigmoid.run(ctx.beta * x))


class Hardtanh(Function):
    """x clipped to [min_val, max_val]; the gradient passes strictly inside only (PyTorch)."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, min_val, max_val):
        ctx.save_for_backward((x > min_val) & (x < max_val))
        return get_array_module(x).clip(x, min_val, max_val)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside


class PReLU(Function):
    """x where x > 0, else weight * x, with a learned slope: one for all channels, or one per
    channel (dim 1)."""

    @staticmethod
    def formula(x, weight):
        slope = weight.reshape((1, -1) + (1,) * (x.ndim - 2)) if weight.numel() > 1 else weight
        return where(x > 0, x, slope * x)

    @staticmethod
    def forward(ctx, x, weight):
        slope = weight.reshape((1, -1) + (1,) * (x.ndim - 2)) if weight.size > 1 else weight
        ctx.save_for_backward(x, slope)
        ctx.weight_shape = weight.shape
        return get_array_module(x).where(x > 0, x, slope * x)

    @staticmethod
    def backward(ctx, grad):
        x, slope = ctx.saved_tensors
        xp = get_array_module(grad)
        grad_x = xp.where(x > 0, grad, grad * slope) if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            per_element = xp.where(x > 0, 0, grad * x)
            axes = tuple(k for k in range(x.ndim) if k != 1 or slope.size == 1)
            grad_w = per_element.sum(axis=axes).reshape(ctx.weight_shape)
        return grad_x, grad_w


@tensor_method()
def relu(x: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0). `inplace=True` is accepted for PyTorch code (`F.relu(x, inplace=True)`) and
    gives the same result, computed out of place: minigrad frees a tensor that no backward
    saved as soon as it is dropped, so writing into it would save no memory."""
    return fast.select(ReLU, x, _facts(x)).apply(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, else negative_slope * x. `inplace=True` is accepted and gives the same
    result, computed out of place (as relu's)."""
    return LeakyReLU.apply(x, negative_slope=negative_slope)


def _facts(x: Tensor) -> dict:
    """What a fast path may need to know of the input to say whether it handles it."""
    return {"dtype": x.dtype, "ndim": x.ndim}


@tensor_method()
def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid.apply(as_floating(x))


@tensor_method()
def tanh(x: Tensor) -> Tensor:
    return Tanh.apply(as_floating(x))


@tensor_method()
def softmax(x: Tensor, dim: int) -> Tensor:
    x = as_floating(amp.full_precision_one(x))  # float32 inside mg.autocast
    if x.dtype == backend.float16:  # summed in float32: 70000 terms of e^0 = 1 overflow float16
        return in_float32(softmax, x, dim)
    dim = normalize_dim("softmax", dim, x.ndim)
    return fast.select(Softmax, x, _facts(x), dim=dim).apply(x, dim=dim)


@tensor_method()
def log_softmax(x: Tensor, dim: int) -> Tensor:
    x = as_floating(amp.full_precision_one(x))
    if x.dtype == backend.float16:  # summed in float32, as softmax
        return in_float32(log_softmax, x, dim)
    dim = normalize_dim("log_softmax", dim, x.ndim)
    return fast.select(LogSoftmax, x, _facts(x), dim=dim).apply(x, dim=dim)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    x = as_floating(x)
    return fast.select(GELU, x, _facts(x), approximate=approximate).apply(
        x, approximate=approximate)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    return ELU.apply(as_floating(x), alpha=alpha)


def silu(x: Tensor) -> Tensor:
    x = as_floating(x)
    return fast.select(SiLU, x, _facts(x)).apply(x)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return Softplus.apply(as_floating(x), beta=beta, threshold=threshold)


def hardtanh(x: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) must not exceed max_val ({max_val})")
    return Hardtanh.apply(as_floating(x), min_val=min_val, max_val=max_val)


def relu6(x: Tensor) -> Tensor:
    """min(max(x, 0), 6): hardtanh between 0 and 6."""
    return hardtanh(x, 0.0, 6.0)


def prelu(x: Tensor, weight: Tensor) -> Tensor:
    if weight.ndim != 1 or (weight.numel() != 1 and (x.ndim < 2 or weight.numel() != x.shape[1])):
        raise ValueError(f"prelu: weight of shape {tuple(weight.shape)} must hold 1 slope or one "
                         f"per channel (dim 1) of the input {tuple(x.shape)}")
    return PReLU.apply(as_floating(x), weight)
