"""2-D convolution as im2col + one matrix product, and its backward with col2im.

A convolution slides a (C, KH, KW) kernel over the padded input. im2col lays every window out
as one column, so the whole convolution, whole batch included, becomes a single GEMM:

    x: (N, C, H, W) --pad--> (N, C, Hp, Wp)
    im2col:  cols[c, kh, kw, oh, ow, n] = x_pad[n, c, oh*s + kh*d, ow*s + kw*d]
             a strided *view* of x_pad (no copy), then one copy into (C*KH*KW, OH*OW*N)
    GEMM:    out = W (OC, C*KH*KW) @ cols (C*KH*KW, OH*OW*N) -> (OC, OH*OW*N)

The batch is the innermost axis of each row of cols: one large GEMM instead of N small ones,
and every copy (im2col, col2im, padding, pooling) moves runs of N contiguous floats rather
than a few pixels of one row. So the op keeps its arrays in memory as (C, H, W, N) and hands
out the NCHW *view* of them (a transpose, no copy): the public shape is PyTorch's, and NumPy's
elementwise ops (ReLU, the next layer's padding and pooling) keep the layout they are given.
An NCHW input, such as a batch of images, is laid out once as (C, H, W, N) on entry.

Memory: cols is C*KH*KW times the size of the input (VGG16's second conv at 224x224 and batch
32: 3.7 GB). Up to COLS_KEPT_BYTES, the forward keeps cols for the weight gradient; above it,
cols is freed as soon as the GEMM is done, and the backward builds it again from the padded
input, which is KH*KW times smaller.

With groups, channels split into G independent convolutions: W is (G, OC/G, C/G*KH*KW) and
cols (G, C/G*KH*KW, OH*OW*N); matmul runs over G.

Backward, for the output gradient g as (G, OC/G, OH*OW*N):
    grad_W    = g @ cols^T                    (G, OC/G, C/G*KH*KW)
    grad_bias = sum of g over n, oh, ow
    grad_cols = W^T @ g, and col2im adds each kernel offset's slice back where im2col read
                it: a loop over the KH*KW offsets, each one strided add over all pixels.
"""

from __future__ import annotations

import numpy as np

from minigrad import kernels
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.kernels import im2col as cuda_kernels

COLS_KEPT_BYTES = 256 * 2**20  # larger im2col buffers are rebuilt in the backward, not kept


def batch_innermost(x):
    """x (N, C, H, W) stored as (C, H, W, N) in memory, returned as its NCHW view; no copy
    when it already is."""
    xp = get_array_module(x)
    return xp.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


def _pad(x, padding):
    """Zero-pad the last two axes, padding = (top, bottom, left, right), keeping x's layout."""
    if not any(padding):
        return x
    top, bottom, left, right = padding
    n, c, h, w = x.shape
    shape = (n, c, h + top + bottom, w + left + right)
    x_pad = get_array_module(x).zeros_like(x, shape=shape)  # order "K": x's axis order
    x_pad[:, :, top : top + h, left : left + w] = x
    return x_pad


def output_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int = 1) -> int:
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def im2col_view(x_pad, kernel, stride, dilation, out_size):
    """The windows of x_pad as a strided view (N, C, KH, KW, OH, OW): no data is copied."""
    xp = get_array_module(x_pad)
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    n_stride, c_stride, h_stride, w_stride = x_pad.strides
    return xp.lib.stride_tricks.as_strided(
        x_pad,
        shape=(x_pad.shape[0], x_pad.shape[1], kh, kw, oh, ow),
        strides=(n_stride, c_stride, h_stride * dh, w_stride * dw, h_stride * sh, w_stride * sw),
    )


def _im2col(x_pad, kernel, stride, dilation, out_size, groups):
    """(N, C, KH, KW, OH, OW) view -> (C, KH, KW, OH, OW, N) -> (G, C/G*KH*KW, OH*OW*N): the
    one copy of im2col."""
    rows = x_pad.shape[1] // groups * kernel[0] * kernel[1]
    if kernels.enabled() and not isinstance(x_pad, np.ndarray):  # one CUDA kernel instead
        x_chwn = get_array_module(x_pad).ascontiguousarray(x_pad.transpose(1, 2, 3, 0))
        return cuda_kernels.im2col(x_chwn, kernel, stride, dilation, out_size).reshape(
            groups, rows, -1)
    view = im2col_view(x_pad, kernel, stride, dilation, out_size)
    return view.transpose(1, 2, 3, 4, 5, 0).reshape(groups, rows, -1)


def col2im(grad_cols, grad_pad, kernel, stride, dilation, out_size):
    """The adjoint of im2col: add each window element's gradient to the pixel it came from.

    grad_cols (KH, KW, A, B, OH, OW) is added into grad_pad (A, B, Hp, Wp), zeros in whatever
    memory layout the caller chose, and returned. (A, B) are (N, C) or (C, N). One strided add
    per kernel offset; windows that overlap add up, as the gradient of a reused pixel must.
    """
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            grad_pad[:, :, rows, cols] += grad_cols[i, j]
    return grad_pad


def _unpad(x, padding):
    top, bottom, left, right = padding
    return x[:, :, top : x.shape[2] - bottom, left : x.shape[3] - right]


