"""conv2d on the CPU computed directly, without im2col, for layers with few output channels
(LeNet5's, a small U-Net's): three compiled loops (minigrad/kernels/cpu.py) in the
batch-innermost layout of the CPU conv (ops/fast/cpu_conv.py).

im2col copies the input KH*KW times (25x for a 5x5 kernel) into a matrix that the GEMM then
reads once more; with one input channel and six filters the GEMM does 6 multiply-adds per
element it reads, so the layer is all memory traffic. Here each output row is built by one
sweep per weight over a row of the input that is already in cache, vectorized along the batch:

    out[o, i, j, n] = bias[o] + sum over c, kh, kw of w[o, c, kh, kw] x[c, i s + kh d, j + kw, n]
    dw[o, c, kh, kw] = sum over i, j, n of g[o, i, j, n] x[c, i s + kh d, j + kw, n]
    dx[c, i s + kh d, j + kw, n] += w[o, c, kh, kw] g[o, i, j, n]

(any stride and dilation down the columns; along a row stride 1 and no dilation, where the
input under one kernel tap for a whole output row is one contiguous run).

The work is C*KH*KW*OC multiply-adds per output position, which im2col + GEMM does faster once
it is large, and the loops are vectorized along the batch, which must be long enough to fill
the vector registers. A 3x3 kernel has sweeps of its own that take all nine taps at once (each
output row loaded and stored once per input channel, not once per kernel row), the input's
gradient is then the forward's sum over the gradient padded by the kernel's reach (stride 1
down the columns), and each of the three loops shares its channels out over the kernels'
threads (kernels.run_split). Measured here (forward+backward, float32, two threads, against
im2col + OpenBLAS): 5x5, 12 -> 16 channels at 64x12x14x14, 2.8 against 4.5 ms; 3x3, 16 -> 32 at
8x16x64x64 12.8 against 19.6 ms, 32 -> 32 at 8x32x32x32 6.9 against 7.9, 64 -> 32 at 8x64x32x32
13.3 against 20.1; but 64 -> 64 at 8x64x64x64 102 against 110 ms with its forward slower (30
against 25), and 128 -> 128 at 8x128x32x32 88 against 84: with many output channels the GEMM's
reuse of each column wins. Hence the limits below.

An image's first layer (3 channels, 3x3: im2col rows of 27) with more output channels than that
(a VGG's 64) runs its forward here too, and its backward as Conv2dCPU's GEMMs
(Conv2dShortRowsCPU): a GEMM with only 27 products per output runs at half OpenBLAS's speed
(64 x 27 by 27 x 32768, 1.2 ms), where the direct forward takes 1.4 against im2col's 1.7 ms at
8x3x64x64 (4.3 against 7.0 at 2x3x224x224), but the GEMMs' backward is the faster.
"""

from __future__ import annotations

import numpy as np

from minigrad.autograd import Function
from minigrad.kernels import cpu as kernels
from minigrad.ops import fast
from minigrad.ops.conv import Conv2d, output_size, unpad
from minigrad.ops.fast.cpu_conv import CHUNK_BYTES, Conv2dCPU, _pad, batch_innermost, dense

MAX_WEIGHTS_PER_POSITION = 32768  # C * KH * KW * OC
MAX_OUT_CHANNELS = 32  # with more, the GEMM's reuse of each column wins
MIN_RUN = 256  # OW * N: the vectorized loops run along an output row and the batch
MAX_SHORT_ROWS = 32  # C * KH * KW of Conv2dShortRowsCPU: an RGB image's 3x3 first layer


def _direct_fits(max_out_channels, *, stride=None, dilation=None, groups=None, dtype=None,
                 kernel=None, channels=None, out_channels=None, batch=None, out_width=None,
                 **_) -> bool:
    """Float32, one group, stride 1 and no dilation along a row (any along a column), few
    weights per output position, at most `max_out_channels`, and output rows (times the
    batch) long enough to vectorize."""
    return (kernels.available() and groups == 1 and dtype == np.float32
            and stride is not None and stride[1] == 1 and dilation[1] == 1
            and None not in (kernel, channels, out_channels, batch, out_width)
            and out_width * batch >= MIN_RUN and out_channels <= max_out_channels
            and channels * kernel[0] * kernel[1] * out_channels <= MAX_WEIGHTS_PER_POSITION)


class Conv2dDirectCPU(Function):
    reference = Conv2d

    @staticmethod
    def supports(**facts) -> bool:
        return _direct_fits(MAX_OUT_CHANNELS, **facts)

    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride, padding, dilation, groups):
        x_inner, out = _direct_forward(x, weight, bias, stride, padding, dilation)
        ctx.save_for_backward(x_inner, weight)
        ctx.stride, ctx.padding, ctx.dilation = stride, padding, dilation
        return out.transpose(3, 0, 1, 2)  # the NCHW view

    @staticmethod
    def backward(ctx, grad):
        x_inner, weight = ctx.saved_tensors
        g = grad.transpose(1, 2, 3, 0)  # (OC, OH, OW, N); no copy in the forward's layout
        if not g.flags.c_contiguous:
            g = np.ascontiguousarray(g)
        grad_x = grad_weight = grad_bias = None
        needs = ctx.needs_input_grad
        if needs[0]:
            dx = _input_gradient(g, weight, ctx.stride[0], ctx.dilation[0], x_inner.shape)
            grad_x = dense(unpad(dx.transpose(3, 0, 1, 2), ctx.padding))  # NCHW view
        if needs[1] or (len(needs) == 3 and needs[2]):
            dw = np.zeros(weight.shape)
            db = np.zeros(weight.shape[0])
            kernels.run_split(kernels.conv2d_direct_backward_weight, [  # output channels
                (x_inner, g[a:z], ctx.stride[0], ctx.dilation[0], dw[a:z], db[a:z])
                for a, z in kernels.parts(weight.shape[0], work=weight.size * g[0].size)])
            grad_weight = dw.astype(weight.dtype) if needs[1] else None
            grad_bias = db.astype(weight.dtype) if len(needs) == 3 and needs[2] else None
        return (grad_x, grad_weight, grad_bias) if len(needs) == 3 else (grad_x, grad_weight)


