"""im2col and col2im as single CUDA kernels, for arrays laid out batch-innermost.

Layouts (those of ops/conv.py): x_pad is (C, Hp, Wp, N) in memory; cols is
(C, KH, KW, OH, OW, N), flattened to (C*KH*KW, OH*OW*N).

im2col: one thread per element of cols reads the pixel it copies:
    cols[c, kh, kw, oh, ow, n] = x_pad[c, oh*sh + kh*dh, ow*sw + kw*dw, n]
col2im: one thread per element of grad_pad *gathers* every column element that read it, so
no two threads write one place and no atomics are needed:
    grad_pad[c, h, w, n] = sum over kh, kw with (h - kh*dh) = oh*sh and (w - kw*dw) = ow*sw
                           for some 0 <= oh < OH, 0 <= ow < OW, of grad_cols[c, kh, kw, oh, ow, n]

`im2col_by_index` and `col2im_by_index` are the NumPy references: the same index arithmetic,
written with integer arrays, so that the kernels' formulas are checked on any machine.
"""

from __future__ import annotations

import numpy as np

_IM2COL = r"""
    const ptrdiff_t n = i % batch;
    ptrdiff_t rest = i / batch;
    const int ow_ = rest % ow; rest /= ow;
    const int oh_ = rest % oh; rest /= oh;
    const int kw_ = rest % kw; rest /= kw;
    const int kh_ = rest % kh;
    const ptrdiff_t c = rest / kh;
    const int h = oh_ * sh + kh_ * dh;
    const int w = ow_ * sw + kw_ * dw;
    cols = x[((c * hp + h) * wp + w) * batch + n];
"""

_COL2IM = r"""
    const ptrdiff_t n = i % batch;
    ptrdiff_t rest = i / batch;
    const int w = rest % wp; rest /= wp;
    const int h = rest % hp;
    const ptrdiff_t c = rest / hp;
    T total = 0;
    for (int kh_ = 0; kh_ < kh; ++kh_) {
        const int dy = h - kh_ * dh;
        if (dy < 0 || dy % sh != 0 || dy / sh >= oh) continue;
        for (int kw_ = 0; kw_ < kw; ++kw_) {
            const int dx = w - kw_ * dw;
            if (dx < 0 || dx % sw != 0 || dx / sw >= ow) continue;
            total += cols[((((c * kh + kh_) * kw + kw_) * oh + dy / sh) * ow + dx / sw) * batch
                          + n];
        }
    }
    grad = total;
"""

_ARGS = ("int32 batch, int32 hp, int32 wp, int32 kh, int32 kw, int32 oh, int32 ow, "
         "int32 sh, int32 sw, int32 dh, int32 dw")
_kernels: dict = {}


def _kernel(name: str):
    if name not in _kernels:
        import cupy

        if name == "im2col":
            _kernels[name] = cupy.ElementwiseKernel(f"raw T x, {_ARGS}", "T cols", _IM2COL,
                                                    "minigrad_im2col")
        else:
            _kernels[name] = cupy.ElementwiseKernel(f"raw T cols, {_ARGS}", "T grad", _COL2IM,
                                                    "minigrad_col2im")
    return _kernels[name]


def _sizes(x_chwn_shape, kernel, stride, dilation, out_size):
    c, hp, wp, n = x_chwn_shape
    return (n, hp, wp, *kernel, *out_size, *stride, *dilation)


def im2col(x_chwn, kernel, stride, dilation, out_size):
    """x_pad as a C-contiguous (C, Hp, Wp, N) cupy array -> cols (C, KH, KW, OH, OW, N)."""
    import cupy

    c, n = x_chwn.shape[0], x_chwn.shape[3]
    cols = cupy.empty((c, *kernel, *out_size, n), dtype=x_chwn.dtype)
    return _kernel("im2col")(x_chwn, *_sizes(x_chwn.shape, kernel, stride, dilation, out_size),
                             cols)


def col2im(grad_cols, x_chwn_shape, kernel, stride, dilation, out_size):
    """grad_cols (C, KH, KW, OH, OW, N), C-contiguous -> grad_pad (C, Hp, Wp, N)."""
    import cupy

    grad = cupy.empty(x_chwn_shape, dtype=grad_cols.dtype)
    return _kernel("col2im")(grad_cols, *_sizes(x_chwn_shape, kernel, stride, dilation, out_size),
                             grad)


def im2col_by_index(x_chwn: np.ndarray, kernel, stride, dilation, out_size) -> np.ndarray:
    """The NumPy reference of the im2col kernel: the same arithmetic, for every index at once."""
    c, hp, wp, n = x_chwn.shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    ci, khi, kwi, ohi, owi, ni = np.indices((c, kh, kw, oh, ow, n), sparse=True)
    return x_chwn[ci, ohi * sh + khi * dh, owi * sw + kwi * dw, ni]


def col2im_by_index(grad_cols: np.ndarray, x_chwn_shape, kernel, stride, dilation,
                    out_size) -> np.ndarray:
    """The NumPy reference of the col2im kernel: each pixel gathers the column elements that
    read it (the loops over kh, kw are the kernel's; pixels are done all at once)."""
    c, hp, wp, n = x_chwn_shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    h = np.arange(hp)[:, None]
    w = np.arange(wp)[None, :]
    grad = np.zeros(x_chwn_shape, dtype=grad_cols.dtype)
    for i in range(kh):
        dy = h - i * dh
        rows_ok = (dy >= 0) & (dy % sh == 0) & (dy // sh < oh)
        for j in range(kw):
            dx = w - j * dw
            ok = rows_ok & (dx >= 0) & (dx % sw == 0) & (dx // sw < ow)
            y = np.where(ok, dy // sh, 0)
            x = np.where(ok, dx // sw, 0)
            gathered = grad_cols[:, i, j][:, y, x]  # (C, Hp, Wp, N)
            grad += gathered * ok[None, :, :, None]
    return grad
