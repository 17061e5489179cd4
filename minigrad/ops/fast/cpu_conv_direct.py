"""conv2d on the CPU computed directly, without im2col, for layers with few weights per output
(LeNet5's first: 1 input channel, 5x5, 6 filters): three compiled loops (minigrad/kernels/
cpu.py) in the batch-innermost layout of the CPU conv (ops/fast/cpu_conv.py).

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
the vector registers. Measured here (forward+backward, float32, against im2col): LeNet5's
conv1 (150 weights per position, batch 128) 6.2 -> 1.9 ms, its conv2 (2400, batch 64) 4.3 ->
2.0 ms; a U-Net's 3->16 3x3 at 8x64x64 3.6 -> 2.7 ms and its 16->16 17.7 -> 16.4 ms (the whole
U-Net block step 8% faster); VGG's first layer (3->64) at batch 8 10.9 -> 11.9 ms and its
64->64 25.6 -> 58.9 ms, so those stay with im2col. Hence the limits below.
"""

from __future__ import annotations

import numpy as np

from minigrad.autograd import Function
from minigrad.kernels import cpu as kernels
from minigrad.ops.conv import output_size, unpad
from minigrad.ops.fast.cpu_conv import _pad, batch_innermost, dense

MAX_WEIGHTS_PER_POSITION = 4096  # C * KH * KW * OC
MAX_OUT_CHANNELS = 32  # with more, the GEMM's reuse of each column wins
MIN_RUN = 256  # OW * N: the vectorized loops run along an output row and the batch


class Conv2dDirectCPU(Function):
    @staticmethod
    def supports(*, stride=None, dilation=None, groups=None, dtype=None, kernel=None,
                 channels=None, out_channels=None, batch=None, out_width=None, **_) -> bool:
        """Float32, one group, stride 1 and no dilation along a row (any along a column), few
        weights per output position, few output channels, and output rows (times the batch)
        long enough to vectorize."""
        return (kernels.available() and groups == 1 and dtype == np.float32
                and stride is not None and stride[1] == 1 and dilation[1] == 1
                and None not in (kernel, channels, out_channels, batch, out_width)
                and out_width * batch >= MIN_RUN and out_channels <= MAX_OUT_CHANNELS
                and channels * kernel[0] * kernel[1] * out_channels <= MAX_WEIGHTS_PER_POSITION)

    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride, padding, dilation, groups):
        n = x.shape[0]
        oc, _, kh, kw = weight.shape
        x_pad = _pad(batch_innermost(x), padding)  # NCHW view of (C, HP, WP, N) memory
        oh = output_size(x_pad.shape[2], kh, stride[0], 0, dilation[0])
        ow = output_size(x_pad.shape[3], kw, stride[1], 0, dilation[1])
        # (C, HP, WP, N): no copy but where a size-1 axis left the padding in another order
        x_inner = np.ascontiguousarray(x_pad.transpose(1, 2, 3, 0))
        out = np.empty((oc, oh, ow, n), dtype=x.dtype)
        b = bias if bias is not None else np.zeros(oc, dtype=x.dtype)
        taps = kernels.taps_weight(weight)
        kernels.run_split(kernels.conv2d_direct, [  # output channel pairs shared out
            (x_inner, taps[a:z], kw, b[a:z], stride[0], dilation[0], out[a:z])
            for a, z in kernels.parts(oc, 2)])
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
            dx = np.zeros(x_inner.shape, dtype=grad.dtype)
            flipped = kernels.taps_weight(weight, flip=True)
            kernels.run_split(kernels.conv2d_direct_backward_input, [  # input channel pairs
                (g, np.ascontiguousarray(flipped[:, a:z]), weight.shape[3], ctx.stride[0],
                 ctx.dilation[0], dx[a:z]) for a, z in kernels.parts(x_inner.shape[0], 2)])
            grad_x = dense(unpad(dx.transpose(3, 0, 1, 2), ctx.padding))  # NCHW view
        if needs[1] or (len(needs) == 3 and needs[2]):
            dw = np.zeros(weight.shape)
            db = np.zeros(weight.shape[0])
            kernels.run_split(kernels.conv2d_direct_backward_weight, [  # output channels
                (x_inner, g[a:z], ctx.stride[0], ctx.dilation[0], dw[a:z], db[a:z])
                for a, z in kernels.parts(weight.shape[0])])
            grad_weight = dw.astype(weight.dtype) if needs[1] else None
            grad_bias = db.astype(weight.dtype) if len(needs) == 3 and needs[2] else None
        return (grad_x, grad_weight, grad_bias) if len(needs) == 3 else (grad_x, grad_weight)