class Conv2dShortRowsCPU(Conv2dCPU):
    """A layer whose im2col rows are short (C*KH*KW <= MAX_SHORT_ROWS) with more output
    channels than Conv2dDirectCPU takes: the direct forward, and Conv2dCPU's backward, whose
    GEMMs read the columns im2col rebuilds from the saved padded input (module docstring)."""

    @staticmethod
    def supports(**facts) -> bool:
        kernel, channels = facts.get("kernel"), facts.get("channels")
        return (None not in (kernel, channels)
                and channels * kernel[0] * kernel[1] <= MAX_SHORT_ROWS
                and _direct_fits(MAX_WEIGHTS_PER_POSITION, **facts))

    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride, padding, dilation, groups):
        x_inner, out = _direct_forward(x, weight, bias, stride, padding, dilation)
        (_, oh, ow, n), (c, kh, kw) = out.shape, weight.shape[1:]
        # what Conv2dCPU.backward reads: the padded input (its NCHW view), and blocks of
        # output rows whose columns it rebuilds within CHUNK_BYTES
        ctx.save_for_backward(x_inner.transpose(3, 0, 1, 2), weight)
        ctx.blocks = fast.blocks(oh, c * kh * kw * ow * n * x.itemsize, CHUNK_BYTES)
        ctx.x_pad_shape, ctx.out_size = (n, c, *x_inner.shape[1:3]), (oh, ow)
        ctx.stride, ctx.padding, ctx.dilation, ctx.groups = stride, padding, dilation, groups
        return out.transpose(3, 0, 1, 2)


def _direct_forward(x, weight, bias, stride, padding, dilation):
    """(x_inner, out): the padded input as (C, HP, WP, N) and the direct convolution's output
    (OC, OH, OW, N), both batch innermost."""
    oc, _, kh, kw = weight.shape
    x_pad = _pad(batch_innermost(x), padding)  # NCHW view of (C, HP, WP, N) memory
    oh = output_size(x_pad.shape[2], kh, stride[0], 0, dilation[0])
    ow = output_size(x_pad.shape[3], kw, stride[1], 0, dilation[1])
    # (C, HP, WP, N): no copy but where a size-1 axis left the padding in another order
    x_inner = np.ascontiguousarray(x_pad.transpose(1, 2, 3, 0))
    out = np.empty((oc, oh, ow, x.shape[0]), dtype=x.dtype)
    b = bias if bias is not None else np.zeros(oc, dtype=x.dtype)
    _direct(x_inner, weight, b, stride[0], dilation[0], out)
    return x_inner, out


def _direct(x_inner, weight, bias, stride_h, dilation_h, out):
    """out (OC, OH, OW, N) = the direct convolution of x_inner (C, HP, WP, N), its output
    channels shared out over threads: in fours for a 3x3 kernel (conv2d_direct_3x3), else in
    pairs (conv2d_direct, weight padded to its taps)."""
    oc, _, kh, kw = weight.shape
    parts = kernels.parts(oc, 4 if (kh, kw) == (3, 3) else 2, work=weight.size * out[0].size)
    if (kh, kw) == (3, 3):
        kernels.run_split(kernels.conv2d_direct_3x3, [
            (x_inner, weight[a:z], bias[a:z], stride_h, dilation_h, out[a:z])
            for a, z in parts])
        return
    taps = kernels.taps_weight(weight)
    kernels.run_split(kernels.conv2d_direct, [
        (x_inner, taps[a:z], kw, bias[a:z], stride_h, dilation_h, out[a:z]) for a, z in parts])


def _input_gradient(g, weight, stride_h, dilation_h, shape):
    """dx (C, HP, WP, N), the gradient of the padded input. With stride 1 down the columns it
    is the forward's sum again, a "full" convolution: g padded by the kernel's reach on every
    side, convolved with the kernel turned half round (flipped both ways) and its channel axes
    swapped, so the forward's sweeps (all 3x3 at once) serve; with a stride it is scattered
    from each row of g (conv2d_direct_backward_input)."""
    out_channels, channels, kernel_h, kernel_w = weight.shape
    if stride_h == 1:
        top, left = (kernel_h - 1) * dilation_h, kernel_w - 1
        oc, oh, ow, n = g.shape
        g_pad = np.zeros((oc, oh + 2 * top, ow + 2 * left, n), dtype=g.dtype)
        g_pad[:, top:top + oh, left:left + ow] = g
        turned = np.ascontiguousarray(weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
        dx = np.empty(shape, dtype=g.dtype)
        _direct(g_pad, turned, np.zeros(channels, dtype=g.dtype), 1, dilation_h, dx)
        return dx
    dx = np.zeros(shape, dtype=g.dtype)
    flipped = kernels.taps_weight(weight, flip=True)
    kernels.run_split(kernels.conv2d_direct_backward_input, [  # input channel pairs
        (g, np.ascontiguousarray(flipped[:, a:z]), kernel_w, stride_h, dilation_h, dx[a:z])
        for a, z in kernels.parts(channels, 2, work=weight.size * g[0].size)])
    return dx
