"""Max pooling as two CUDA kernels, for arrays laid out batch-innermost: x is (C, H, W, N).

forward: one thread per output element scans its window (padding counts as -inf) and keeps
the first maximum in row-major order, as PyTorch does, with its offset kh*KW + kw:
    out[c, oh, ow, n] = max over kh, kw of x[c, oh*sh - ph + kh, ow*sw - pw + kw, n]
backward: one thread per input element gathers the gradients of the windows whose maximum it
is, so overlapping windows need no atomics:
    grad_x[c, h, w, n] = sum over windows (oh, ow) holding (h, w) at offset (kh, kw) with
                         argmax[c, oh, ow, n] == kh*KW + kw, of grad[c, oh, ow, n]

`max_pool_by_index` and `max_pool_backward_by_index` are the NumPy references, with the
kernels' arithmetic, so that it is checked on any machine.
"""

from __future__ import annotations

import numpy as np

_ARGS = ("int32 batch, int32 h, int32 w, int32 kh, int32 kw, int32 oh, int32 ow, "
         "int32 sh, int32 sw, int32 ph, int32 pw")

_FORWARD = r"""
    const ptrdiff_t n = i % batch;
    ptrdiff_t rest = i / batch;
    const int ow_ = rest % ow; rest /= ow;
    const int oh_ = rest % oh;
    const ptrdiff_t c = rest / oh;
    T best = -CUDART_INF_F;
    int best_at = -1;
    for (int a = 0; a < kh; ++a) {
        const int y = oh_ * sh - ph + a;
        if (y < 0 || y >= h) continue;
        for (int b = 0; b < kw; ++b) {
            const int x_ = ow_ * sw - pw + b;
            if (x_ < 0 || x_ >= w) continue;
            const T value = x[((c * h + y) * w + x_) * batch + n];
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
    const ptrdiff_t n = i % batch;
    ptrdiff_t rest = i / batch;
    const int x_ = rest % w; rest /= w;
    const int y = rest % h;
    const ptrdiff_t c = rest / h;
    T total = 0;
    for (int a = 0; a < kh; ++a) {
        const int dy = y + ph - a;
        if (dy < 0 || dy % sh != 0 || dy / sh >= oh) continue;
        for (int b = 0; b < kw; ++b) {
            const int dx = x_ + pw - b;
            if (dx < 0 || dx % sw != 0 || dx / sw >= ow) continue;
            const ptrdiff_t o = ((c * oh + dy / sh) * ow + dx / sw) * batch + n;
            if (argmax[o] == a * kw + b) total += grad[o];
        }
    }
    grad_x = total;
"""
_kernels: dict = {}


def _kernel(name: str):
    if name not in _kernels:
        import cupy

        if name == "forward":
            _kernels[name] = cupy.ElementwiseKernel(
                f"raw T x, {_ARGS}", "T out, int32 argmax", _FORWARD, "minigrad_max_pool",
                preamble="#include <math_constants.h>")
        else:
            _kernels[name] = cupy.ElementwiseKernel(
                f"raw T grad, raw int32 argmax, {_ARGS}", "T grad_x", _BACKWARD,
                "minigrad_max_pool_backward")
    return _kernels[name]


def max_pool(x_chwn, kernel, stride, padding, out_size):
    """x (C, H, W, N) C-contiguous cupy array -> (out, argmax), both (C, OH, OW, N)."""
    import cupy

    c, h, w, n = x_chwn.shape
    out = cupy.empty((c, *out_size, n), dtype=x_chwn.dtype)
    argmax = cupy.empty(out.shape, dtype=cupy.int32)
    return _kernel("forward")(x_chwn, n, h, w, *kernel, *out_size, *stride, *padding, out,
                              argmax)


def max_pool_backward(grad_chwn, argmax, x_shape_chwn, kernel, stride, padding):
    """grad and argmax (C, OH, OW, N), C-contiguous -> grad_x (C, H, W, N)."""
    import cupy

    c, h, w, n = x_shape_chwn
    grad_x = cupy.empty(x_shape_chwn, dtype=grad_chwn.dtype)
    return _kernel("backward")(grad_chwn, argmax, n, h, w, *kernel, *grad_chwn.shape[1:3],
                               *stride, *padding, grad_x)


def max_pool_by_index(x_chwn: np.ndarray, kernel, stride, padding, out_size):
    """The NumPy reference of the forward kernel: (out, argmax) with its scan order."""
    c, h, w, n = x_chwn.shape
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = kernel, stride, padding, out_size
    best = np.full((c, oh, ow, n), -np.inf, dtype=x_chwn.dtype)
    best_at = np.full(best.shape, -1, dtype=np.int32)
    rows, cols = np.arange(oh)[:, None], np.arange(ow)[None, :]
    for a in range(kh):
        y = rows * sh - ph + a
        for b in range(kw):
            x = cols * sw - pw + b
            inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)  # (OH, OW)
            value = x_chwn[:, np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)]  # (C, OH, OW, N)
            better = inside[None, :, :, None] & ((best_at < 0) | (value > best))
            best = np.where(better, value, best)
            best_at = np.where(better, a * kw + b, best_at)
    return best, best_at


def max_pool_backward_by_index(grad: np.ndarray, argmax: np.ndarray, x_shape_chwn, kernel,
                               stride, padding) -> np.ndarray:
    """The NumPy reference of the backward kernel: each pixel gathers its windows' gradients."""
    c, h, w, n = x_shape_chwn
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = grad.shape[1:3]
    ys, xs = np.arange(h)[:, None], np.arange(w)[None, :]
    grad_x = np.zeros(x_shape_chwn, dtype=grad.dtype)
    for a in range(kh):
        dy = ys + ph - a
        for b in range(kw):
            dx = xs + pw - b
            ok = (dy >= 0) & (dy % sh == 0) & (dy // sh < oh) & (dx >= 0) & (dx % sw == 0) \
                & (dx // sw < ow)
            oy, ox = np.where(ok, dy // sh, 0), np.where(ok, dx // sw, 0)
            mine = (argmax[:, oy, ox] == a * kw + b) & ok[None, :, :, None]
            grad_x += np.where(mine, grad[:, oy, ox], 0)
    return grad_x