class Conv2d(Function):
    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride, padding, dilation, groups):
        n = x.shape[0]
        oc, c_per_group, kh, kw = weight.shape
        x_pad = _pad(batch_innermost(x), padding)
        oh = output_size(x_pad.shape[2], kh, stride[0], 0, dilation[0])
        ow = output_size(x_pad.shape[3], kw, stride[1], 0, dilation[1])
        cols = _im2col(x_pad, (kh, kw), stride, dilation, (oh, ow), groups)
        w = weight.reshape(groups, oc // groups, c_per_group * kh * kw)
        out = (w @ cols).reshape(oc, oh, ow, n)  # (G, OC/G, OH*OW*N) -> (OC, OH, OW, N)
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
        xp = get_array_module(grad)
        oc, c_per_group, kh, kw = weight.shape
        groups, (oh, ow) = ctx.groups, ctx.out_size
        # (N, OC, OH, OW) -> (OC, OH, OW, N) -> (G, OC/G, OH*OW*N); no copy when grad comes
        # back in the layout the forward produced
        g = grad.transpose(1, 2, 3, 0).reshape(groups, oc // groups, -1)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            w = weight.reshape(groups, oc // groups, -1)
            grad_cols = w.swapaxes(1, 2) @ g  # (G, C/G*KH*KW, OH*OW*N)
            # -> (C, KH, KW, OH, OW, N); col2im reads its (KH, KW, C, N, OH, OW) view
            n, c, hp, wp = ctx.x_pad_shape
            grad_cols = grad_cols.reshape(c, kh, kw, oh, ow, n)
            if kernels.enabled() and xp is not np:  # one gathering CUDA kernel instead
                grad_pad = cuda_kernels.col2im(grad_cols, (c, hp, wp, n), (kh, kw), ctx.stride,
                                               ctx.dilation, ctx.out_size).transpose(0, 3, 1, 2)
            else:
                grad_pad = xp.zeros((c, hp, wp, n), dtype=grad.dtype).transpose(0, 3, 1, 2)
                col2im(grad_cols.transpose(1, 2, 0, 5, 3, 4), grad_pad, (kh, kw), ctx.stride,
                       ctx.dilation, ctx.out_size)
            grad_x = _unpad(grad_pad, ctx.padding).transpose(1, 0, 2, 3)  # (C, N) -> NCHW
        if ctx.needs_input_grad[1]:
            grad_weight = (g @ cols.swapaxes(1, 2)).reshape(weight.shape)
        has_bias = len(ctx.needs_input_grad) == 3
        if has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(axis=(0, 2, 3))
        return (grad_x, grad_weight, grad_bias) if has_bias else (grad_x, grad_weight)


def pair(value, name: str, op: str) -> tuple:
    """An int or a pair of ints as a pair: 3 -> (3, 3)."""
    pair_ = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair_) != 2 or not all(isinstance(v, int) for v in pair_):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return pair_


def conv_padding(padding, kernel: tuple, stride: tuple, dilation: tuple) -> tuple:
    """(top, bottom, left, right) from an int, a pair, 'valid' or 'same' (stride 1 only)."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError("conv2d: padding='same' needs stride 1, as in PyTorch")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return (totals[0] // 2, totals[0] - totals[0] // 2, totals[1] // 2,
                totals[1] - totals[1] // 2)
    ph, pw = pair(padding, "padding", "conv2d")
    if ph < 0 or pw < 0:
        raise ValueError(f"conv2d: padding must be non-negative, got {padding!r}")
    return (ph, ph, pw, pw)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """2-D convolution of x (N, C, H, W) with weight (OC, C/groups, KH, KW), as PyTorch's."""
    if x.ndim != 4:
        raise ValueError(f"conv2d: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: expected a 4-D weight (OC, C/groups, KH, KW), got "
                         f"{weight.shape}")
    oc, c_per_group, kh, kw = weight.shape
    if groups < 1 or oc % groups or x.shape[1] != c_per_group * groups:
        raise ValueError(
            f"conv2d: input of shape {x.shape} has {x.shape[1]} channels, but the weight "
            f"{weight.shape} with groups={groups} expects {c_per_group * groups} "
            f"(and out channels {oc} divisible by groups)"
        )
    if bias is not None and bias.shape != (oc,):
        raise ValueError(f"conv2d: bias has shape {bias.shape}, expected ({oc},)")
    stride = pair(stride, "stride", "conv2d")
    dilation = pair(dilation, "dilation", "conv2d")
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"conv2d: stride and dilation must be >= 1, got {stride}, {dilation}")
    padding = conv_padding(padding, (kh, kw), stride, dilation)
    padded = (x.shape[2] + padding[0] + padding[1], x.shape[3] + padding[2] + padding[3])
    reach = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    if padded[0] < reach[0] or padded[1] < reach[1]:
        raise ValueError(
            f"conv2d: input of spatial size {x.shape[2:]} (padded to {padded}) is smaller than "
            f"the kernel {(kh, kw)} (reaching {reach} with dilation {dilation})"
        )
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d.apply(*inputs, stride=stride, padding=padding, dilation=dilation, groups=groups)
