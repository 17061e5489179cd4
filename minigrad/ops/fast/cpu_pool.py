"""Max pooling on the CPU when the windows tile the input (stride == kernel, no padding), as
in LeNet and VGG: the reference's result (MaxPool2d in ops/pool.py) without an argmax and
without copying the windows. It keeps the memory layout it is given (conv2d's batch-innermost
output stays so). In that layout, for float32, the backward is one compiled loop (minigrad/
kernels/cpu.py) where NumPy takes two passes per window offset.

Adaptive average pooling to a small output (global pooling, a ResNet's or a U-Net's head) as
one GEMM in the input's memory layout, where the reference's two products over a stack run
one small product per image and channel (and slowly on a batch-innermost input: 0.85 ms
against 0.04 for 8x16x64x64 pooled to 1x1).
"""

from __future__ import annotations

import numpy as np

from minigrad.autograd import Function
from minigrad.kernels import cpu as kernels
from minigrad.ops.pool import AdaptiveAvgPool2d, MaxPool2d, _bin_matrix


def same_layout(array, like):
    """`array` laid out in memory as `like` is (the same shape): itself, or one copy. The CPU
    fast paths walk an op's arrays in one order; one copy beats strided reads of the rest."""
    if array.strides == like.strides:
        return array
    copy = np.empty_like(like)
    copy[...] = array
    return copy


class MaxPool2dTiledCPU(Function):
    """Max pooling whose windows tile the input (stride == kernel, no padding), as in LeNet and
    VGG. Each kernel offset (i, j) picks one strided sub-grid x[:, :, i::KH, j::KW] of shape
    (N, C, OH, OW); the output is their elementwise maximum, with no argmax and no copy of
    the windows. The backward walks the offsets in the same order and gives each window's
    gradient to the first sub-grid that holds its maximum (PyTorch's choice among ties).
    """

    reference = MaxPool2d

    @staticmethod
    def supports(*, kernel, stride, padding, dilation=(1, 1), ceil_mode=False) -> bool:
        return stride == kernel and padding == (0, 0) and dilation == (1, 1) and not ceil_mode

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, dilation=(1, 1), ceil_mode=False):
        (kh, kw), (oh, ow) = kernel, (x.shape[2] // kernel[0], x.shape[3] // kernel[1])
        out = None
        for i in range(kh):
            for j in range(kw):
                grid = x[:, :, i : i + kh * oh : kh, j : j + kw * ow : kw]
                # copy(order="K") keeps x's memory layout (conv2d's output is (C, N, H, W))
                out = grid.copy(order="K") if out is None else np.maximum(out, grid, out=out)
        ctx.save_for_backward(x, out)
        ctx.kernel = kernel
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        (kh, kw), (oh, ow) = ctx.kernel, out.shape[2:]
        inner = x.transpose(1, 2, 3, 0)  # (C, H, W, N)
        if (kernels.available() and x.dtype == np.float32 and inner.flags.c_contiguous
                and out.transpose(1, 2, 3, 0).flags.c_contiguous):
            # batch innermost (after a CPU conv): one compiled pass (minigrad/kernels/cpu.py)
            grad_x = np.empty_like(x)
            kernels.max_pool_tiled_backward(
                inner, out.transpose(1, 2, 3, 0),
                np.ascontiguousarray(grad.transpose(1, 2, 3, 0)), kh, kw,
                grad_x.transpose(1, 2, 3, 0))
            return grad_x
        # in x's memory layout, which the conv before reads fastest; every element is written
        # below when the tiles cover x, else the uncovered border must be zero
        tiled = x.shape[2] == kh * oh and x.shape[3] == kw * ow
        grad_x = np.empty_like(x) if tiled else np.zeros_like(x)
        grad = same_layout(grad, out)  # one copy if need be, not four mismatched reads
        open_ = np.ones_like(out, dtype=bool)  # windows whose max has not had its gradient yet
        winner = np.empty_like(open_)
        nan = np.isnan(out).any()  # a window's NaN is its max (NaN == NaN is False, though)
        for i in range(kh):
            for j in range(kw):
                rows, cols = slice(i, i + kh * oh, kh), slice(j, j + kw * ow, kw)
                np.equal(x[:, :, rows, cols], out, out=winner)
                if nan:
                    winner |= np.isnan(x[:, :, rows, cols])
                winner &= open_
                open_ ^= winner  # winner lies inside open_: this removes it
                np.multiply(grad, winner, out=grad_x[:, :, rows, cols])
        return grad_x


class AdaptiveAvgPool2dCPU(Function):
    """The reference's out = A_h @ x @ A_w^T (ops/pool.py) with its two bin matrices made one,
    A = kron(A_h, A_w) (OH*OW, H*W): output pixel (i, j) averages input pixel (h, w) with weight
    A_h[i, h] A_w[j, w]. Over the pixels of every image and channel at once:
        NCHW:                 out (N*C, OH*OW) = x (N*C, H*W) @ A^T      grad_x = grad @ A
        batch innermost:      out (C, OH*OW, N) = A @ x (C, H*W, N)      grad_x = A^T @ grad
    For float32 and float64 outputs whose A is small (at most MAX_ENTRIES: pooling to 1x1 is
    one row of 1/(H*W)); larger ones take the reference's separable products."""

    reference = AdaptiveAvgPool2d

    MAX_ENTRIES = 1 << 16

    @staticmethod
    def supports(output_size=None, input_size=None, dtype=None, **_):
        return (dtype in (np.float32, np.float64) and output_size is not None
                and input_size is not None and output_size[0] * output_size[1] * input_size[0]
                * input_size[1] <= AdaptiveAvgPool2dCPU.MAX_ENTRIES)

    @staticmethod
    def forward(ctx, x, output_size):
        n, c, h, w = x.shape
        (oh, ow) = output_size
        bins = np.kron(_bin_matrix(np, h, oh, x.dtype), _bin_matrix(np, w, ow, x.dtype))
        inner = x.transpose(1, 2, 3, 0)  # (C, H, W, N)
        ctx.bins, ctx.x_shape = bins, x.shape
        if inner.flags.c_contiguous and not x.flags.c_contiguous:
            ctx.batch_inner = True
            out = np.matmul(bins, inner.reshape(c, h * w, n))  # (C, OH*OW, N)
            return out.reshape(c, oh, ow, n).transpose(3, 0, 1, 2)
        ctx.batch_inner = False
        out = np.ascontiguousarray(x).reshape(n * c, h * w) @ bins.T
        return out.reshape(n, c, oh, ow)

    @staticmethod
    def backward(ctx, grad):
        n, c, h, w = ctx.x_shape
        bins = ctx.bins
        if ctx.batch_inner:  # the gradient in the layout the input had
            grad_in = np.matmul(bins.T, np.ascontiguousarray(grad.transpose(1, 2, 3, 0))
                                .reshape(c, -1, n))  # (C, H*W, N)
            return grad_in.reshape(c, h, w, n).transpose(3, 0, 1, 2)
        return (np.ascontiguousarray(grad).reshape(n * c, -1) @ bins).reshape(n, c, h, w)
