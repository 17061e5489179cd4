"""Batch norm on CUDA: the reference's closed form (BatchNorm in ops/normalization.py) with each
elementwise half one kernel (normalise and scale in the forward; the gradient of x in the
backward), on (N, C) or NCHW arrays; the per-channel sums are CuPy reductions.
"""

from __future__ import annotations

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.kernels import norm as cuda_kernels
from minigrad.ops.normalization import BatchNorm, statistics


class BatchNormCUDA(Function):
    reference = BatchNorm

    @staticmethod
    def forward(ctx, x, weight, bias, *, running_mean, running_var, training, momentum, eps):
        xp = get_array_module(x)
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        mean, inv_std = statistics(x, axes, running_mean, running_var, training, momentum, eps)
        out, x_hat = xp.empty(x.shape, dtype=x.dtype), xp.empty(x.shape, dtype=x.dtype)
        cuda_kernels.normalize(x, mean, inv_std, weight, bias, out, x_hat)
        ctx.save_for_backward(x_hat, inv_std, weight)
        ctx.axes, ctx.training = axes, training
        return out

    @staticmethod
    def backward(ctx, grad):
        x_hat, inv_std, weight = ctx.saved_tensors
        xp = get_array_module(grad)
        sum_g, sum_g_xhat = grad.sum(axis=ctx.axes), (grad * x_hat).sum(axis=ctx.axes)
        grad_x = None
        if ctx.needs_input_grad[0]:
            scale = weight * inv_std
            if ctx.training:
                grad_x = xp.empty(grad.shape, dtype=grad.dtype)
                cuda_kernels.normalize_backward(grad, x_hat, scale, sum_g, sum_g_xhat, grad_x)
            else:
                grad_x = grad * scale.reshape((1, -1) + (1,) * (grad.ndim - 2))
        return (grad_x, sum_g_xhat if ctx.needs_input_grad[1] else None,
                sum_g if ctx.needs_input_grad[2] else None)
