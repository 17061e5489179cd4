"""Pooling: max_pool2d, avg_pool2d and adaptive_avg_pool2d, over (N, C, H, W).

Max and average pooling read their windows through the same strided view as im2col
(ops/conv.py): (N, C, KH, KW, OH, OW), no copy. Their backwards loop over the KH*KW kernel
offsets, each a strided add over all windows at once, so overlapping windows (kernel 3,
stride 2) add their gradients up.

These are the references. Max pooling has fast paths in ops/fast/ (on the CPU, a maximum over
strided sub-grids when the windows tile the input; on CUDA, one kernel each way), chosen in
`max_pool2d` and tested against MaxPool2d here.
"""

from __future__ import annotations

import math

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.ops import fast
from minigrad.ops.conv import col2im, im2col_view, output_size, pad, pair


def _windows(x, kernel, stride, padding, fill):
    """The pooling windows of x padded with `fill`: a strided view (N, C, KH, KW, OH, OW), the
    padded shape and (OH, OW)."""
    (ph, pw) = padding
    x_pad = pad(x, (ph, ph, pw, pw), fill)
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
        # each window's gradient, placed at the offset of its max: (KH, KW, N, C, OH, OW)
        offsets = xp.arange(kh * kw).reshape(kh, kw, 1, 1, 1, 1)
        grad_windows = (offsets == winner) * grad
        grad_pad = col2im(grad_windows, xp.zeros(ctx.x_pad_shape, dtype=grad.dtype), ctx.kernel,
                          ctx.stride, (1, 1), ctx.out_size)
        return grad_pad[:, :, ph : grad_pad.shape[2] - ph, pw : grad_pad.shape[3] - pw]


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
    settings = dict(kernel=kernel, stride=stride, padding=padding)
    return fast.select(MaxPool2d, x, **settings).apply(x, **settings)


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
