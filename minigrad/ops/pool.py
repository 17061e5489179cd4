"""Pooling: max_pool2d, avg_pool2d, adaptive_avg_pool2d and adaptive_max_pool2d, over
(N, C, H, W).

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

from minigrad import backend
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.ops import fast
from minigrad.ops.conv import WindowsAdd, im2col_view, pad, pair
from minigrad.ops.shape import IndexAdd


def pool_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    """Windows along one axis. In ceil mode a last, partial window counts too, unless it would
    start in the right padding (PyTorch's rule)."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _windows(x, kernel, stride, padding, dilation, ceil_mode, fill):
    """The pooling windows of x padded with `fill` (in ceil mode also past the bottom and right
    edges, as far as the last windows reach): a strided view (N, C, KH, KW, OH, OW), the padded
    array and (OH, OW)."""
    out_size = tuple(pool_output_size(s, k, st, p, d, ceil_mode) for s, k, st, p, d in zip(
        x.shape[2:], kernel, stride, padding, dilation))
    extra = [max(0, (o - 1) * st + d * (k - 1) + 1 - (s + 2 * p)) for o, st, d, k, s, p in zip(
        out_size, stride, dilation, kernel, x.shape[2:], padding)]
    (ph, pw) = padding
    x_pad = pad(x, (ph, ph + extra[0], pw, pw + extra[1]), fill)
    return im2col_view(x_pad, kernel, stride, dilation, out_size), x_pad, out_size


def _interior(grad_pad, padding, shape):
    """The part of a padded gradient that lies over the input itself."""
    (ph, pw), (h, w) = padding, shape[2:]
    return grad_pad[:, :, ph : ph + h, pw : pw + w]


class MaxPool2d(Function):
    """The largest value of each window (dilated windows too; in ceil mode the last, partial
    windows as well). The gradient goes to that one element: the first maximum in the
    window's row-major order, as PyTorch picks it among ties."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, dilation=(1, 1), ceil_mode=False):
        xp = get_array_module(x)
        kh, kw = kernel
        windows, x_pad, (oh, ow) = _windows(x, kernel, stride, padding, dilation, ceil_mode,
                                            -xp.inf)
        ctx.kernel, ctx.stride, ctx.padding, ctx.dilation = kernel, stride, padding, dilation
        ctx.x_shape, ctx.x_pad_shape, ctx.out_size = x.shape, x_pad.shape, (oh, ow)
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
        kh, kw = ctx.kernel
        # each window's gradient, placed at the offset of its max: (KH, KW, N, C, OH, OW)
        offsets = xp.arange(kh * kw).reshape(kh, kw, 1, 1, 1, 1)
        grad_windows = (offsets == winner) * grad
        grad_pad = WindowsAdd.run(grad_windows, shape=ctx.x_pad_shape, kernel=ctx.kernel,
                                  stride=ctx.stride, dilation=ctx.dilation,
                                  out_size=ctx.out_size)
        return _interior(grad_pad, ctx.padding, ctx.x_shape)


class AvgPool2d(Function):
    """The mean of each window. The divisor counts the window's elements over the input and,
    with count_include_pad (the default), over the zero padding too, but never the part past
    the padding that ceil mode adds; divisor_override replaces it."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, ceil_mode=False, count_include_pad=True,
                divisor_override=None):
        xp = get_array_module(x)
        windows, x_pad, out_size = _windows(x, kernel, stride, padding, (1, 1), ceil_mode, 0)
        if divisor_override:
            counts = divisor_override
        else:  # count, per window, the places that are input (or padding, if they count)
            (ph, pw), (h, w) = padding, x.shape[2:]
            inside = xp.zeros((1, 1) + x_pad.shape[2:], dtype=x.dtype)
            if count_include_pad:
                inside[:, :, : h + 2 * ph, : w + 2 * pw] = 1
            else:
                inside[:, :, ph : ph + h, pw : pw + w] = 1
            counts = im2col_view(inside, kernel, stride, (1, 1), out_size).sum(axis=(2, 3))
        ctx.kernel, ctx.stride, ctx.padding, ctx.counts = kernel, stride, padding, counts
        ctx.x_shape, ctx.x_pad_shape, ctx.out_size = x.shape, x_pad.shape, out_size
        return windows.sum(axis=(2, 3)) / counts

    @staticmethod
    def backward(ctx, grad):
        xp = get_array_module(grad)
        share = grad / ctx.counts
        grad_windows = xp.broadcast_to(share, ctx.kernel + share.shape)  # (KH, KW, N, C, OH, OW)
        grad_pad = WindowsAdd.run(grad_windows, shape=ctx.x_pad_shape, kernel=ctx.kernel,
                                  stride=ctx.stride, dilation=(1, 1), out_size=ctx.out_size)
        return _interior(grad_pad, ctx.padding, ctx.x_shape)


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

    twice_differentiable = True
    constant_saves = (0, 1)  # the bin matrices

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


def _check_pool_input(op: str, x, kernel, stride, padding, dilation):
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"{op}: kernel_size, stride and dilation must be >= 1, got {kernel}, "
                         f"{stride}, {dilation}")
    reach = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2 or min(padding) < 0:
        raise ValueError(
            f"{op}: padding {padding} must be between 0 and half the kernel size {kernel}"
        )
    padded = (x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1])
    if padded[0] < reach[0] or padded[1] < reach[1]:
        raise ValueError(
            f"{op}: input of spatial size {x.shape[2:]} (padded to {padded}) is smaller than "
            f"the kernel {kernel}"
        )


