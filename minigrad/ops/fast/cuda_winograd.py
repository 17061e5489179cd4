"""conv2d for 3x3 kernels at stride 1 on CUDA by Winograd's minimal filtering: the same
convolution as ops/conv.py with 2.25x (F(2x2, 3x3)) or 4x (F(4x4, 3x3)) fewer multiplications.

Why it works. A 1-D convolution of a 3-tap filter g with 4 inputs d, giving 2 outputs, is the
product of two polynomials' coefficients, and such a product can be found by evaluating both
polynomials at 4 points, multiplying the 4 values pairwise and interpolating back. The
evaluations and the interpolation are fixed linear maps, matrices G (filter, 4x3), BT (input,
4x4) and AT (output, 2x4) whose entries are small fractions, so

    y = AT [(G g) * (BT d)]              (* elementwise: 4 multiplications instead of 6)

and in 2-D, applying each map along both axes, Y = AT [(G g G^T) * (BT d BT^T)] AT^T: 16
multiplications for a 2x2 output tile instead of 36. Summed over the input channels, the
elementwise products become 16 independent matrix products, one per point xi of the 4x4 tile:
M[xi] (K, tiles) = U[xi] (K, C) @ V[xi] (C, tiles). F(4x4, 3x3) uses 6 points per axis (36
products for 16 outputs instead of 144) at the price of larger fractions in the matrices,
and so more rounding. The matrices are in minigrad/kernels/winograd.py (Lavin & Gray, "Fast
Algorithms for Convolutional Neural Networks", 2015).

Per chunk of the batch (x NCHW contiguous, P = the chunk's tiles):
    U = filter transform of the weight (T, K, C), once per call   (T = 16 or 36 points)
    V = input transform of x (T, C, P);  M = U @ V, T batched GEMMs (T, K, P)
    out = output transform of M, + bias
Backward, with dM the output transform's adjoint applied to the output gradient:
    grad_x: dV = U^T @ dM, then the input transform's adjoint (overlapping tiles gathered)
    grad_W: dU += dM @ V^T (V recomputed, as the im2col path recomputes its columns),
            then the filter transform's adjoint;      grad_bias = the gradient's sum

The GEMMs are cuBLAS's strided-batched ones (kernels/gemm.py): in TF32 while
`mg.backends.cudnn.allow_tf32` allows it, in float16 on tensor cores with float32 sums under
autocast. V, M and the gradients stay within BUDGET_BYTES a chunk. The tile size per
precision was chosen from the error measured against float64 on VGG16's layers
(benchmarks/winograd_accuracy.py, RESULTS.md): TILE_FOR_PRECISION below.
"""

from __future__ import annotations

import os

import numpy as np

from minigrad import backend
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.kernels import gemm
from minigrad.kernels import winograd as kernels
from minigrad.ops import fast
from minigrad.ops.conv import Conv2d

# Which tile each precision uses: F(4x4) only where its rounding stays within 1e-5 of the
# output's range against float64 on VGG16's layers (benchmarks/winograd_accuracy.py).
TILE_FOR_PRECISION = {"fp32": 2, "tf32": 2, "fp16": 2}
MIN_CHANNELS = 16  # fewer input channels: the transforms cost more than the GEMMs save
BUDGET_BYTES = 1024 * 2**20  # V, M and their gradients for one chunk of the batch, at most
_enabled = os.environ.get("MINIGRAD_WINOGRAD", "1") != "0"


def enable(on: bool = True) -> None:
    """Use Winograd for the convolutions it supports on CUDA (the default), or im2col."""
    global _enabled
    _enabled = bool(on)


def precision(dtype) -> str:
    """"fp16", "tf32" or "fp32": how a convolution of `dtype` runs its GEMMs now."""
    if np.dtype(dtype) == np.float16:
        return "fp16"
    return "tf32" if backend.conv_tf32() and backend.tf32_hardware() else "fp32"


def _plan(x_shape, padding, m: int) -> kernels.Plan:
    (h, w), (top, bottom, left, right) = x_shape[2:], padding
    return kernels.Plan(m, h, w, top, left, h + top + bottom - 2, w + left + right - 2)


class Conv2dWinogradCUDA(Function):
    reference = Conv2d

    @staticmethod
    def supports(*, stride=None, padding=None, dilation=None, groups=None, kernel=None, dtype=None,
                 channels=None, **_) -> bool:
        return (_enabled and kernel == (3, 3) and stride == (1, 1) and dilation == (1, 1)
                and groups == 1 and dtype in (np.float32, np.float16)
                and channels is not None and channels >= MIN_CHANNELS)

    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride, padding, dilation, groups):
        xp = get_array_module(x)
        x = xp.ascontiguousarray(x)
        (n, c), k = x.shape[:2], weight.shape[0]
        ctx.precision = precision(x.dtype)
        m = TILE_FOR_PRECISION[ctx.precision]
        plan = _plan(x.shape, padding, m)
        u = kernels.filter_transform(weight, m, xp)  # (T, K, C)
        bias = xp.zeros(k, dtype=x.dtype) if bias is None else bias
        out = xp.empty((n, k, plan.oh, plan.ow), dtype=x.dtype)
        tiles_per_image = plan.th * plan.tw
        per_image = plan.points * tiles_per_image * (c * x.itemsize + k * 4)
        for start, stop in fast.blocks(n, per_image, BUDGET_BYTES):
            v = kernels.input_transform(x[start:stop], plan, xp)  # (T, C, P)
            mm = xp.empty((plan.points, k, v.shape[2]), dtype=np.float32)
            gemm.batched_matmul(u, v, mm, tf32=ctx.precision == "tf32")
            kernels.output_transform(mm, bias, out[start:stop], plan)
        ctx.save_for_backward(x, weight, u)
        ctx.plan = plan
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, u = ctx.saved_tensors
        xp = get_array_module(grad)
        g = xp.ascontiguousarray(grad)
        plan, tf32 = ctx.plan, ctx.precision == "tf32"
        (n, c), k = x.shape[:2], weight.shape[0]
        need_x, need_w = ctx.needs_input_grad[:2]
        need_bias = len(ctx.needs_input_grad) == 3 and ctx.needs_input_grad[2]
        grad_x = xp.empty_like(x) if need_x else None
        du = xp.zeros(u.shape, dtype=np.float32) if need_w else None
        per_image = plan.points * plan.th * plan.tw * (k * x.itemsize + c * (x.itemsize + 4))
        for start, stop in fast.blocks(n, per_image, BUDGET_BYTES):
            dm = kernels.output_adjoint(g[start:stop], plan, xp)  # (T, K, P)
            if need_w:
                v = kernels.input_transform(x[start:stop], plan, xp)
                gemm.batched_matmul(dm, v, du, trans_b=True, accumulate=True, tf32=tf32)
                v = None  # free before dV takes its place
            if need_x:
                dv = xp.empty((plan.points, c, dm.shape[2]), dtype=np.float32)
                gemm.batched_matmul(u, dm, dv, trans_a=True, tf32=tf32)
                kernels.input_adjoint(dv, grad_x[start:stop], plan)
                dv = None
        grad_weight = (kernels.filter_adjoint(du, weight.shape, weight.dtype, plan.m, xp)
                       if need_w else None)
        if len(ctx.needs_input_grad) == 2:
            return grad_x, grad_weight
        grad_bias = (g.sum(axis=(0, 2, 3), dtype=np.float32).astype(g.dtype)  # float16: fp32 sums
                     if need_bias else None)
        return grad_x, grad_weight, grad_bias
