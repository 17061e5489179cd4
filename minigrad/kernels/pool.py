"""Max pooling as two CUDA kernels on C-contiguous NCHW arrays (ops/fast/cuda_pool.py).

forward, one thread per output element: scan the window (padding is skipped, as if -inf) and
keep the first maximum in row-major order, as PyTorch does (a NaN wins and propagates); write
the maximum and its offset kh*KW + kw in the window (int8 for windows of up to 127 elements):
    out[n, c, oh, ow] = max over kh, kw of x[n, c, oh*sh - ph + kh, ow*sw - pw + kw]
backward, one thread per input element: gather the gradients of the windows whose maximum it
is, so overlapping windows need no atomics:
    grad_x[n, c, y, x] = sum over windows (oh, ow) holding (y, x) at offset (kh, kw) with
                         argmax[n, c, oh, ow] == kh*KW + kw, of grad[n, c, oh, ow]
"""

from __future__ import annotations

import numpy as np

from minigrad.kernels import Kernel, flat_indices

_GEOMETRY = ("int32 h, int32 w, int32 kh, int32 kw, int32 oh, int32 ow, int32 sh, int32 sw, "
             "int32 ph, int32 pw")

_FORWARD = r"""
    const int ow_ = i % ow;
    const int oh_ = (i / ow) % oh;
    const ptrdiff_t plane = i / ((ptrdiff_t)ow * oh);
    T best = 0;
    int best_at = -1;
    for (int a = 0; a < kh; ++a) {
        const int y = oh_ * sh - ph + a;
        if (y < 0 || y >= h) continue;
        for (int b = 0; b < kw; ++b) {
            const int x_ = ow_ * sw - pw + b;
            if (x_ < 0 || x_ >= w) continue;
            const T value = x[(plane * h + y) * w + x_];
            if (best_at < 0 || value > best || value != value) {
                best = value;
                best_at = a * kw + b;
            }
        }
    }
    out = best;
    argmax = best_at;
"""

_BACKWARD = r"""
    const int x_ = i % w;
    const int y = (i / w) % h;
    const ptrdiff_t plane = i / ((ptrdiff_t)w * h);
    T total = 0;
    for (int a = 0; a < kh; ++a) {
        const int dy = y + ph - a;
        if (dy < 0 || dy % sh != 0 || dy / sh >= oh) continue;
        for (int b = 0; b < kw; ++b) {
            const int dx = x_ + pw - b;
            if (dx < 0 || dx % sw != 0 || dx / sw >= ow) continue;
            const ptrdiff_t o = (plane * oh + dy / sh) * ow + dx / sw;
            if (argmax[o] == a * kw + b) total += grad[o];
        }
    }
    grad_x = total;
"""


def _forward_twin(x, h, w, kh, kw, oh, ow, sh, sw, ph, pw, out, argmax):
    """The NumPy twin of the forward kernel, with its scan order and its NaN rule."""
    x_flat, out_flat, argmax_flat = x.reshape(-1), out.reshape(-1), argmax.reshape(-1)
    for i in flat_indices(out.size):
        ow_, oh_, plane = i % ow, (i // ow) % oh, i // (ow * oh)
        best = np.zeros(i.shape, dtype=out.dtype)
        best_at = np.full(i.shape, -1)
        for a in range(kh):
            y = oh_ * sh - ph + a
            for b in range(kw):
                x_ = ow_ * sw - pw + b
                inside = (y >= 0) & (y < h) & (x_ >= 0) & (x_ < w)
                value = x_flat[np.where(inside, (plane * h + y) * w + x_, 0)]
                better = inside & ((best_at < 0) | (value > best) | (value != value))
                best = np.where(better, value, best)
                best_at = np.where(better, a * kw + b, best_at)
        out_flat[i], argmax_flat[i] = best, best_at
    return out, argmax


def _backward_twin(grad, argmax, h, w, kh, kw, oh, ow, sh, sw, ph, pw, grad_x):
    """The NumPy twin of the backward kernel: each pixel gathers its windows' gradients."""
    grad_flat, argmax_flat, grad_x_flat = grad.reshape(-1), argmax.reshape(-1), grad_x.reshape(-1)
    for i in flat_indices(grad_x.size):
        x_, y, plane = i % w, (i // w) % h, i // (w * h)
        total = np.zeros(i.shape, dtype=grad_x.dtype)
        for a in range(kh):
            dy = y + ph - a
            for b in range(kw):
                dx = x_ + pw - b
                ok = (dy >= 0) & (dy % sh == 0) & (dy // sh < oh) & (dx >= 0) & (dx % sw == 0) \
                    & (dx // sw < ow)
                o = np.where(ok, (plane * oh + dy // sh) * ow + dx // sw, 0)
                total += np.where(ok & (argmax_flat[o] == a * kw + b), grad_flat[o], 0)
        grad_x_flat[i] = total
    return grad_x


_forward = Kernel("minigrad_max_pool", f"raw T x, {_GEOMETRY}", "T out, I argmax", _FORWARD,
                  _forward_twin)
_backward = Kernel("minigrad_max_pool_backward", f"raw T grad, raw I argmax, {_GEOMETRY}",
                   "T grad_x", _BACKWARD, _backward_twin)


def argmax_dtype(kernel) -> np.dtype:
    """The smallest integer type that holds every offset of a window."""
    return np.dtype(np.int8 if kernel[0] * kernel[1] <= 127 else np.int32)


def max_pool(x, out, argmax, kernel, stride, padding):
    """Fill out and argmax (N, C, OH, OW) from the C-contiguous x (N, C, H, W)."""
    return _forward(x, *x.shape[2:], *kernel, *out.shape[2:], *stride, *padding, out, argmax)


def max_pool_backward(grad, argmax, grad_x, kernel, stride, padding):
    """Fill grad_x (N, C, H, W) from the C-contiguous grad and argmax (N, C, OH, OW)."""
    return _backward(grad, argmax, *grad_x.shape[2:], *kernel, *grad.shape[2:], *stride,
                     *padding, grad_x)
