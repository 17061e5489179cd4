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

Layer, group and batch norm compute a float16 input's statistics in float32 and round the
output to float16 (`in_float32`), as PyTorch's CPU kernels do.
"""

from __future__ import annotations

from minigrad import amp, backend
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.ops import fast
from minigrad.ops.reduce import in_float32


def statistics(x, axes, running_mean, running_var, training, momentum, eps):
    """(mean, 1 / sqrt(var + eps)) per channel: the batch's when training (and the running
    estimates updated in place), else the running estimates."""
    xp = get_array_module(x)
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        update_running_statistics(running_mean, running_var, mean, var, x.size // x.shape[1],
                                  momentum)
    else:
        mean, var = running_mean, running_var
    return mean, 1 / xp.sqrt(var + eps)


def update_running_statistics(running_mean, running_var, mean, var, m: int, momentum) -> None:
    """Move the running estimates (if any) towards the batch's mean and variance, in place; the
    variance of m values per channel enters unbiased, as in PyTorch."""
    if running_mean is not None:
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += momentum * var * (m / max(m - 1, 1))


def batch_norm_formula(x, weight, bias, *, running_mean, running_var, training, momentum, eps):
    """BatchNorm's forward again, in twice-differentiable ops on Tensors, for a second
    derivative (the running statistics are read, never updated, here)."""
    from minigrad.tensor import Tensor

    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
    if training:
        mean = x.mean(axes, keepdim=True)
        var = ((x - mean) ** 2).mean(axes, keepdim=True)
    else:
        mean, var = (Tensor(s.astype(x.dtype, copy=False)).reshape(shape)
                     for s in (running_mean, running_var))
    x_hat = (x - mean) / (var + eps).sqrt()
    return x_hat * weight.reshape(shape) + bias.reshape(shape)


def standardize_formula(x, axes, eps):
    """Standardize's forward again, in twice-differentiable ops on Tensors."""
    centered = x - x.mean(axes, keepdim=True)
    return centered / ((centered * centered).mean(axes, keepdim=True) + eps).sqrt()


class BatchNorm(Function):
    formula = staticmethod(batch_norm_formula)  # a second derivative's way (autograd/higher.py)

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
    from minigrad.ops.elementwise import cast
    from minigrad.tensor import ones, zeros

    x32 = amp.full_precision_one(x)
    if x32 is not x:  # float16 inside mg.autocast: statistics in float32, the output as x
        return cast(batch_norm(x32, running_mean, running_var, weight, bias, training, momentum,
                               eps), x.dtype)
    if x.dtype == backend.float16:  # x, weight and bias in float32; the running statistics
        def in_place(x, weight, bias):  # stay float16 tensors, updated in place
            return batch_norm(x, running_mean, running_var, weight, bias, training, momentum,
                              eps)

        return in_float32(in_place, x, weight, bias)
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
    # in eval mode the running statistics are constants of this call: copies (C numbers), so
    # that a later training step, which updates them in place, cannot change this one's
    # second derivative (recomputed from them, ops/normalization.batch_norm_formula)
    def statistic(t):
        return None if t is None else t.array if training else t.array.copy()

    settings = dict(running_mean=statistic(running_mean), running_var=statistic(running_var),
                    training=training, momentum=momentum, eps=eps)
    return fast.select(BatchNorm, x, dict(dtype=x.dtype), **settings).apply(x, weight, bias,
                                                                       **settings)


class Standardize(Function):
    """(x - mean) / sqrt(var + eps) over `axes` (the biased variance): the core of layer norm
    and group norm, which then scale and shift the result with ordinary, differentiable ops.

    Backward, with y the output and every mean taken over `axes`:
        dx = (g - mean(g) - y * mean(g * y)) / sqrt(var + eps)
    """

    formula = staticmethod(standardize_formula)

    @staticmethod
    def forward(ctx, x, axes, eps):
        xp = get_array_module(x)
        centered = x - x.mean(axis=axes, keepdims=True)
        inv_std = 1 / xp.sqrt((centered * centered).mean(axis=axes, keepdims=True) + eps)
        out = centered * inv_std
        ctx.save_for_backward(out, inv_std)
        ctx.axes = axes
        return out

    @staticmethod
    def backward(ctx, grad):
        out, inv_std = ctx.saved_tensors
        axes = ctx.axes
        return (grad - grad.mean(axis=axes, keepdims=True)
                - out * (grad * out).mean(axis=axes, keepdims=True)) * inv_std


