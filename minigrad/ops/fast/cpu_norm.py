"""Layer, group and batch norm on the CPU, for float32: each way one compiled kernel
(minigrad/kernels/cpu.py) that takes the statistics, normalizes and applies the scale and
shift in two passes over the data, where the reference (ops/normalization.py) takes about a dozen
NumPy passes and, for layer and group norm, separate ops for the scale and the shift.

The mathematics is the reference's: x_hat = (x - mean) / sqrt(var + eps) with the biased
variance, out = weight * x_hat + bias, and the closed-form backward
    dx = rstd * (g w - mean(g w) - x_hat * mean(g w x_hat))
    dweight = sum(g x_hat)      dbias = sum(g)
The forward saves x and the per-row (or per-channel) mean and 1/std rather than x_hat; the
backward recomputes x_hat in its loop. Weight and bias are always passed (ones and zeros when
the caller has none, which then want no gradient).
"""

from __future__ import annotations

import numpy as np

from minigrad.autograd import Function
from minigrad.kernels import cpu as kernels
from minigrad.ops.fast.cpu_activation import compiled_float32, row_parts
from minigrad.ops.fast.cpu_pool import same_layout
from minigrad.ops.normalization import (
    BatchNorm,
    Standardize,
    standardize_formula,
    update_running_statistics,
)


class LayerNormCPU(Function):
    """layer_norm over the last `normalized_ndim` dims, scale and shift included."""

    reference = Standardize

    @staticmethod
    def formula(x, weight, bias, *, normalized_ndim, eps):
        axes = tuple(range(x.ndim - normalized_ndim, x.ndim))
        return standardize_formula(x, axes, eps) * weight + bias

    @staticmethod
    def supports(kind=None, dtype=None, **_):
        return kind == "layer" and compiled_float32(dtype)

    @staticmethod
    def forward(ctx, x, weight, bias, *, normalized_ndim, eps):
        width = int(np.prod(x.shape[x.ndim - normalized_ndim:]))
        rows = np.ascontiguousarray(x).reshape(-1, width)
        out = np.empty(rows.shape, dtype=x.dtype)
        mean = np.empty(rows.shape[0], dtype=np.float64)
        rstd = np.empty(rows.shape[0], dtype=np.float64)
        weight_row, bias_row = weight.reshape(-1), bias.reshape(-1)
        kernels.run_split(kernels.layer_norm, [  # rows shared out over threads
            (rows[a:z], weight_row, bias_row, out[a:z], mean[a:z], rstd[a:z], eps)
            for a, z in row_parts(rows)])
        ctx.save_for_backward(rows, weight, mean, rstd)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        rows, weight, mean, rstd = ctx.saved_tensors
        g = np.ascontiguousarray(grad).reshape(rows.shape)
        dx = np.empty_like(rows)
        jobs = row_parts(rows)
        dw, db = np.zeros((2, len(jobs), rows.shape[1]))  # each thread's sums over its rows
        weight_row = weight.reshape(-1)
        kernels.run_split(kernels.layer_norm_backward, [
            (rows[a:z], g[a:z], weight_row, mean[a:z], rstd[a:z], dx[a:z], dw[k], db[k])
            for k, (a, z) in enumerate(jobs)])
        needs = ctx.needs_input_grad
        return (dx.reshape(grad.shape) if needs[0] else None,
                dw.sum(0).astype(weight.dtype).reshape(weight.shape) if needs[1] else None,
                db.sum(0).astype(weight.dtype).reshape(weight.shape) if needs[2] else None)