def _pool_arguments(op, x, kernel_size, stride, padding, dilation=1):
    kernel = pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else pair(stride, "stride", op)
    padding = pair(padding, "padding", op)
    dilation = pair(dilation, "dilation", op)
    _check_pool_input(op, x, kernel, stride, padding, dilation)
    return kernel, stride, padding, dilation


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """The maximum over each kernel_size window (dilated by `dilation`), moved by stride
    (default: kernel_size); ceil_mode keeps the last, partial windows. With return_indices,
    (values, indices): where each maximum is, as max_unpool2d reads it."""
    kernel, stride, padding, dilation = _pool_arguments("max_pool2d", x, kernel_size, stride,
                                                        padding, dilation)
    settings = dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                    ceil_mode=bool(ceil_mode))
    out = fast.select(MaxPool2d, x, **settings).apply(x, **settings)
    if return_indices:  # (for max_unpool2d: ops/one_d.py)
        return out, max_pool_indices(x, kernel, stride, padding, dilation, bool(ceil_mode))
    return out


def max_pool_indices(x, kernel, stride, padding, dilation, ceil_mode):
    """Where each window's maximum is (the first, in the window's row-major order; a NaN
    wins): its flat position h * W + w in the input plane, int64 (N, C, OH, OW)."""
    from minigrad.tensor import Tensor

    xp = get_array_module(x.array)
    windows, _, (oh, ow) = _windows(x.array, kernel, stride, padding, dilation, ceil_mode,
                                    -xp.inf)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    winner = windows.reshape(*x.shape[:2], kh * kw, oh, ow).argmax(axis=2)
    rows = xp.arange(oh).reshape(oh, 1) * sh - ph + (winner // kw) * dh
    cols = xp.arange(ow).reshape(1, ow) * sw - pw + (winner % kw) * dw
    return Tensor((rows * x.shape[3] + cols).astype(backend.int64))


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None):
    """The mean over each kernel_size window, moved by stride (default: kernel_size)."""
    kernel, stride, padding, _ = _pool_arguments("avg_pool2d", x, kernel_size, stride, padding)
    return AvgPool2d.apply(x, kernel=kernel, stride=stride, padding=padding,
                           ceil_mode=bool(ceil_mode), count_include_pad=count_include_pad,
                           divisor_override=divisor_override)


def _adaptive_sizes(op: str, x, output_size) -> tuple:
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input, got shape {x.shape}")
    sizes = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    sizes = tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(sizes))
    if len(sizes) != 2 or min(sizes) < 1:
        raise ValueError(f"{op}: bad output_size {output_size!r}")
    return sizes


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed (OH, OW) whatever the input size (None keeps a size)."""
    sizes = _adaptive_sizes("adaptive_avg_pool2d", x, output_size)
    return fast.select(AdaptiveAvgPool2d, x, {"input_size": x.shape[2:], "dtype": x.dtype},
                       output_size=sizes).apply(x, output_size=sizes)


def _bins(size: int, count: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive bins: [floor(i*size/count), ceil((i+1)*size/count)) for each i."""
    return [((i * size) // count, math.ceil((i + 1) * size / count)) for i in range(count)]


class AdaptiveMaxPool2d(Function):
    """The largest element of each adaptive bin. A bin is a rectangle, so its maximum is the
    maximum over its rows of each row's maximum over its columns: one pass per output column,
    then one per output row (OW + OH passes, each over the whole batch). The gradient goes to
    the first maximum of the bin in row-major order."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, output_size):
        xp = get_array_module(x)
        (oh, ow), (n, c, h, w) = output_size, x.shape
        col_max = xp.empty((n, c, h, ow), dtype=x.dtype)
        col_arg = xp.empty((n, c, h, ow), dtype=backend.int64)
        for j, (start, end) in enumerate(_bins(w, ow)):  # each row's max within the column bin
            first = x[..., start:end].argmax(axis=-1)
            col_arg[..., j] = first + start
            col_max[..., j] = xp.take_along_axis(x[..., start:end], first[..., None], -1)[..., 0]
        out = xp.empty((n, c, oh, ow), dtype=x.dtype)
        row_arg = xp.empty((n, c, oh, ow), dtype=backend.int64)
        for i, (start, end) in enumerate(_bins(h, oh)):  # the best of those rows in the row bin
            first = col_max[:, :, start:end].argmax(axis=2)
            row_arg[:, :, i] = first + start
            out[:, :, i] = xp.take_along_axis(col_max[:, :, start:end], first[:, :, None], 2)[
                :, :, 0]
        cols = xp.take_along_axis(col_arg, row_arg, axis=2)
        samples, channels = backend.open_grid(xp, row_arg.shape)[:2]
        ctx.x_shape, ctx.winners = x.shape, (samples, channels, row_arg, cols)
        return out

    @staticmethod
    def backward(ctx, grad):  # bins may overlap: gradients at one element add up
        return IndexAdd.run(grad, shape=ctx.x_shape, index=ctx.winners, advanced=True)


def adaptive_max_pool2d(x, output_size, return_indices: bool = False):
    """Max pooling to a fixed (OH, OW) whatever the input size (None keeps a size)."""
    if return_indices:
        raise NotImplementedError("adaptive_max_pool2d: return_indices=True is not supported")
    return AdaptiveMaxPool2d.apply(x, output_size=_adaptive_sizes("adaptive_max_pool2d", x,
                                                                  output_size))
