"""Pooling: max_pool2d, avg_pool2d and adaptive_avg_pool2d, over (N, C, H, W).

Max and average pooling read their windows through the same strided view as im2col
(ops/conv.py): (N, C, KH, KW, OH, OW), no copy. Their backwards loop over the KH*KW kernel
offsets, each a strided add over all windows at once, so overlapping windows (kernel 3,
stride 2) add their gradients up.
"""

from __future__ import annotations

import math

import numpy as np

from minigrad import kernels
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.kernels import pool as cuda_kernels
from minigrad.ops.conv import col2im, im2col_view, output_size, pair


def _windows(x, kernel, stride, padding, fill):
    """The pooling windows of x padded with `fill`: a strided view (N, C, KH, KW, OH, OW), the
    padded shape and (OH, OW)."""
    (ph, pw) = padding
    x_pad = x
    if ph or pw:
        x_pad = get_array_module(x).pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)),
                                        constant_values=fill)
    out_size = (output_size(x_pad.shape[2], kernel[0], stride[0], 0),
                output_size(x_pad.shape[3], kernel[1], stride[1], 0))
    return im2col_view(x_pad, kernel, stride, (1, 1), out_size), x_pad.shape, out_size


class MaxPool2d(Function):
    """The largest value of each window. The gradient goes to that one element: the first
    maximum in the window's row-major order, as PyTorch picks it among ties."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        xp = get_array_module(x)
        kh, kw = kernel
        ctx.kernel, ctx.stride, ctx.padding = kernel, stride, padding
        ctx.fused = kernels.enabled() and xp is not np
        if ctx.fused:  # one CUDA kernel, on (C, H, W, N)
            out_size = tuple(output_size(s + 2 * p, k, st, 0)
                             for s, k, st, p in zip(x.shape[2:], kernel, stride, padding))
            x_chwn = xp.ascontiguousarray(x.transpose(1, 2, 3, 0))
            out, argmax = cuda_kernels.max_pool(x_chwn, kernel, stride, padding, out_size)
            ctx.save_for_backward(argmax)
            ctx.x_chwn_shape = x_chwn.shape
            return out.transpose(3, 0, 1, 2)
        windows, ctx.x_pad_shape, (oh, ow) = _windows(x, kernel, stride, padding, -xp.inf)
        ctx.out_size = (oh, ow)
        # (N, C, KH, KW, OH, OW) -> (N, C, KH*KW, OH, OW): position of the max in each window
        flat = windows.reshape(*x.shape[:2], kh * kw, oh, ow)
        winner = flat.argmax(axis=2)
        out = xp.take_along_axis(flat, winner[:, :, None], axis=2)[:, :, 0]
        ctx.save_for_backward(winner)
        return out

    @staticmethod
    def backward(ctx, grad):
        (winner,) = ctx.saved_tensors
        xp = get_array_module(grad)
        (kh, kw), (ph, pw) = ctx.kernel, ctx.padding
        if ctx.fused:
            grad_chwn = xp.ascontiguousarray(grad.transpose(1, 2, 3, 0))
            return cuda_kernels.max_pool_backward(grad_chwn, winner, ctx.x_chwn_shape,
                                                  ctx.kernel, ctx.stride, ctx.padding
                                                  ).transpose(3, 0, 1, 2)
        # each window's gradient, placed at the offset of its max: (KH, KW, N, C, OH, OW)
        offsets = xp.arange(kh * kw).reshape(kh, kw, 1, 1, 1, 1)
        grad_windows = (offsets == winner) * grad
        grad_pad = col2im(grad_windows, xp.zeros(ctx.x_pad_shape, dtype=grad.dtype), ctx.kernel,
                          ctx.stride, (1, 1), ctx.out_size)
        return grad_pad[:, :, ph : grad_pad.shape[2] - ph, pw : grad_pad.shape[3] - pw]


def _same_layout(array, like):
    """`array` laid out in memory as `like` is (the same shape): itself, or one copy."""
    if array.strides == like.strides:
        return array
    copy = get_array_module(like).empty_like(like)
    copy[...] = array
    return copy


class MaxPool2dTiled(Function):
    """Max pooling whose windows tile the input (stride == kernel, no padding), as in LeNet and
    VGG. Each kernel offset (i, j) picks one strided sub-grid x[:, :, i::KH, j::KW] of shape
    (N, C, OH, OW); the output is their elementwise maximum, with no argmax and no copy of
    the windows. The backward walks the offsets in the same order and gives each window's
    gradient to the first sub-grid that holds its maximum (PyTorch's choice among ties).
    """

    @staticmethod
    def forward(ctx, x, kernel):
        xp = get_array_module(x)
        (kh, kw), (oh, ow) = kernel, (x.shape[2] // kernel[0], x.shape[3] // kernel[1])
        out = None
        for i in range(kh):
            for j in range(kw):
                grid = x[:, :, i : i + kh * oh : kh, j : j + kw * ow : kw]
                # copy(order="K") keeps x's memory layout (conv2d's output is (C, N, H, W))
                out = grid.copy(order="K") if out is None else xp.maximum(out, grid, out=out)
        ctx.save_for_backward(x, out)
        ctx.kernel = kernel
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        xp = get_array_module(grad)
        (kh, kw), (oh, ow) = ctx.kernel, out.shape[2:]
        # in x's memory layout, which the conv before reads fastest; every element is written
        # below when the tiles cover x, else the uncovered border must be zero
        tiled = x.shape[2] == kh * oh and x.shape[3] == kw * ow
        grad_x = xp.empty_like(x) if tiled else xp.zeros_like(x)
        grad = _same_layout(grad, out)  # one copy if need be, not four mismatched reads
        open_ = xp.ones_like(out, dtype=bool)  # windows whose max has not had its gradient yet
        winner = xp.empty_like(open_)
        for i in range(kh):
            for j in range(kw):
                rows, cols = slice(i, i + kh * oh, kh), slice(j, j + kw * ow, kw)
                xp.equal(x[:, :, rows, cols], out, out=winner)
                winner &= open_
                open_ ^= winner  # winner lies inside open_: this removes it
                xp.multiply(grad, winner, out=grad_x[:, :, rows, cols])
        return grad_x


class AvgPool2d(Function):
    """The mean of each window; zero padding counts in the mean (count_include_pad=True)."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        windows, ctx.x_pad_shape, ctx.out_size = _windows(x, kernel, stride, padding, 0)
        ctx.kernel, ctx.stride, ctx.padding = kernel, stride, padding
        return windows.mean(axis=(2, 3))

    @staticmethod
    def backward(ctx, grad):
        xp = get_array_module(grad)
        (kh, kw), (ph, pw) = ctx.kernel, ctx.padding
        share = grad / (kh * kw)
        grad_windows = xp.broadcast_to(share, (kh, kw) + share.shape)  # (KH, KW, N, C, OH, OW)
        grad_pad = col2im(grad_windows, xp.zeros(ctx.x_pad_shape, dtype=grad.dtype), ctx.kernel,
                          ctx.stride, (1, 1), ctx.out_size)
        return grad_pad[:, :, ph : grad_pad.shape[2] - ph, pw : grad_pad.shape[3] - pw]


def _bin_matrix(xp, size: int, bins: int, dtype):
    """(bins, size): row i averages bin i, [floor(i*size/bins), ceil((i+1)*size/bins))."""
    matrix = xp.zeros((bins, size), dtype=dtype)
    for i in range(bins):
        start, end = (i * size) // bins, math.ceil((i + 1) * size / bins)
        matrix[i, start:end] = 1 / (end - start)
    return matrix


class AdaptiveAvgPool2d(Function):
    """Average over PyTorch's adaptive bins, which are rectangles, so the pooling separates into
    two small matrix products: out = A_h (OH, H) @ x @ A_w^T (W, OW); the backward is
    A_h^T @ grad @ A_w. No loop over output pixels, and bins may overlap."""

    @staticmethod
    def forward(ctx, x, output_size):
        xp = get_array_module(x)
        rows = _bin_matrix(xp, x.shape[2], output_size[0], x.dtype)
        cols = _bin_matrix(xp, x.shape[3], output_size[1], x.dtype)
        ctx.save_for_backward(rows, cols)
        return rows @ x @ cols.T

    @staticmethod
    def backward(ctx, grad):
        rows, cols = ctx.saved_tensors
        return rows.T @ grad @ cols


def _check_pool_input(op: str, x, kernel, stride, padding):
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if min(kernel) < 1 or min(stride) < 1:
        raise ValueError(f"{op}: kernel_size and stride must be >= 1, got {kernel}, {stride}")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2 or min(padding) < 0:
        raise ValueError(
            f"{op}: padding {padding} must be between 0 and half the kernel size {kernel}"
        )
    padded = (x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1])
    if padded[0] < kernel[0] or padded[1] < kernel[1]:
        raise ValueError(
            f"{op}: input of spatial size {x.shape[2:]} (padded to {padded}) is smaller than "
            f"the kernel {kernel}"
        )


