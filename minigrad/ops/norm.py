"""Batch normalization over (N, C) or (N, C, H, W), per channel C.

Training: normalise with the batch's mean and (biased) variance, and update the running
estimates in place (the running variance takes the unbiased estimate, as PyTorch's does):
    x_hat = (x - mean) / sqrt(var + eps)          out = weight * x_hat + bias
Eval: the same with the running mean and variance, which are then constants.

The training backward is the fused closed form (m = elements per channel, sums per channel):
    grad_x = weight / sqrt(var + eps) / m * (m * g - sum(g) - x_hat * sum(g * x_hat))
    grad_weight = sum(g * x_hat)          grad_bias = sum(g)

This is the reference; on CUDA a fast path (ops/fast/cuda_norm.py) does each elementwise half
in one kernel, chosen in `batch_norm` and tested against BatchNorm here.

`momentum` is a number, or a 0-d array on x's device (the cumulative average of
momentum=None, 1 / batches seen, computed there so that no step waits to read it).
"""

from __future__ import annotations

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.ops import fast


def statistics(x, axes, running_mean, running_var, training, momentum, eps):
    """(mean, 1 / sqrt(var + eps)) per channel: the batch's when training (and the running
    estimates updated in place), else the running estimates."""
    xp = get_array_module(x)
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        if running_mean is not None:
            m = x.size // x.shape[1]
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * var * (m / max(m - 1, 1))
    else:
        mean, var = running_mean, running_var
    return mean, 1 / xp.sqrt(var + eps)


class BatchNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, *, running_mean, running_var, training, momentum, eps):
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)  # broadcasts a (C,) vector over x
        mean, inv_std = statistics(x, axes, running_mean, running_var, training, momentum, eps)
        x_hat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
        ctx.save_for_backward(x_hat, inv_std, weight)
        ctx.axes, ctx.shape, ctx.training = axes, shape, training
        return x_hat * weight.reshape(shape) + bias.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        x_hat, inv_std, weight = ctx.saved_tensors
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


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5):
    """PyTorch's F.batch_norm. running_mean/running_var are Tensors (or None when training
    with batch statistics only); they are updated in place during training."""
    from minigrad.tensor import ones, zeros

    if x.ndim == 3:  # (N, C, L), as BatchNorm1d takes it: the same as (N, C, L, 1)
        n, c, length = x.shape
        out = batch_norm(x.reshape(n, c, length, 1), running_mean, running_var, weight, bias,
                         training, momentum, eps)
        return out.reshape(n, c, length)
    if x.ndim not in (2, 4):
        raise ValueError(f"batch_norm: expected a 2-D (N, C), 3-D (N, C, L) or 4-D (N, C, H, W) "
                         f"input, got shape {x.shape}")
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
    settings = dict(running_mean=None if running_mean is None else running_mean.array,
                    running_var=None if running_var is None else running_var.array,
                    training=training, momentum=momentum, eps=eps)
    return fast.select(BatchNorm, x, **settings).apply(x, weight, bias, **settings)
