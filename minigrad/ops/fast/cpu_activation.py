"""GELU, SiLU, softmax, log-softmax and ReLU's backward on the CPU, each one compiled loop over
the data (minigrad/kernels/cpu.py), for float32: the reference Functions' formulas
(ops/activation.py), without NumPy's pass per ufunc (the reference's exact GELU takes about
twenty).

The forward saves its input (GELU, SiLU) or its output (softmax), as the reference does, and
the backward recomputes what the formula needs from it in the same loop. Softmax works on
the rows of the last axis; another `dim` is moved last and back (one copy each way).
"""

from __future__ import annotations

import numpy as np

from minigrad.autograd import Function
from minigrad.kernels import cpu as kernels
from minigrad.ops.activation import GELU, LogSoftmax, ReLU, SiLU, Softmax
from minigrad.ops.fast.cpu_pool import same_layout


def compiled_float32(dtype=None, **_) -> bool:
    """The compiled kernels can run (Numba is there and on) and the data is float32."""
    return kernels.available() and dtype == np.float32


def compiled_float32_rows(dtype=None, ndim=1, **_) -> bool:
    """As compiled_float32, for an op along an axis (not on a 0-d array)."""
    return compiled_float32(dtype) and ndim >= 1


def contiguous(x):
    """x, or a C-contiguous copy of it (np.ascontiguousarray would turn a 0-d array 1-d)."""
    return x if x.flags.c_contiguous else x.copy(order="C")


def _flat(x):
    return contiguous(x).reshape(-1)


class GELUCPU(Function):
    reference = GELU
    supports = staticmethod(compiled_float32)

    @staticmethod
    def forward(ctx, x, approximate):
        x = contiguous(x)
        out = np.empty_like(x)
        kernels.gelu(x.reshape(-1), out.reshape(-1), approximate == "tanh")
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        return out

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        out = np.empty_like(x)
        kernels.gelu_backward(x.reshape(-1), _flat(grad), out.reshape(-1),
                              ctx.approximate == "tanh")
        return out


class SiLUCPU(Function):
    reference = SiLU
    supports = staticmethod(compiled_float32)

    @staticmethod
    def forward(ctx, x):
        x = contiguous(x)
        out = np.empty_like(x)
        kernels.silu(x.reshape(-1), out.reshape(-1))
        ctx.save_for_backward(x)
        return out

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        out = np.empty_like(x)
        kernels.silu_backward(x.reshape(-1), _flat(grad), out.reshape(-1))
        return out


def row_parts(a):
    """a's first axis (rows, samples) in ranges for the threads, as many as its size pays for
    (kernels.parts, ELEMENT_WORK per element); none for an empty array."""
    return kernels.parts(a.shape[0], work=a.size * kernels.ELEMENT_WORK) if a.size else []


def _rows(x, dim):
    """x with `dim` moved last, C-contiguous, and its (rows, length) view."""
    moved = np.ascontiguousarray(np.moveaxis(x, dim, -1))
    return moved, moved.reshape(-1, moved.shape[-1]) if moved.size else moved.reshape(0, 1)


def _softmax_forward(ctx, x, dim, log):
    moved, rows = _rows(x, dim)
    out = np.empty_like(moved)
    result = out.reshape(rows.shape)
    kernels.run_split(kernels.softmax, [(rows[a:z], result[a:z], log)  # rows over threads
                                        for a, z in row_parts(rows)])
    ctx.save_for_backward(out)
    ctx.dim, ctx.log = dim, log
    return np.moveaxis(out, -1, dim)


def _softmax_backward(ctx, grad):
    (out,) = ctx.saved_tensors  # dim last
    moved, rows = _rows(grad, ctx.dim)
    dx = np.empty_like(moved)
    saved, result = out.reshape(rows.shape), dx.reshape(rows.shape)
    kernels.run_split(kernels.softmax_backward, [(saved[a:z], rows[a:z], result[a:z], ctx.log)
                                                 for a, z in row_parts(rows)])
    return np.moveaxis(dx, -1, ctx.dim)


class SoftmaxCPU(Function):
    reference = Softmax  # (it saves its output dim-last: not the output itself)
    supports = staticmethod(compiled_float32_rows)

    @staticmethod
    def forward(ctx, x, dim):
        return _softmax_forward(ctx, x, dim, False)

    @staticmethod
    def backward(ctx, grad):
        return _softmax_backward(ctx, grad)


class LogSoftmaxCPU(Function):
    reference = LogSoftmax
    supports = staticmethod(compiled_float32_rows)

    @staticmethod
    def forward(ctx, x, dim):
        return _softmax_forward(ctx, x, dim, True)

    @staticmethod
    def backward(ctx, grad):
        return _softmax_backward(ctx, grad)


def dense_flat(a):
    """A 1-D view of `a` in memory order when its elements fill one block of memory (C order
    after some permutation of the axes, as the CPU conv's batch-innermost layout), else None."""
    order = sorted(range(a.ndim), key=lambda k: -a.strides[k])
    moved = a.transpose(order)
    return moved.reshape(-1) if moved.flags.c_contiguous else None


class ReLUCPU(ReLU):
    """The reference's forward (one np.maximum); the backward in one pass, in the layout of
    the output (batch innermost after a CPU conv; a gradient in another layout is copied into
    it first), where NumPy compares, makes a boolean temporary and multiplies."""

    reference, saves_as_reference = ReLU, True

    supports = staticmethod(compiled_float32)

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        dx = np.empty_like(out)  # out's layout
        flat_out, flat_dx = dense_flat(out), dense_flat(dx)
        if flat_out is None or flat_dx is None:
            return ReLU.backward(ctx, grad)
        kernels.relu_backward(flat_out, dense_flat(same_layout(grad, dx)), flat_dx)
        return dx
