"""Batch normalization over (N, C) or (N, C, H, W), per channel C.

Training: normalise with the batch's mean and (biased) variance, and update the running
estimates in place (the running variance takes the unbiased estimate, as PyTorch's does):
    x_hat = (x - mean) / sqrt(var + eps)          out = weight * x_hat + bias
Eval: the same with the running mean and variance, which are then constants.

The training backward is the fused closed form (m = elements per channel, sums per channel):
    grad_x = weight / sqrt(var + eps) / m * (m * g - sum(g) - x_hat * sum(g * x_hat))
    grad_weight = sum(g * x_hat)          grad_bias = sum(g)
"""

from __future__ import annotations

import numpy as np

from minigrad import kernels
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.kernels import norm as cuda_kernels


class BatchNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, *, running_mean, running_var, training, momentum, eps):
        xp = get_array_module(x)
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)  # broadcasts a (C,) vector over x
        fused = kernels.enabled() and xp is not np
        x_cm = _channel_major(x) if fused else None
        if training:
            mean = x_cm.mean(axis=1) if fused else x.mean(axis=axes)
            var = x_cm.var(axis=1) if fused else x.var(axis=axes)
            if running_mean is not None:
                m = x.size // x.shape[1]
                running_mean *= 1 - momentum
                running_mean += momentum * mean
                running_var *= 1 - momentum
                running_var += momentum * var * (m / max(m - 1, 1))
        else:
            mean, var = running_mean, running_var
        inv_std = 1 / xp.sqrt(var + eps)
        ctx.axes, ctx.shape, ctx.training, ctx.fused = axes, shape, training, fused
        if fused:  # one CUDA kernel on (C, N*H*W)
            out, x_hat = cuda_kernels.normalize(x_cm, mean, inv_std, weight, bias)
            ctx.save_for_backward(x_hat, inv_std, weight)
            return _from_channel_major(out, x.shape)
        x_hat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
        ctx.save_for_backward(x_hat, inv_std, weight)
        return x_hat * weight.reshape(shape) + bias.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        x_hat, inv_std, weight = ctx.saved_tensors
        if ctx.fused:
            return _fused_backward(ctx, grad, x_hat, inv_std, weight)
        axes, shape = ctx.axes, ctx.shape
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            scale = (weight * inv_std).reshape(shape)
            if ctx.training:
                m = grad.size // grad.shape[1]
                sum_g = grad.sum(axis=axes).reshape(shape)
                sum_g_xhat = (grad * x_hat).sum(axis=axes).reshape(shape)
                grad_x = scale / m * (m * grad - sum_g - x_hat * sum_g_xhat)
            else:
                grad_x = grad * scale
        if ctx.needs_input_grad[1]:
            grad_weight = (grad * x_hat).sum(axis=axes)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(axis=axes)
        return grad_x, grad_weight, grad_bias


def _channel_major(x):
    """(N, C) or (N, C, H, W) as a C-contiguous (C, M); free for conv2d's output layout."""
    xp = get_array_module(x)
    moved = x.T if x.ndim == 2 else x.transpose(1, 2, 3, 0)
    return xp.ascontiguousarray(moved).reshape(x.shape[1], -1)


def _from_channel_major(x_cm, shape):
    if len(shape) == 2:
        return x_cm.T
    n, c, h, w = shape
    return x_cm.reshape(c, h, w, n).transpose(3, 0, 1, 2)


def _fused_backward(ctx, grad, x_hat, inv_std, weight):
    """The same closed form as above, on (C, M) arrays, its last pass one CUDA kernel."""
    g = _channel_major(grad)
    sum_g, sum_g_xhat = g.sum(axis=1), (g * x_hat).sum(axis=1)
    grad_x = None
    if ctx.needs_input_grad[0]:
        if ctx.training:
            grad_x = cuda_kernels.normalize_backward(g, x_hat, weight * inv_std, sum_g,
                                                     sum_g_xhat)
        else:
            grad_x = g * (weight * inv_std)[:, None]
        grad_x = _from_channel_major(grad_x, grad.shape)
    return (grad_x, sum_g_xhat if ctx.needs_input_grad[1] else None,
            sum_g if ctx.needs_input_grad[2] else None)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5):
    """PyTorch's F.batch_norm. running_mean/running_var are Tensors (or None when training
    with batch statistics only); they are updated in place during training."""
    from minigrad.tensor import ones, zeros

    if x.ndim not in (2, 4):
        raise ValueError(f"batch_norm: expected a 2-D (N, C) or 4-D (N, C, H, W) input, got "
                         f"shape {x.shape}")
    channels = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (channels,):
            raise ValueError(f"batch_norm: {name} has shape {t.shape}, but the input {x.shape} "
                             f"has {channels} channels")
    if training and x.numel() // channels < 2:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input of shape {x.shape}")
    if not training and running_mean is None:
        raise ValueError("batch_norm: eval mode needs running_mean and running_var")
    weight = weight if weight is not None else ones(channels, dtype=x.dtype, device=x.device)
    bias = bias if bias is not None else zeros(channels, dtype=x.dtype, device=x.device)
    return BatchNorm.apply(
        x, weight, bias,
        running_mean=None if running_mean is None else running_mean.data,
        running_var=None if running_var is None else running_var.data,
        training=training, momentum=momentum, eps=eps,
    )
