"""Embedding's backward on the CPU without np.add.at: a compiled loop (minigrad/kernels/cpu.py)
adds each looked-up row's gradient into its row of the table, in index order, so repeated
indices add up exactly as in the reference (ops/upsample.py). np.add.at is an unbuffered
ufunc that handles one element at a time; this moves whole rows. Any float dtype; the
forward is the reference's own gather (weight[indices] is already fast)."""

from __future__ import annotations

import numpy as np

from minigrad.kernels import cpu as kernels
from minigrad.ops.upsample import Embedding


class EmbeddingCPU(Embedding):
    @staticmethod
    def supports(dtype=None, **_):
        return kernels.available() and dtype in (np.float32, np.float64)

    @staticmethod
    def backward(ctx, grad):
        grad_weight = np.zeros(ctx.shape, dtype=grad.dtype)
        flat = np.ascontiguousarray(ctx.indices, dtype=np.int64).reshape(-1)
        kernels.embedding_backward(flat, np.ascontiguousarray(grad).reshape(flat.size, -1),
                                   grad_weight.reshape(ctx.shape[0], -1))
        if ctx.padding_idx is not None:
            grad_weight[ctx.padding_idx] = 0
        return grad_weight
