"""conv2d on CUDA: the reference's mathematics (ops/conv.py), built for how CuPy runs.

Activations stay NCHW and C-contiguous (CuPy's elementwise ops return C-contiguous arrays
whatever layout they are given, so a conv that wanted another layout would pay a transpose
per layer). For each chunk of the batch:

    im2col kernel:  x[chunk] (Nc, C, H, W) -> cols (C*KH*KW, Nc*OH*OW), padding read as zeros
    2-D GEMM:       out2d = W2d (OC, C*KH*KW) @ cols                       (OC, Nc*OH*OW)
    layout kernel:  out[chunk] (Nc, OC, OH, OW) = out2d as (Nc, OC, OH*OW) + bias

and backward, with g2d the chunk's output gradient as (OC, Nc*OH*OW) (a layout kernel):

    grad_W2d  += g2d @ cols.T      (cols built again by the im2col kernel)
    grad_bias += g2d summed over its rows
    grad_cols  = W2d.T @ g2d,  then the col2im kernel gathers it into grad_x[chunk]

The GEMMs are 2-D, so cuBLAS takes the transposes without copies and TF32 reaches them:
they run in TF32 while `mg.backends.cudnn.allow_tf32` is True (PyTorch's default), whatever
the matmul setting (CuPy runs a 3-D matmul through a batched path that ignores TF32 and copies
non-contiguous operands). The forward saves x and the weight, not cols: the columns of one
chunk at a time exist, COLS_BUDGET_BYTES at most (one image's worth when that is more), so
memory stays near PyTorch's. With groups, each group's rows of W2d and cols are contiguous
blocks and get a 2-D GEMM of their own.
"""

from __future__ import annotations

from minigrad import backend
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.kernels import im2col as cuda_kernels
from minigrad.ops import fast
from minigrad.ops.conv import Conv2d, output_size

# the columns of one chunk of the batch, at most. On the H100 (VGG16, batch 64, TF32): 256 MiB
# 319 images/s and 5.6 GiB peak, 512 MiB 717 and 6.0 GiB, 1 GiB 734 and 6.6 GiB, 2 GiB 737 and
# 7.8 GiB (256 MiB measured with earlier kernels)
COLS_BUDGET_BYTES = 1024 * 2**20


def batch_chunks(batch: int, bytes_per_image: int) -> list[tuple[int, int]]:
    """(start, stop) ranges over the batch whose columns fit COLS_BUDGET_BYTES (>= 1 image)."""
    return fast.blocks(batch, bytes_per_image, COLS_BUDGET_BYTES)


def _group_products(xp, a, b, groups: int, transpose_a=False, transpose_b=False):
    """a @ b (either transposed) per group, a and b each split into `groups` blocks of rows,
    the products stacked along their first axis: one 2-D GEMM per group. A transposed `a` (a
    weight, small) is copied contiguous first: on the H100, cuBLAS ran the TN product of
    W.T @ g at 176-195 TFLOP/s with TF32, the NN product at 273-278."""
    products = []
    for a_g, b_g in zip(xp.split(a, groups), xp.split(b, groups)):
        products.append((xp.ascontiguousarray(a_g.T) if transpose_a else a_g)
                        @ (b_g.T if transpose_b else b_g))
    return products[0] if groups == 1 else xp.concatenate(products)


class Conv2dCUDA(Function):
    reference = Conv2d

    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride, padding, dilation, groups):
        xp = get_array_module(x)
        x = xp.ascontiguousarray(x)
        (n, c, h, w), (oc, _, kh, kw) = x.shape, weight.shape
        top, bottom, left, right = padding
        oh = output_size(h, kh, stride[0], top + bottom, dilation[0])
        ow = output_size(w, kw, stride[1], left + right, dilation[1])
        geometry = ((kh, kw), stride, (top, left), dilation, (oh, ow))
        w2d, rows = weight.reshape(oc, -1), c * kh * kw
        out = xp.empty((n, oc, oh, ow), dtype=x.dtype)
        for start, stop in batch_chunks(n, rows * oh * ow * x.itemsize):
            cols = xp.empty((rows, (stop - start) * oh * ow), dtype=x.dtype)
            cuda_kernels.im2col(x[start:stop], cols, *geometry)
            with backend.float32_gemms(backend.conv_tf32()):
                out2d = _group_products(xp, w2d, cols, groups)
            # (OC, Nc*OH*OW) -> (Nc, OC, OH, OW), the bias added in the same pass
            if bias is None:
                source = out2d.reshape(oc, stop - start, oh * ow).transpose(1, 0, 2)
                out[start:stop].reshape(stop - start, oc, oh * ow)[...] = source
            else:
                cuda_kernels.gemm_to_nchw(out2d, bias, out[start:stop])
        ctx.save_for_backward(x, weight)
        ctx.geometry, ctx.groups = geometry, groups
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        xp = get_array_module(grad)
        g = xp.ascontiguousarray(grad)
        (n, c) = x.shape[:2]
        (oc, _, kh, kw), (oh, ow), groups = weight.shape, ctx.geometry[4], ctx.groups
        w2d, rows = weight.reshape(oc, -1), c * kh * kw
        need_x, need_w = ctx.needs_input_grad[:2]
        need_bias = len(ctx.needs_input_grad) == 3 and ctx.needs_input_grad[2]
        grad_x = xp.empty_like(x) if need_x else None
        grad_w2d = xp.zeros(w2d.shape, dtype=weight.dtype) if need_w else None
        grad_bias = xp.zeros(oc, dtype=weight.dtype) if need_bias else None
        for start, stop in batch_chunks(n, rows * oh * ow * x.itemsize):
            # (Nc, OC, OH, OW) -> g2d (OC, Nc*OH*OW)
            g2d = xp.empty((oc, (stop - start) * oh * ow), dtype=g.dtype)
            cuda_kernels.nchw_to_gemm(g[start:stop], g2d)
            if need_bias:
                grad_bias += g2d.sum(axis=1)  # contiguous rows: a fast reduction
            if need_w:
                cols = xp.empty((rows, g2d.shape[1]), dtype=x.dtype)
                cuda_kernels.im2col(x[start:stop], cols, *ctx.geometry)
                with backend.float32_gemms(backend.conv_tf32()):
                    grad_w2d += _group_products(xp, g2d, cols, groups, transpose_b=True)
                cols = None  # free before grad_cols takes its place
            if need_x:
                with backend.float32_gemms(backend.conv_tf32()):
                    grad_cols = _group_products(xp, w2d, g2d, groups, transpose_a=True)
                cuda_kernels.col2im(grad_cols, grad_x[start:stop], *ctx.geometry)
                grad_cols = None  # free before the next chunk's cols
        grad_weight = grad_w2d.reshape(weight.shape) if need_w else None
        if len(ctx.needs_input_grad) == 2:
            return grad_x, grad_weight
        return grad_x, grad_weight, grad_bias
