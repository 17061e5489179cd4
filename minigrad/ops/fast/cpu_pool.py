"""Max pooling on the CPU when the windows tile the input (stride == kernel, no padding), as
in LeNet and VGG: the reference's result (MaxPool2d in ops/pool.py) without an argmax and
without copying the windows. It keeps the memory layout it is given (conv2d's batch-innermost
output stays so). In that layout, for float32, the backward is one compiled loop (minigrad/
kernels/cpu.py) where NumPy takes two passes per window offset.
"""

from __future__ import annotations

import numpy as np

from minigrad.autograd import Function
from minigrad.kernels import cpu as kernels


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
        for i in range(kh):
            for j in range(kw):
                rows, cols = slice(i, i + kh * oh, kh), slice(j, j + kw * ow, kw)
                np.equal(x[:, :, rows, cols], out, out=winner)
                winner &= open_
                open_ ^= winner  # winner lies inside open_: this removes it
                np.multiply(grad, winner, out=grad_x[:, :, rows, cols])
        return grad_x