def _pool_arguments(op, x, kernel_size, stride, padding):
    kernel = pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else pair(stride, "stride", op)
    padding = pair(padding, "padding", op)
    _check_pool_input(op, x, kernel, stride, padding)
    return kernel, stride, padding


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """The maximum over each kernel_size window, moved by stride (default: kernel_size)."""
    kernel, stride, padding = _pool_arguments("max_pool2d", x, kernel_size, stride, padding)
    if stride == kernel and padding == (0, 0):
        return MaxPool2dTiled.apply(x, kernel=kernel)
    return MaxPool2d.apply(x, kernel=kernel, stride=stride, padding=padding)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """The mean over each kernel_size window, moved by stride (default: kernel_size)."""
    kernel, stride, padding = _pool_arguments("avg_pool2d", x, kernel_size, stride, padding)
    return AvgPool2d.apply(x, kernel=kernel, stride=stride, padding=padding)


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed (OH, OW) whatever the input size (None keeps a size)."""
    if x.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d: expected a 4-D input, got shape {x.shape}")
    sizes = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    sizes = tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(sizes))
    if len(sizes) != 2 or min(sizes) < 1:
        raise ValueError(f"adaptive_avg_pool2d: bad output_size {output_size!r}")
    return AdaptiveAvgPool2d.apply(x, output_size=sizes)
