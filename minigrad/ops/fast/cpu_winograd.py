"""conv2d for 3x3 kernels at stride 1 on the CPU by Winograd's F(2x2, 3x3): the convolution of
ops/conv.py with 2.25x fewer multiplications than im2col + GEMM (the idea, the matrices and
the backward as adjoints are explained in ops/fast/cuda_winograd.py, the GPU's version).

In the CPU path's batch-innermost layout, x (C, H, W, N) zero-padded to whole 2x2 output
tiles, tile p = (ty, tx, n), its 16 points xi the rows:

    U = G g G^T (16, K, C), once per call (NumPy: 3x3 -> 4x4 per filter)
    per block of tile rows:
        V = BT d BT^T (16, C, P)                 kernels.winograd_input
        M = U @ V, 16 GEMMs (16, K, P)           OpenBLAS, through np.matmul
        out = AT M AT^T + bias (K, OH, OW, N)    kernels.winograd_output
    backward, per block: dM = A dy A^T (kernels.winograd_output_adjoint), then
        grad_x: dV = U^T @ dM, dx += B dV B^T over the overlapping patches
        grad_W: dU += dM @ V^T (V recomputed), then dg = G^T dU G

The transforms are additions only (F(2x2)'s matrices hold 0, +-1 and, in G, 1/2), compiled
loops vectorized along the batch. Measured here against im2col + OpenBLAS (forward, then
forward+backward, per layer): benchmarks/cpu_conv_paths.py, in RESULTS.md ("CPU Winograd"). The
rounding is that of the GPU's fp32 F(2x2) path (benchmarks/winograd_accuracy.py): within
1e-5 of the output's range against float64 on VGG16's layers.
"""

from __future__ import annotations

import numpy as np

from minigrad.autograd import Function
from minigrad.kernels import cpu as kernels
from minigrad.kernels.winograd import F2
from minigrad.ops import fast
from minigrad.ops.conv import Conv2d
from minigrad.ops.fast.cpu_conv import dense

MIN_CHANNELS = 16  # fewer input channels: the transforms cost more than the GEMMs save
MIN_BATCH = 8  # the transforms are vectorized along the batch
MIN_RUN = 128  # OW * N: fewer tiles, and transforming the weights costs more than it saves
BLOCK_BYTES = 16 * 2**20  # V and M of one block of tile rows, at most (one row at least)
G = F2.array("G")  # (4, 3)


def filter_transform(weight):
    """U[4 a + b, k, c] = (G g[k, c] G^T)[a, b]: (K, C, 3, 3) -> (16, K, C)."""
    k, c = weight.shape[:2]
    u = np.tensordot(G, weight.astype(np.float32), axes=([1], [2]))  # (4, K, C, 3)
    u = np.tensordot(u, G, axes=([3], [1]))  # (4 a, K, C, 4 b): GEMMs, not a loop per filter
    return np.ascontiguousarray(u.transpose(0, 3, 1, 2)).reshape(16, k, c)


def filter_adjoint(du, shape):
    """dg[k, c] = G^T dU[:, k, c] G: (16, K, C) -> (K, C, 3, 3), float32."""
    dg = np.tensordot(G, du.reshape(4, 4, *shape[:2]), axes=([0], [0]))  # (3 i, 4, K, C)
    dg = np.tensordot(dg, G, axes=([1], [0]))  # (3 i, K, C, 3 j)
    return np.ascontiguousarray(dg.transpose(1, 2, 0, 3), dtype=np.float32)


