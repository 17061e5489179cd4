"""Batched matrix products through cuBLAS itself, with the precision chosen per call.

CuPy's `matmul` on 3-D arrays takes a batched path that ignores TF32 and copies float16
operands to float32 (gpu-evidence/LEVERS.md), and its 2-D one reads one global compute type.
Winograd convolution needs 16 or 36 products of one shape at once, in TF32 when convolutions
may use it and in float16 on tensor cores under autocast, so it calls
`cublasGemmStridedBatchedEx` directly:

    out[b] = op(a[b]) @ op(b_[b])  (+ out[b] when accumulate)     for every b of the batch

on C-contiguous (B, rows, cols) arrays. cuBLAS is column-major: a row-major (M, N) matrix is
its (N, M) transpose, so the row-major product out = A @ B is asked of it as out^T = B^T A^T,
the operands swapped, each op kept, the leading dimensions the row lengths.

Compute types (cublasComputeType_t): float32 products accumulate in float32, TF32 rounds
their inputs to a 10-bit mantissa first; float16 inputs are multiplied exactly and summed in
float32 (fp16 tensor cores), the result written as `out`'s dtype (float16 or float32).
"""

from __future__ import annotations

import numpy as np

CUBLAS_OP_N, CUBLAS_OP_T = 0, 1
CUDA_R_32F, CUDA_R_64F, CUDA_R_16F = 0, 1, 2
CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_64F, CUBLAS_COMPUTE_32F_FAST_TF32 = 68, 70, 77
CUBLAS_GEMM_DEFAULT, CUBLAS_GEMM_DEFAULT_TENSOR_OP = -1, 99
DATA_TYPES = {np.dtype(np.float32): CUDA_R_32F, np.dtype(np.float64): CUDA_R_64F,
              np.dtype(np.float16): CUDA_R_16F}


def compute_type(dtype, tf32: bool) -> int:
    """The cuBLAS compute type for inputs of `dtype`: float64 in float64, float32 in float32
    (TF32 if `tf32`), float16 with float32 accumulation."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return CUBLAS_COMPUTE_64F
    if dtype == np.float32 and tf32:
        return CUBLAS_COMPUTE_32F_FAST_TF32
    return CUBLAS_COMPUTE_32F


def batched_matmul(a, b, out, *, trans_a: bool = False, trans_b: bool = False,
                   accumulate: bool = False, tf32: bool = False):
    """out (B, M, N) = op(a) @ op(b) for each of the B matrices (+= with accumulate), op the
    transpose where asked; a, b and out C-contiguous CuPy arrays, a and b of one dtype."""
    from minigrad.backend import cupy_module

    cupy = cupy_module()
    if a.dtype != b.dtype or a.dtype not in DATA_TYPES or out.dtype not in DATA_TYPES:
        raise TypeError(f"batched_matmul: operands {a.dtype} and {b.dtype} into {out.dtype}; "
                        "expected two float16, float32 or float64 operands of one dtype")
    if not all(t.flags.c_contiguous for t in (a, b, out)):
        raise ValueError("batched_matmul: a, b and out must be C-contiguous")
    batch = out.shape[0]
    m, k = a.shape[2:0:-1] if trans_a else a.shape[1:]
    k_b, n = b.shape[2:0:-1] if trans_b else b.shape[1:]
    if a.shape[0] != batch or b.shape[0] != batch or k != k_b or out.shape[1:] != (m, n):
        raise ValueError(f"batched_matmul: shapes {a.shape}{' (T)' if trans_a else ''} @ "
                         f"{b.shape}{' (T)' if trans_b else ''} -> {out.shape} do not agree")
    compute = compute_type(a.dtype, tf32)
    scalar = np.float64 if compute == CUBLAS_COMPUTE_64F else np.float32
    alpha, beta = np.array(1, scalar), np.array(1 if accumulate else 0, scalar)
    algo = (CUBLAS_GEMM_DEFAULT_TENSOR_OP if compute == CUBLAS_COMPUTE_32F_FAST_TF32
            or a.dtype == np.float16 else CUBLAS_GEMM_DEFAULT)
    # column-major: out^T (N x M) = op(b)^T (N x K) @ op(a)^T (K x M)
    cupy.cuda.cublas.gemmStridedBatchedEx(
        cupy.cuda.device.get_cublas_handle(),
        CUBLAS_OP_T if trans_b else CUBLAS_OP_N, CUBLAS_OP_T if trans_a else CUBLAS_OP_N,
        n, m, k, alpha.ctypes.data,
        b.data.ptr, DATA_TYPES[b.dtype], b.shape[2], b.shape[1] * b.shape[2],
        a.data.ptr, DATA_TYPES[a.dtype], a.shape[2], a.shape[1] * a.shape[2],
        beta.ctypes.data,
        out.data.ptr, DATA_TYPES[out.dtype], n, m * n,
        batch, compute, algo)
    return out
