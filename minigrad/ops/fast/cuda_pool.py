"""Max pooling on CUDA: the reference's result (MaxPool2d in ops/pool.py), one kernel each
way on NCHW-contiguous arrays. The forward saves only the window offset of each maximum
(int8 for windows of up to 127 elements), not the input; the backward gathers through it.
"""

from __future__ import annotations

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.kernels import pool as cuda_kernels
from minigrad.ops.pool import MaxPool2d, pool_output_size


class MaxPool2dCUDA(Function):
    reference = MaxPool2d

    @staticmethod
    def supports(*, dilation=(1, 1), **settings) -> bool:
        return dilation == (1, 1)  # the kernel scans undilated windows (ceil mode included)

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, dilation=(1, 1), ceil_mode=False):
        xp = get_array_module(x)
        x = xp.ascontiguousarray(x)
        n, c, h, w = x.shape
        oh, ow = (pool_output_size(size, k, s, p, 1, ceil_mode)
                  for size, k, s, p in zip((h, w), kernel, stride, padding))
        out = xp.empty((n, c, oh, ow), dtype=x.dtype)
        argmax = xp.empty(out.shape, dtype=cuda_kernels.argmax_dtype(kernel))
        cuda_kernels.max_pool(x, out, argmax, kernel, stride, padding)
        ctx.save_for_backward(argmax)
        ctx.x_shape, ctx.kernel, ctx.stride, ctx.padding = x.shape, kernel, stride, padding
        return out

    @staticmethod
    def backward(ctx, grad):
        (argmax,) = ctx.saved_tensors
        xp = get_array_module(grad)
        grad_x = xp.empty(ctx.x_shape, dtype=grad.dtype)
        return cuda_kernels.max_pool_backward(xp.ascontiguousarray(grad), argmax, grad_x,
                                              ctx.kernel, ctx.stride, ctx.padding)
