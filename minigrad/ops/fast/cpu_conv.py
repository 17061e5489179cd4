"""conv2d on the CPU with the batch innermost in memory: the reference's mathematics
(ops/conv.py), in the layout that makes NumPy fast.

The arrays are kept in memory as (C, H, W, N) and handed out as their NCHW *view* (a
transpose, no copy): the public shape is PyTorch's, and NumPy's elementwise ops (ReLU, the next
layer's padding and pooling) keep the layout they are given. With the batch innermost, every
im2col, col2im and padding copy moves runs of N contiguous floats rather than a few pixels of
one row, and the GEMM's output (OC, OH*OW*N) is already in that layout. An NCHW input, such
as a batch of images, is laid out once as (C, H, W, N) on entry.

    cols[c, kh, kw, oh, ow, n] = x_pad[n, c, oh*s + kh*d, ow*s + kw*d]   (C*KH*KW, OH*OW*N)

Memory: cols is C*KH*KW times the size of the input. Up to CHUNK_BYTES the forward builds it
whole and keeps it for the weight gradient. Above, both passes go through the output a block
of rows at a time: the block's cols (at most CHUNK_BYTES) is built, multiplied while it is
still in cache, and dropped; the backward builds each block's cols again from the padded
input (KH*KW times smaller than cols), for the weight gradient and, through col2im into the
block's rows (which overlap the next block's by the kernel's reach), for the input's. A
VGG-sized layer (64 channels, 3x3, 8x64x64) had a 75 MB cols written and read once per GEMM.
"""

from __future__ import annotations

import numpy as np

from minigrad.autograd import Function
from minigrad.backend import matmul
from minigrad.ops import fast
from minigrad.ops.conv import Conv2d, col2im, im2col_view, output_size, unpad

CHUNK_BYTES = 4 * 2**20  # a larger cols is built a block of output rows at a time


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


def _input_rows(first: int, stop: int, stride: int, dilation: int, kernel: int) -> slice:
    """The padded input's rows that output rows [first, stop) read."""
    return slice(first * stride, (stop - 1) * stride + (kernel - 1) * dilation + 1)


class Conv2dCPU(Function):
    reference = Conv2d

    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride, padding, dilation, groups):
        n = x.shape[0]
        oc, c_per_group, kh, kw = weight.shape
        x_pad = _pad(batch_innermost(x), padding)
        oh = output_size(x_pad.shape[2], kh, stride[0], 0, dilation[0])
        ow = output_size(x_pad.shape[3], kw, stride[1], 0, dilation[1])
        w = weight.reshape(groups, oc // groups, c_per_group * kh * kw)
        # blocks of output rows whose cols, C*KH*KW by OW*N per row, fits CHUNK_BYTES
        blocks = fast.blocks(oh, c_per_group * groups * kh * kw * ow * n * x.itemsize,
                             CHUNK_BYTES)
        if len(blocks) == 1:  # cols fits: one GEMM, and cols kept for the weight gradient
            cols = _im2col(x_pad, (kh, kw), stride, dilation, (oh, ow), groups)
            out = matmul(w, cols).reshape(oc, oh, ow, n)  # (G, OC/G, OH*OW*N) -> (OC, OH, OW, N)
        else:
            cols = None
            out = np.empty((oc, oh, ow, n), dtype=x.dtype)
            for first, stop in blocks:
                rows = _input_rows(first, stop, stride[0], dilation[0], kh)
                block = _im2col(x_pad[:, :, rows], (kh, kw), stride, dilation, (stop - first, ow),
                                groups)
                out[:, first:stop] = matmul(w, block).reshape(oc, stop - first, ow, n)
        if bias is not None:
            out += bias.reshape(oc, 1, 1, 1)
        keep = cols is not None and ctx.needs_input_grad[1]  # cols serves the weight only
        ctx.save_for_backward(cols if keep else x_pad, weight)
        ctx.blocks = None if keep else blocks
        ctx.x_pad_shape, ctx.out_size = x_pad.shape, (oh, ow)
        ctx.stride, ctx.padding, ctx.dilation, ctx.groups = stride, padding, dilation, groups
        return out.transpose(3, 0, 1, 2)  # the NCHW view of it

    @staticmethod
    def backward(ctx, grad):
        saved, weight = ctx.saved_tensors
        oc, c_per_group, kh, kw = weight.shape
        groups, (oh, ow) = ctx.groups, ctx.out_size
        n, c, hp, wp = ctx.x_pad_shape
        needs = ctx.needs_input_grad
        # (N, OC, OH, OW) -> (OC, OH, OW, N); no copy when grad comes back in the layout the
        # forward produced
        g_all = grad.transpose(1, 2, 3, 0)
        w = weight.reshape(groups, oc // groups, -1)
        grad_pad = np.zeros((c, hp, wp, n), dtype=grad.dtype).transpose(0, 3, 1, 2) \
            if needs[0] else None  # (C, N, HP, WP) view of (C, HP, WP, N) memory
        grad_weight = np.zeros((groups, oc // groups, w.shape[2]), dtype=grad.dtype) \
            if needs[1] else None
        for first, stop in ctx.blocks or [(0, oh)]:
            rows = _input_rows(first, stop, ctx.stride[0], ctx.dilation[0], kh)
            g = g_all[:, first:stop].reshape(groups, oc // groups, -1)  # (G, OC/G, rows*OW*N)
            if needs[0]:
                grad_cols = matmul(w.swapaxes(1, 2), g)  # (G, C/G*KH*KW, rows*OW*N)
                # -> (C, KH, KW, rows, OW, N); col2im reads its (KH, KW, C, N, rows, OW) view
                grad_cols = grad_cols.reshape(c, kh, kw, stop - first, ow, n)
                col2im(grad_cols.transpose(1, 2, 0, 5, 3, 4), grad_pad[:, :, rows], (kh, kw),
                       ctx.stride, ctx.dilation, (stop - first, ow))
            if needs[1]:
                cols = saved if ctx.blocks is None else _im2col(
                    saved[:, :, rows], (kh, kw), ctx.stride, ctx.dilation, (stop - first, ow),
                    groups)
                grad_weight += matmul(g, cols.swapaxes(1, 2))
        grad_x = grad_bias = None
        if needs[0]:
            grad_x = dense(unpad(grad_pad, ctx.padding).transpose(1, 0, 2, 3))  # NCHW view
        if needs[1]:
            grad_weight = grad_weight.reshape(weight.shape)
        has_bias = len(needs) == 3
        if has_bias and needs[2]:
            grad_bias = grad.sum(axis=(0, 2, 3))
        return (grad_x, grad_weight, grad_bias) if has_bias else (grad_x, grad_weight)