class GroupNormCPU(Function):
    """group_norm of x (N, C, *) in `num_groups` groups, per-channel scale and shift."""

    reference = Standardize

    @staticmethod
    def formula(x, weight, bias, *, num_groups, eps):
        n, c = x.shape[:2]
        out = standardize_formula(x.reshape(n, num_groups, -1), (2,), eps).reshape(x.shape)
        per_channel = (1, c) + (1,) * (x.ndim - 2)
        return out * weight.reshape(per_channel) + bias.reshape(per_channel)

    @staticmethod
    def supports(kind=None, dtype=None, **_):
        return kind == "group" and compiled_float32(dtype)

    @staticmethod
    def forward(ctx, x, weight, bias, *, num_groups, eps):
        n, c = x.shape[:2]
        grouped = np.ascontiguousarray(x).reshape(n, num_groups, c // num_groups, -1)
        out = np.empty(grouped.shape, dtype=x.dtype)
        mean = np.empty((n, num_groups))
        rstd = np.empty((n, num_groups))
        per_group = (num_groups, c // num_groups)
        weights, biases = weight.reshape(per_group), bias.reshape(per_group)
        kernels.run_split(kernels.group_norm, [  # samples shared out over threads
            (grouped[a:z], weights, biases, out[a:z], mean[a:z], rstd[a:z], eps)
            for a, z in row_parts(grouped)])
        ctx.save_for_backward(grouped, weight, mean, rstd)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        grouped, weight, mean, rstd = ctx.saved_tensors
        n, groups, cg, _ = grouped.shape
        g = np.ascontiguousarray(grad).reshape(grouped.shape)
        dx = np.empty_like(grouped)
        dw, db = np.empty((n, groups, cg)), np.empty((n, groups, cg))
        weights = weight.reshape(groups, cg)
        kernels.run_split(kernels.group_norm_backward, [
            (grouped[a:z], g[a:z], weights, mean[a:z], rstd[a:z], dx[a:z], dw[a:z], db[a:z])
            for a, z in row_parts(grouped)])
        needs = ctx.needs_input_grad
        return (dx.reshape(grad.shape) if needs[0] else None,
                dw.sum(0).reshape(-1).astype(weight.dtype) if needs[1] else None,
                db.sum(0).reshape(-1).astype(weight.dtype) if needs[2] else None)


def _channels_first(a):
    """A C-contiguous (A, C, B) view of a (N, C) or (N, C, H, W) array, the channel in the
    middle: (N, C, 1), (N, C, H*W) for NCHW, (1, C, H*W*N) for the CPU conv's batch-innermost
    layout; None for any other layout."""
    if a.ndim == 2:
        return a.reshape(a.shape[0], a.shape[1], 1) if a.flags.c_contiguous else None
    n, c, h, w = a.shape
    if a.flags.c_contiguous:
        return a.reshape(n, c, h * w)
    moved = a.transpose(1, 2, 3, 0)
    if moved.flags.c_contiguous:
        return moved.reshape(1, c, h * w * n)
    return None


class BatchNormCPU(Function):
    """batch_norm of (N, C) or (N, C, H, W), in the layout x comes in (NCHW or the CPU
    conv's batch-innermost one), the output in the same layout."""

    reference = BatchNorm

    supports = staticmethod(compiled_float32)

    @staticmethod
    def forward(ctx, x, weight, bias, *, running_mean, running_var, training, momentum, eps):
        if _channels_first(x) is None:
            x = np.ascontiguousarray(x)
        view = _channels_first(x)
        if training:
            mean, var = np.empty(x.shape[1]), np.empty(x.shape[1])
            kernels.batch_norm_statistics(view, mean, var)
            update_running_statistics(running_mean, running_var, mean.astype(x.dtype),
                                      var.astype(x.dtype), x.size // x.shape[1], momentum)
        else:
            mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
        rstd = 1 / np.sqrt(var + eps)
        out = np.empty_like(x)
        kernels.batch_norm_normalize(view, mean, rstd, weight, bias, _channels_first(out))
        ctx.save_for_backward(x, mean, rstd, weight)
        ctx.training = training
        return out

    @staticmethod
    def backward(ctx, grad):
        x, mean, rstd, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        dx = np.empty_like(x)
        dw, db = np.empty(x.shape[1]), np.empty(x.shape[1])
        kernels.batch_norm_backward(_channels_first(x), _channels_first(same_layout(grad, x)),
                                    mean, rstd, weight, _channels_first(dx), dw, db,
                                    ctx.training, needs[0])
        return (dx if needs[0] else None, dw.astype(x.dtype) if needs[1] else None,
                db.astype(x.dtype) if needs[2] else None)
