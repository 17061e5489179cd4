"""im2col and col2im as single CUDA kernels that write and read the GEMM's layout directly.

Layouts (those of ops/fast/cuda_conv.py): x is a C-contiguous NCHW chunk (Nc, C, H, W), not
padded; cols is (C*KH*KW, Nc*OH*OW), row r = (c*KH + kh)*KW + kw, column j = (n*OH + oh)*OW
+ ow, so that the convolution is the 2-D GEMM W (OC, C*KH*KW) @ cols.

im2col, one thread per element of cols; padding is read as zero, so no padded copy is made:
    cols[r, j] = x[n, c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]      (0 outside the image)
col2im, one thread per pixel of grad_x *gathers* every column element that read it, in the
(kh, kw) order of the reference's strided adds, so no two threads write one place, no atomics
are needed, and the sums equal the reference's exactly:
    grad_x[n, c, y, x] = sum over kh, kw with y + ph - kh*dh = oh*sh and x + pw - kw*dw = ow*sw
                         (0 <= oh < OH, 0 <= ow < OW) of cols[r, j]
"""

from __future__ import annotations

import numpy as np

from minigrad.kernels import Kernel, flat_indices

_GEOMETRY = ("int32 batch, int32 c, int32 h, int32 w, int32 kh, int32 kw, int32 oh, int32 ow, "
             "int32 sh, int32 sw, int32 ph, int32 pw, int32 dh, int32 dw")

_IM2COL = r"""
    const ptrdiff_t columns = (ptrdiff_t)batch * oh * ow;
    const ptrdiff_t j = i % columns;
    const ptrdiff_t r = i / columns;
    const int ow_ = j % ow;
    const int oh_ = (j / ow) % oh;
    const ptrdiff_t n = j / ((ptrdiff_t)ow * oh);
    const int kw_ = r % kw;
    const int kh_ = (r / kw) % kh;
    const ptrdiff_t c_ = r / ((ptrdiff_t)kw * kh);
    const int y = oh_ * sh - ph + kh_ * dh;
    const int x_ = ow_ * sw - pw + kw_ * dw;
    cols = (y >= 0 && y < h && x_ >= 0 && x_ < w) ? x[((n * c + c_) * h + y) * w + x_] : (T)0;
"""

_COL2IM = r"""
    const ptrdiff_t columns = (ptrdiff_t)batch * oh * ow;
    const int x_ = i % w;
    const int y = (i / w) % h;
    const ptrdiff_t c_ = (i / ((ptrdiff_t)w * h)) % c;
    const ptrdiff_t n = i / ((ptrdiff_t)w * h * c);
    T total = 0;
    for (int kh_ = 0; kh_ < kh; ++kh_) {
        const int dy = y + ph - kh_ * dh;
        if (dy < 0 || dy % sh != 0 || dy / sh >= oh) continue;
        for (int kw_ = 0; kw_ < kw; ++kw_) {
            const int dx = x_ + pw - kw_ * dw;
            if (dx < 0 || dx % sw != 0 || dx / sw >= ow) continue;
            total += cols[((c_ * kh + kh_) * kw + kw_) * columns + (n * oh + dy / sh) * ow
                          + dx / sw];
        }
    }
    grad = total;
"""


def _im2col_twin(x, batch, c, h, w, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, cols):
    """The NumPy twin of the im2col kernel: its arithmetic for a block of indices at once."""
    columns, x_flat, cols_flat = batch * oh * ow, x.reshape(-1), cols.reshape(-1)
    for i in flat_indices(cols.size):
        j, r = i % columns, i // columns
        ow_, oh_, n = j % ow, (j // ow) % oh, j // (ow * oh)
        kw_, kh_, c_ = r % kw, (r // kw) % kh, r // (kw * kh)
        y, x_ = oh_ * sh - ph + kh_ * dh, ow_ * sw - pw + kw_ * dw
        inside = (y >= 0) & (y < h) & (x_ >= 0) & (x_ < w)
        at = ((n * c + c_) * h + np.clip(y, 0, h - 1)) * w + np.clip(x_, 0, w - 1)
        cols_flat[i] = np.where(inside, x_flat[at], 0)
    return cols


def _col2im_twin(cols, batch, c, h, w, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, grad):
    """The NumPy twin of the col2im kernel: each pixel gathers, in the kernel's order."""
    columns, cols_flat, grad_flat = batch * oh * ow, cols.reshape(-1), grad.reshape(-1)
    for i in flat_indices(grad.size):
        x_, y = i % w, (i // w) % h
        c_, n = (i // (w * h)) % c, i // (w * h * c)
        total = np.zeros(i.shape, dtype=grad.dtype)
        for kh_ in range(kh):
            dy = y + ph - kh_ * dh
            rows_ok = (dy >= 0) & (dy % sh == 0) & (dy // sh < oh)
            for kw_ in range(kw):
                dx = x_ + pw - kw_ * dw
                ok = rows_ok & (dx >= 0) & (dx % sw == 0) & (dx // sw < ow)
                at = ((c_ * kh + kh_) * kw + kw_) * columns + (n * oh + dy // sh) * ow + dx // sw
                total += np.where(ok, cols_flat[np.where(ok, at, 0)], 0)
        grad_flat[i] = total
    return grad


_im2col = Kernel("minigrad_im2col", f"raw T x, {_GEOMETRY}", "T cols", _IM2COL, _im2col_twin)
_col2im = Kernel("minigrad_col2im", f"raw T cols, {_GEOMETRY}", "T grad", _COL2IM, _col2im_twin)


def _geometry(x_shape, kernel, stride, padding, dilation, out_size):
    n, c, h, w = x_shape
    return (n, c, h, w, *kernel, *out_size, *stride, *padding, *dilation)


def im2col(x, cols, kernel, stride, padding, dilation, out_size):
    """Fill cols (C*KH*KW, N*OH*OW) from the C-contiguous x (N, C, H, W); padding = (top,
    left) is read as zeros. Returns cols."""
    return _im2col(x, *_geometry(x.shape, kernel, stride, padding, dilation, out_size), cols)


def col2im(cols, grad_x, kernel, stride, padding, dilation, out_size):
    """Fill the C-contiguous grad_x (N, C, H, W) with the column gradients cols
    (C*KH*KW, N*OH*OW) summed back to the pixels they came from. Returns grad_x."""
    return _col2im(cols, *_geometry(grad_x.shape, kernel, stride, padding, dilation, out_size),
                   grad_x)
