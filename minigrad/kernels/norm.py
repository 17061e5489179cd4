"""Batch norm's elementwise halves as single CUDA kernels, on channel-major arrays (C, M):
M = N*H*W values per channel, the layout conv2d's batch-innermost output already has.

forward:  x_hat = (x - mean[c]) * inv_std[c];  y = x_hat * weight[c] + bias[c]   (one pass)
backward: grad_x = scale[c] / M * (M * g - sum_g[c] - x_hat * sum_g_xhat[c])   (one pass)
with c = i / M. The per-channel sums are CuPy reductions. `normalize_by_index` and
`normalize_backward_by_index` are the NumPy references, with the kernels' arithmetic.
"""

from __future__ import annotations

import numpy as np

_FORWARD = r"""
    const ptrdiff_t c = i / m;
    x_hat = (x - mean[c]) * inv_std[c];
    y = x_hat * weight[c] + bias[c];
"""
_BACKWARD = r"""
    const ptrdiff_t c = i / m;
    grad_x = scale[c] / m * (m * g - sum_g[c] - x_hat * sum_g_xhat[c]);
"""
_kernels: dict = {}


def _kernel(name: str):
    if name not in _kernels:
        import cupy

        if name == "forward":
            _kernels[name] = cupy.ElementwiseKernel(
                "T x, raw T mean, raw T inv_std, raw T weight, raw T bias, int64 m",
                "T y, T x_hat", _FORWARD, "minigrad_batch_norm")
        else:
            _kernels[name] = cupy.ElementwiseKernel(
                "T g, T x_hat, raw T scale, raw T sum_g, raw T sum_g_xhat, int64 m",
                "T grad_x", _BACKWARD, "minigrad_batch_norm_backward")
    return _kernels[name]


def normalize(x_cm, mean, inv_std, weight, bias):
    """(y, x_hat) for a C-contiguous (C, M) cupy array."""
    return _kernel("forward")(x_cm, mean, inv_std, weight, bias, x_cm.shape[1])


def normalize_backward(g_cm, x_hat_cm, scale, sum_g, sum_g_xhat):
    return _kernel("backward")(g_cm, x_hat_cm, scale, sum_g, sum_g_xhat, g_cm.shape[1])


def _channel_of_each(shape) -> np.ndarray:
    c, m = shape
    return (np.arange(c * m) // m).reshape(c, m)  # c = i / M, as in the kernels


def normalize_by_index(x_cm, mean, inv_std, weight, bias):
    c = _channel_of_each(x_cm.shape)
    x_hat = (x_cm - mean[c]) * inv_std[c]
    return x_hat * weight[c] + bias[c], x_hat


def normalize_backward_by_index(g_cm, x_hat_cm, scale, sum_g, sum_g_xhat):
    c, m = _channel_of_each(g_cm.shape), g_cm.shape[1]
    return scale[c] / m * (m * g_cm - sum_g[c] - x_hat_cm * sum_g_xhat[c])
