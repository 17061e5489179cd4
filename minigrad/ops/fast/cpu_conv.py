"""conv2d on the CPU with the batch innermost in memory: the reference's mathematics
(ops/conv.py), in the layout that makes NumPy fast.

The arrays are kept in memory as (C, H, W, N) and handed out as their NCHW *view* (a
transpose, no copy): the public shape is PyTorch's, and NumPy's elementwise ops (ReLU, the next
layer's padding and pooling) keep the layout they are given. With the batch innermost, every
im2col, col2im and padding copy moves runs of N contiguous floats rather than a few pixels of
one row, and the GEMM's output (OC, OH*OW*N) is already in that layout. An NCHW input, such
as a batch of images, is laid out once as (C, H, W, N) on entry.

    cols[c, kh, kw, oh, ow, n] = x_pad[n, c, oh*s + kh*d, ow*s + kw*d]   (C*KH*KW, OH*OW*N)

Memory: cols is C*KH*KW times the size of the input. Up to COLS_KEPT_BYTES the forward keeps
it for the weight gradient; above, it is freed after the GEMM and the backward builds it again
from the padded input, which is KH*KW times smaller.
"""

from __future__ import annotations

import numpy as np

from minigrad.autograd import Function
from minigrad.backend import matmul
from minigrad.ops.conv import col2im, im2col_view, output_size, unpad

COLS_KEPT_BYTES = 256 * 2**20  # larger im2col buffers are rebuilt in the backward, not kept


def batch_innermost(x):
    """x (N, C, H, W) stored as (C, H, W, N) in memory, returned as its NCHW view; no copy
    when it already is."""
    return np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


def dense(x):
    """x (N, C, H, W) in the batch-innermost layout with no gaps: an input gradient cut out of
    its padded buffer is copied once here, so that the elementwise backward ops after it (ReLU,
    batch norm) read it in the same layout as their own saved arrays, not strided."""
    inner = x.transpose(1, 2, 3, 0)
    return x if inner.flags.c_contiguous else batch_innermost(x)


def _pad(x, padding):
    """Zero-pad the last two axes, padding = (top, bottom, left, right), keeping x's layout."""
    if not any(padding):
        return x
    top, bottom, left, right = padding
    n, c, h, w = x.shape
    x_pad = np.zeros_like(x, shape=(n, c, h + top + bottom, w + left + right))  # order "K"
    x_pad[:, :, top : top + h, left : left + w] = x
    return x_pad


def _im2col(x_pad, kernel, stride, dilation, out_size, groups):
    """(N, C, KH, KW, OH, OW) view -> (C, KH, KW, OH, OW, N) -> (G, C/G*KH*KW, OH*OW*N): the
    one copy of im2col."""
    rows = x_pad.shape[1] // groups * kernel[0] * kernel[1]
    view = im2col_view(x_pad, kernel, stride, dilation, out_size)
    return view.transpose(1, 2, 3, 4, 5, 0).reshape(groups, rows, -1)


class Conv2dCPU(Function):
    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride, padding, dilation, groups):
        n = x.shape[0]
        oc, c_per_group, kh, kw = weight.shape
        x_pad = _pad(batch_innermost(x), padding)
        oh = output_size(x_pad.shape[2], kh, stride[0], 0, dilation[0])
        ow = output_size(x_pad.shape[3], kw, stride[1], 0, dilation[1])
        cols = _im2col(x_pad, (kh, kw), stride, dilation, (oh, ow), groups)
        w = weight.reshape(groups, oc // groups, c_per_group * kh * kw)
        out = matmul(w, cols).reshape(oc, oh, ow, n)  # (G, OC/G, OH*OW*N) -> (OC, OH, OW, N)
        if bias is not None:
            out += bias.reshape(oc, 1, 1, 1)
        keep = cols.nbytes <= COLS_KEPT_BYTES or not ctx.needs_input_grad[1]
        ctx.save_for_backward(cols if keep else x_pad, weight)
        ctx.cols_kept = keep
        ctx.x_pad_shape, ctx.out_size = x_pad.shape, (oh, ow)
        ctx.stride, ctx.padding, ctx.dilation, ctx.groups = stride, padding, dilation, groups
        return out.transpose(3, 0, 1, 2)  # the NCHW view of it

    @staticmethod
    def backward(ctx, grad):
        cols, weight = ctx.saved_tensors
        if not ctx.cols_kept:  # cols was too large to keep: build it again from x_pad
            cols = _im2col(cols, weight.shape[2:], ctx.stride, ctx.dilation, ctx.out_size,
                           ctx.groups)
        oc, c_per_group, kh, kw = weight.shape
        groups, (oh, ow) = ctx.groups, ctx.out_size
        # (N, OC, OH, OW) -> (OC, OH, OW, N) -> (G, OC/G, OH*OW*N); no copy when grad comes
        # back in the layout the forward produced
        g = grad.transpose(1, 2, 3, 0).reshape(groups, oc // groups, -1)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            w = weight.reshape(groups, oc // groups, -1)
            grad_cols = matmul(w.swapaxes(1, 2), g)  # (G, C/G*KH*KW, OH*OW*N)
            # -> (C, KH, KW, OH, OW, N); col2im reads its (KH, KW, C, N, OH, OW) view
            n, c, hp, wp = ctx.x_pad_shape
            grad_cols = grad_cols.reshape(c, kh, kw, oh, ow, n)
            grad_pad = np.zeros((c, hp, wp, n), dtype=grad.dtype).transpose(0, 3, 1, 2)
            col2im(grad_cols.transpose(1, 2, 0, 5, 3, 4), grad_pad, (kh, kw), ctx.stride,
                   ctx.dilation, ctx.out_size)
            grad_x = dense(unpad(grad_pad, ctx.padding).transpose(1, 0, 2, 3))  # NCHW view
        if ctx.needs_input_grad[1]:
            grad_weight = matmul(g, cols.swapaxes(1, 2)).reshape(weight.shape)
        has_bias = len(ctx.needs_input_grad) == 3
        if has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(axis=(0, 2, 3))
        return (grad_x, grad_weight, grad_bias) if has_bias else (grad_x, grad_weight)