def _geometry(x_shape, padding):
    """(OH, OW, TH, TW): the output's size and its tiles (rows and columns of 2x2)."""
    top, bottom, left, right = padding
    oh, ow = x_shape[2] + top + bottom - 2, x_shape[3] + left + right - 2
    return oh, ow, -(-oh // 2), -(-ow // 2)


class Conv2dWinogradCPU(Function):
    reference = Conv2d

    @staticmethod
    def supports(*, stride=None, dilation=None, groups=None, kernel=None, dtype=None,
                 channels=None, batch=None, out_width=None, **_) -> bool:
        """3x3, stride 1, no dilation, one group, float32, 16 input channels or more, a batch
        of 8 or more and output rows (times the batch) of 128 or more."""
        return (kernels.available() and kernel == (3, 3) and stride == (1, 1)
                and dilation == (1, 1) and groups == 1 and dtype == np.float32
                and None not in (channels, batch, out_width) and channels >= MIN_CHANNELS
                and batch >= MIN_BATCH and out_width * batch >= MIN_RUN)

    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride, padding, dilation, groups):
        (n, c, h, w), k = x.shape, weight.shape[0]
        top, _, left, _ = padding
        oh, ow, th, tw = _geometry(x.shape, padding)
        tiles = np.zeros((c, 2 * th + 2, 2 * tw + 2, n), dtype=np.float32)
        tiles[:, top:top + h, left:left + w] = x.transpose(1, 2, 3, 0)
        u = filter_transform(weight)
        out = np.empty((k, 2 * th, 2 * tw, n), dtype=np.float32)  # whole tiles
        b = np.ascontiguousarray(bias) if bias is not None else np.zeros(k, dtype=np.float32)
        for first, stop in _blocks(th, tw * n * (c + k)):
            v = np.empty((16, c, (stop - first) * tw * n), dtype=np.float32)
            _split(kernels.winograd_input, first, tiles, v)
            _split(kernels.winograd_output, first, np.matmul(u, v), b, out)
        if out.shape[1:3] != (oh, ow):  # an odd size: the tiles' last row or column cut off
            out = np.ascontiguousarray(out[:, :oh, :ow])
        ctx.save_for_backward(tiles, u)
        ctx.x_shape, ctx.weight_shape, ctx.padding = x.shape, weight.shape, padding
        return out.transpose(3, 0, 1, 2)  # the NCHW view

    @staticmethod
    def backward(ctx, grad):
        tiles, u = ctx.saved_tensors
        (n, c, h, w), k = ctx.x_shape, ctx.weight_shape[0]
        top, _, left, _ = ctx.padding
        oh, ow, th, tw = _geometry(ctx.x_shape, ctx.padding)
        g = np.ascontiguousarray(grad.transpose(1, 2, 3, 0))  # (K, OH, OW, N); no copy as a rule
        if (oh, ow) != (2 * th, 2 * tw):  # an odd size: zeros fill the tiles
            g_tiles = np.zeros((k, 2 * th, 2 * tw, n), dtype=np.float32)
            g_tiles[:, :oh, :ow] = g
        else:
            g_tiles = g
        needs = ctx.needs_input_grad
        dx = np.zeros_like(tiles) if needs[0] else None
        du = np.zeros((16, k, c), dtype=np.float32) if needs[1] else None
        for first, stop in _blocks(th, tw * n * (c + k)):
            dm = np.empty((16, k, (stop - first) * tw * n), dtype=np.float32)
            _split(kernels.winograd_output_adjoint, first, g_tiles, dm)
            if needs[1]:
                v = np.empty((16, c, dm.shape[2]), dtype=np.float32)
                _split(kernels.winograd_input, first, tiles, v)
                du += np.matmul(dm, v.transpose(0, 2, 1))
            if needs[0]:
                _split(kernels.winograd_input_adjoint, first, np.matmul(u.transpose(0, 2, 1), dm),
                       dx)
        grad_x = (dense(dx[:, top:top + h, left:left + w].transpose(3, 0, 1, 2))
                  if needs[0] else None)
        grad_weight = filter_adjoint(du, ctx.weight_shape) if needs[1] else None
        if len(needs) == 2:
            return grad_x, grad_weight
        grad_bias = g.sum(axis=(1, 2, 3)) if needs[2] else None
        return grad_x, grad_weight, grad_bias


def _split(kernel, row0: int, source, result, *more) -> None:
    """kernel(source, result, *more, a, z, row0), a transform of the channels [a, z) of one
    block of tile rows (from row0), over ranges of the channels shared out among the kernels'
    threads (about 4 additions per point of the block's V or M)."""
    points = source if source.ndim == 3 else result  # the block's (16, channels, P)
    channels, points = points.shape[1], points.size
    kernels.run_split(kernel, [(source, result, *more, a, z, row0)
                               for a, z in kernels.parts(channels, work=4 * points)])


def _blocks(tile_rows: int, floats_per_row: int) -> list[tuple[int, int]]:
    """Blocks of tile rows whose V and M (16 floats per point) fit BLOCK_BYTES."""
    return fast.blocks(tile_rows, 16 * 4 * floats_per_row, BLOCK_BYTES)
