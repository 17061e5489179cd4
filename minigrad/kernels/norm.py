"""Batch norm's elementwise halves as single CUDA kernels on NCHW (or (N, C)) arrays
(ops/fast/cuda_norm.py). The channel of output element i is c = (i / HW) % C, HW = H*W
(1 for (N, C)); the per-channel sums are CuPy reductions.

forward:  x_hat = (x - mean[c]) * inv_std[c];  y = x_hat * weight[c] + bias[c]   (one pass)
backward: grad_x = scale[c] / m * (m * g - sum_g[c] - x_hat * sum_g_xhat[c])   (one pass)
"""

from __future__ import annotations

from minigrad.kernels import Kernel, flat_indices

_FORWARD = r"""
    const ptrdiff_t c = (i / hw) % channels;
    x_hat = (x - mean[c]) * inv_std[c];
    y = x_hat * weight[c] + bias[c];
"""
_BACKWARD = r"""
    const ptrdiff_t c = (i / hw) % channels;
    grad_x = scale[c] / m * (m * g - sum_g[c] - x_hat * sum_g_xhat[c]);
"""


def _forward_twin(x, mean, inv_std, weight, bias, hw, channels, y, x_hat):
    x_flat, y_flat, x_hat_flat = x.reshape(-1), y.reshape(-1), x_hat.reshape(-1)
    for i in flat_indices(y.size):
        c = (i // hw) % channels
        x_hat_flat[i] = (x_flat[i] - mean[c]) * inv_std[c]
        y_flat[i] = x_hat_flat[i] * weight[c] + bias[c]
    return y, x_hat


def _backward_twin(g, x_hat, scale, sum_g, sum_g_xhat, hw, channels, m, grad_x):
    g_flat, x_hat_flat, grad_x_flat = g.reshape(-1), x_hat.reshape(-1), grad_x.reshape(-1)
    for i in flat_indices(grad_x.size):
        c = (i // hw) % channels
        grad_x_flat[i] = scale[c] / m * (m * g_flat[i] - sum_g[c] - x_hat_flat[i] * sum_g_xhat[c])
    return grad_x


_forward = Kernel("minigrad_batch_norm",
                  "T x, raw T mean, raw T inv_std, raw T weight, raw T bias, int64 hw, "
                  "int64 channels", "T y, T x_hat", _FORWARD, _forward_twin)
_backward = Kernel("minigrad_batch_norm_backward",
                   "T g, T x_hat, raw T scale, raw T sum_g, raw T sum_g_xhat, int64 hw, "
                   "int64 channels, int64 m", "T grad_x", _BACKWARD, _backward_twin)


def _per_channel(shape) -> tuple[int, int]:
    hw = shape[2] * shape[3] if len(shape) == 4 else 1
    return hw, shape[1]


def normalize(x, mean, inv_std, weight, bias, y, x_hat):
    """Fill y and x_hat (C-contiguous, x's shape) from x and the per-channel vectors."""
    return _forward(x, mean, inv_std, weight, bias, *_per_channel(x.shape), y, x_hat)


def normalize_backward(g, x_hat, scale, sum_g, sum_g_xhat, grad_x):
    """Fill grad_x with the training-mode gradient; m = elements per channel."""
    m = g.size // g.shape[1]
    return _backward(g, x_hat, scale, sum_g, sum_g_xhat, *_per_channel(g.shape), m, grad_x)
