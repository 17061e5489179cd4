"""Matrix products: `a @ b` with NumPy's rules for 1-D operands, batches and broadcasting."""

from __future__ import annotations

from minigrad import amp
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.backend import matmul as matmul_arrays
from minigrad.ops.broadcast import broadcast_shape, unbroadcast
from minigrad.ops.registry import tensor_method
from minigrad.tensor import Tensor


class MatMul(Function):
    """out = a @ b over the last two dims; leading (batch) dims broadcast.

    A 1-D `a` is a row (1, K) and a 1-D `b` a column (K, 1), and that dim is dropped from the
    output; the backward puts it back before the two products
        grad_a = grad @ b^T        grad_b = a^T @ grad
    and sums each over the batch dims its input was broadcast along.
    """

    twice_differentiable = True

    @staticmethod
    def forward(ctx, a, b):
        # a's gradient reads b and b's reads a: keep only what a wanted gradient will read
        needs_a, needs_b = ctx.needs_input_grad
        ctx.save_for_backward(a if needs_b else None, b if needs_a else None)
        ctx.a_shape, ctx.b_shape = a.shape, b.shape
        return matmul_arrays(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        xp = get_array_module(grad)
        a_shape, b_shape = ctx.a_shape, ctx.b_shape
        a2_shape = (1, *a_shape) if len(a_shape) == 1 else a_shape  # (..., M, K)
        b2_shape = (*b_shape, 1) if len(b_shape) == 1 else b_shape  # (..., K, N)
        if len(b_shape) == 1:
            grad = grad[..., None]
        if len(a_shape) == 1:
            grad = grad[..., None, :]  # grad: (..., M, N)
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            b2 = b.reshape(b2_shape)
            grad_a = unbroadcast(matmul_arrays(grad, xp.swapaxes(b2, -1, -2)), a2_shape)
            grad_a = grad_a.reshape(a_shape)
        if ctx.needs_input_grad[1]:
            a2 = a.reshape(a2_shape)
            grad_b = unbroadcast(matmul_arrays(xp.swapaxes(a2, -1, -2), grad), b2_shape)
            grad_b = grad_b.reshape(b_shape)
        return grad_a, grad_b


class Linear(Function):
    """out = x @ weight^T + bias, for x (..., in_features) and weight (out_features, in_features).

    Backward, with the leading dims of x and g flattened into one batch dim B:
        grad_x = g @ weight      grad_weight = g^T (out, B) @ x (B, in)      grad_bias = sum_B g
    """

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        # x's gradient reads the weight, the weight's reads x: keep only what will be read
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None,
                              weight if ctx.needs_input_grad[0] else None)
        out = matmul_arrays(x, weight.T)
        if bias is not None:
            out += bias
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = matmul_arrays(grad, weight)
        g2 = grad.reshape(-1, grad.shape[-1])  # (B, out)
        if ctx.needs_input_grad[1]:
            grad_weight = matmul_arrays(g2.T, x.reshape(-1, x.shape[-1]))
        has_bias = len(ctx.needs_input_grad) == 3
        if has_bias and ctx.needs_input_grad[2]:
            grad_bias = g2.sum(axis=0)
        return (grad_x, grad_weight, grad_bias) if has_bias else (grad_x, grad_weight)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, checked: x's last dim must equal weight's in_features."""
    x_shape, w_shape = x.array.shape, weight.array.shape  # (arrays': no Size on a hot path)
    if len(w_shape) != 2 or not x_shape or x_shape[-1] != w_shape[1]:
        raise ValueError(
            f"linear: input of shape {x.shape} has {x.shape[-1] if x.ndim else 0} features in "
            f"its last dim, but the weight {weight.shape} expects {weight.shape[-1]}"
        )
    if bias is not None and bias.array.shape != (w_shape[0],):
        raise ValueError(f"linear: bias has shape {bias.shape}, expected ({weight.shape[0]},)")
    x, weight, bias = amp.lower_precision(x, weight, bias)  # float16 inside mg.autocast
    inputs = (x, weight) if bias is None else (x, weight, bias)
    _same_dtype("linear", *inputs)
    return Linear.apply(*inputs)


def _same_dtype(op: str, *tensors: Tensor) -> None:
    """PyTorch's matrix products take no mixed dtypes (a float64 input into a float32 layer is
    a mistake to report, not to promote silently)."""
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1:
        raise RuntimeError(f"{op}: expected all operands to have the same dtype, but got "
                           f"{' and '.join(str(t.dtype) for t in tensors)}; convert them with "
                           ".float() or .double()")


@tensor_method()
def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product, checked: inner dims must agree and batch dims broadcast."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(
            f"matmul: expected two tensors, got {type(a).__name__} and {type(b).__name__}"
        )
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(
            f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}"
        )
    inner_a = a.shape[-1]
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise ValueError(
            f"matmul: cannot multiply shapes {a.shape} and {b.shape}: the inner dimensions "
            f"{inner_a} and {inner_b} differ"
        )
    broadcast_shape("matmul (batch dimensions)", a.shape[:-2], b.shape[:-2])
    a, b = amp.lower_precision(a, b)  # float16 inside mg.autocast
    _same_dtype("matmul", a, b)
    return MatMul.apply(a, b)


@tensor_method()
def mm(a: Tensor, b: Tensor) -> Tensor:
    """The product of two matrices (2-D only, as torch.mm)."""
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"mm: expected two matrices, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)


@tensor_method()
def bmm(a: Tensor, b: Tensor) -> Tensor:
    """Batched matrix products of (B, n, m) and (B, m, p), as torch.bmm (no broadcasting)."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise ValueError(f"bmm: expected (B, n, m) and (B, m, p), got {a.shape} and {b.shape}")
    return matmul(a, b)