def _affine(x, weight, bias, shape):
    """weight and bias for a fast path that always takes both: ones and zeros where absent."""
    from minigrad.tensor import ones, zeros

    return (weight if weight is not None else ones(*shape, dtype=x.dtype, device=x.device),
            bias if bias is not None else zeros(*shape, dtype=x.dtype, device=x.device))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Normalise over the last len(normalized_shape) dims of each sample, then scale by
    `weight` and shift by `bias` (each of normalized_shape), as torch.nn.functional."""
    x, weight, bias = amp.full_precision(x, weight, bias)  # float32 inside mg.autocast
    if x.dtype == backend.float16:
        return in_float32(layer_norm, x, normalized_shape, weight, bias, eps)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[x.ndim - len(shape):]) != shape or len(shape) > x.ndim:
        raise ValueError(f"layer_norm: normalized_shape {shape} must be the last dims of the "
                         f"input, whose shape is {tuple(x.shape)}")
    for name, tensor in (("weight", weight), ("bias", bias)):
        if tensor is not None and tuple(tensor.shape) != shape:
            raise ValueError(f"layer_norm: {name} has shape {tuple(tensor.shape)}, expected "
                             f"{shape}")
    fused = fast.select(Standardize, x, dict(dtype=x.dtype), kind="layer")
    if fused is not Standardize:  # a fast path that also scales and shifts
        return fused.apply(x, *_affine(x, weight, bias, shape), normalized_ndim=len(shape),
                           eps=eps)
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    out = Standardize.apply(x, axes=axes, eps=eps)
    if weight is not None:
        out = out * weight
    return out + bias if bias is not None else out


def group_norm(x, num_groups: int, weight=None, bias=None, eps: float = 1e-5):
    """Split the channels (dim 1) into num_groups groups and normalise each group of each
    sample over its channels and positions; then a per-channel scale and shift."""
    x, weight, bias = amp.full_precision(x, weight, bias)  # float32 inside mg.autocast
    if x.dtype == backend.float16:
        return in_float32(group_norm, x, num_groups, weight, bias, eps)
    if x.ndim < 2 or x.shape[1] % num_groups:
        raise ValueError(f"group_norm: the {x.shape[1] if x.ndim > 1 else '?'} channels of the "
                         f"input {tuple(x.shape)} do not split into {num_groups} groups")
    n, c = x.shape[:2]
    fused = fast.select(Standardize, x, dict(dtype=x.dtype), kind="group")
    if fused is not Standardize:
        return fused.apply(x, *_affine(x, weight, bias, (c,)), num_groups=num_groups, eps=eps)
    out = Standardize.apply(x.reshape(n, num_groups, -1), axes=(2,), eps=eps).reshape(x.shape)
    per_channel = (1, c) + (1,) * (x.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(per_channel)
    return out + bias.reshape(per_channel) if bias is not None else out


def instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats: bool = True, momentum: float = 0.1, eps: float = 1e-5):
    """PyTorch's F.instance_norm: each channel of each sample normalised over its positions
    (group norm with a group per channel), then a per-channel scale and shift. With running
    statistics, training (use_input_stats) also updates them in place, by the mean over the
    batch of each instance's mean and unbiased variance; use_input_stats=False normalises by
    them instead (batch norm in eval mode)."""
    from minigrad.autograd import no_grad

    if x.ndim < 3:
        raise ValueError(f"instance_norm: expected an input (N, C, ...) with positions, got "
                         f"shape {tuple(x.shape)}")
    c = x.shape[1]
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise ValueError("instance_norm: use_input_stats=False needs running_mean and "
                             "running_var")
        flat = x.reshape(x.shape[0], c, 1, -1)  # (batch norm's layout, whatever the dims)
        return batch_norm(flat, running_mean, running_var, weight, bias, False, momentum,
                          eps).reshape(x.shape)
    if running_mean is not None or running_var is not None:
        with no_grad():
            axes = tuple(range(2, x.ndim))
            count = x.numel() // (x.shape[0] * c)
            mean = x.detach().mean(axes).mean(0)
            var = x.detach().var(axes, correction=1 if count > 1 else 0).mean(0)
            for running, stat in ((running_mean, mean), (running_var, var)):
                if running is not None:
                    running.mul_(1 - momentum).add_(stat.to(running.dtype) * momentum)
    return group_norm(x, c, weight, bias, eps)
