"""im2col and col2im as single CUDA kernels that write and read the GEMM's layout directly.

Layouts (those of ops/fast/cuda_conv.py): x is a C-contiguous NCHW chunk (Nc, C, H, W), not
padded; cols is (C*KH*KW, Nc*OH*OW), row r = (c*KH + kh)*KW + kw, column j = (n*OH + oh)*OW
+ ow, so that the convolution is the 2-D GEMM W (OC, C*KH*KW) @ cols.

im2col, one thread per (channel, column) writes that column's KH*KW rows of the channel, so the
index arithmetic is done once per KH*KW elements; padding is read as zero, so no padded copy
is made:
    cols[r, j] = x[n, c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]      (0 outside the image)
col2im, one thread per pixel of grad_x *gathers* every column element that read it, in the
(kh, kw) order of the reference's strided adds, so no two threads write one place, no atomics
are needed, and the sums equal the reference's exactly:
    grad_x[n, c, y, x] = sum over kh, kw with y + ph - kh*dh = oh*sh and x + pw - kw*dw = ow*sw
                         (0 <= oh < OH, 0 <= ow < OW) of cols[r, j]
Both split a thread's index with 32-bit unsigned divisions (a 64-bit division costs a GPU
several times more, and im2col is bound by them otherwise): the callers check that the thread
counts fit in 32 bits; addresses are computed in 64 bits.

The two layout kernels move a GEMM result (OC, Nc*OH*OW) to NCHW (Nc, OC, OH, OW), adding the
bias on the way, and an NCHW gradient back to the GEMM layout: one pass each.
"""

from __future__ import annotations

import numpy as np

from minigrad.kernels import Kernel, flat_indices

_GEOMETRY = ("int32 batch, int32 c, int32 h, int32 w, int32 kh, int32 kw, int32 oh, int32 ow, "
             "int32 sh, int32 sw, int32 ph, int32 pw, int32 dh, int32 dw")

_IM2COL = r"""
    const unsigned int columns = (unsigned int)batch * oh * ow;
    const unsigned int t = (unsigned int)i;  // i < c * columns < 2**32
    const unsigned int j = t % columns, c_ = t / columns;
    const unsigned int ow_ = j % ow, q = j / ow;
    const unsigned int oh_ = q % oh, n = q / oh;
    const ptrdiff_t image = ((ptrdiff_t)n * c + c_) * h * w;
    ptrdiff_t at = (ptrdiff_t)c_ * kh * kw * columns + j;
    for (int kh_ = 0; kh_ < kh; ++kh_) {
        const int y = (int)oh_ * sh - ph + kh_ * dh;
        const bool row_inside = y >= 0 && y < h;
        for (int kw_ = 0; kw_ < kw; ++kw_, at += columns) {
            const int x_ = (int)ow_ * sw - pw + kw_ * dw;
            cols[at] = (row_inside && x_ >= 0 && x_ < w) ? x[image + (ptrdiff_t)y * w + x_] : (T)0;
        }
    }
"""

_COL2IM = r"""
    const ptrdiff_t columns = (ptrdiff_t)batch * oh * ow;
    const unsigned int t = (unsigned int)i;  // i < grad.size < 2**32
    const int x_ = t % w;
    const unsigned int q = t / w;
    const int y = q % h;
    const unsigned int q2 = q / h;
    const unsigned int c_ = q2 % c, n = q2 / c;
    T total = 0;
    for (int kh_ = 0; kh_ < kh; ++kh_) {
        int oy = y + ph - kh_ * dh;  // the output row that read (y, x) through this kh
        if (sh != 1) {               // (a uniform branch: stride 1 needs no division)
            if (oy % sh != 0) continue;
            oy /= sh;
        }
        if (oy < 0 || oy >= oh) continue;
        for (int kw_ = 0; kw_ < kw; ++kw_) {
            int ox = x_ + pw - kw_ * dw;
            if (sw != 1) {
                if (ox % sw != 0) continue;
                ox /= sw;
            }
            if (ox < 0 || ox >= ow) continue;
            total += cols[(((ptrdiff_t)c_ * kh + kh_) * kw + kw_) * columns
                          + ((ptrdiff_t)n * oh + oy) * ow + ox];
        }
    }
    grad = total;
"""


def _im2col_twin(x, batch, c, h, w, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, cols):
    """The NumPy twin of the im2col kernel: its arithmetic for a block of threads at once."""
    columns, x_flat, cols_flat = batch * oh * ow, x.reshape(-1), cols.reshape(-1)
    for t in flat_indices(c * columns):
        j, c_ = t % columns, t // columns
        ow_, oh_, n = j % ow, (j // ow) % oh, j // (ow * oh)
        image = (n * c + c_) * h * w
        at = c_ * kh * kw * columns + j
        for kh_ in range(kh):
            y = oh_ * sh - ph + kh_ * dh
            for kw_ in range(kw):
                x_ = ow_ * sw - pw + kw_ * dw
                inside = (y >= 0) & (y < h) & (x_ >= 0) & (x_ < w)
                source = image + np.clip(y, 0, h - 1) * w + np.clip(x_, 0, w - 1)
                cols_flat[at] = np.where(inside, x_flat[source], 0)
                at += columns
    return cols


def _col2im_twin(cols, batch, c, h, w, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, grad):
    """The NumPy twin of the col2im kernel: each pixel gathers, in the kernel's order."""
    columns, cols_flat, grad_flat = batch * oh * ow, cols.reshape(-1), grad.reshape(-1)
    for i in flat_indices(grad.size):
        x_, y = i % w, (i // w) % h
        c_, n = (i // (w * h)) % c, i // (w * h * c)
        total = np.zeros(i.shape, dtype=grad.dtype)
        for kh_ in range(kh):
            oy = y + ph - kh_ * dh
            rows_ok = (oy % sh == 0) & (oy >= 0) & (oy // sh < oh)
            for kw_ in range(kw):
                ox = x_ + pw - kw_ * dw
                ok = rows_ok & (ox % sw == 0) & (ox >= 0) & (ox // sw < ow)
                at = ((c_ * kh + kh_) * kw + kw_) * columns + (n * oh + oy // sh) * ow + ox // sw
                total += np.where(ok, cols_flat[np.where(ok, at, 0)], 0)
        grad_flat[i] = total
    return grad


_LAYOUT = "int32 oc, int32 plane, int32 columns"

_GEMM_TO_NCHW = r"""
    const unsigned int t = (unsigned int)i;  // i < out.size < 2**32
    const unsigned int p = t % plane, q = t / plane;
    const unsigned int oc_ = q % oc, n = q / oc;
    out = gemm[(ptrdiff_t)oc_ * columns + (ptrdiff_t)n * plane + p] + bias[oc_];
"""

_NCHW_TO_GEMM = r"""
    const unsigned int t = (unsigned int)i;  // i < gemm.size < 2**32
    const unsigned int j = t % columns, oc_ = t / columns;
    const unsigned int n = j / plane, p = j % plane;
    gemm = nchw[((ptrdiff_t)n * oc + oc_) * plane + p];
"""


def _gemm_to_nchw_twin(gemm, bias, oc, plane, columns, out):
    """The NumPy twin of the forward's layout kernel: out (Nc, OC, OH, OW) from (OC, Nc*P)."""
    gemm_flat, out_flat = gemm.reshape(-1), out.reshape(-1)
    for t in flat_indices(out.size):
        p, q = t % plane, t // plane
        oc_, n = q % oc, q // oc
        out_flat[t] = gemm_flat[oc_ * columns + n * plane + p] + bias[oc_]
    return out


def _nchw_to_gemm_twin(nchw, oc, plane, columns, gemm):
    """The NumPy twin of the backward's layout kernel: (OC, Nc*P) from (Nc, OC, OH, OW)."""
    nchw_flat, gemm_flat = nchw.reshape(-1), gemm.reshape(-1)
    for t in flat_indices(gemm.size):
        j, oc_ = t % columns, t // columns
        n, p = j // plane, j % plane
        gemm_flat[t] = nchw_flat[(n * oc + oc_) * plane + p]
    return gemm


_im2col = Kernel("minigrad_im2col", f"raw T x, {_GEOMETRY}", "raw T cols", _IM2COL,
                 _im2col_twin)
_col2im = Kernel("minigrad_col2im", f"raw T cols, {_GEOMETRY}", "T grad", _COL2IM, _col2im_twin)
_gemm_to_nchw = Kernel("minigrad_gemm_to_nchw", f"raw T gemm, raw T bias, {_LAYOUT}", "T out",
                       _GEMM_TO_NCHW, _gemm_to_nchw_twin)
_nchw_to_gemm = Kernel("minigrad_nchw_to_gemm", f"raw T nchw, {_LAYOUT}", "T gemm",
                       _NCHW_TO_GEMM, _nchw_to_gemm_twin)

_THREADS_LIMIT = 2**32  # the kernels split their thread index with 32-bit divisions


def _check_threads(what: str, threads: int) -> int:
    if threads >= _THREADS_LIMIT:
        raise ValueError(f"{what}: {threads} threads do not fit the kernel's 32-bit index "
                         f"arithmetic (at most {_THREADS_LIMIT - 1}); use a smaller batch chunk "
                         "(minigrad.ops.fast.cuda_conv.COLS_BUDGET_BYTES)")
    return threads


def _geometry(x_shape, kernel, stride, padding, dilation, out_size):
    n, c, h, w = x_shape
    return (n, c, h, w, *kernel, *out_size, *stride, *padding, *dilation)


def _constants(geometry) -> dict[str, int]:
    """Everything but the batch and channel counts, compiled in: a network has few layer
    shapes, and constant window loops unroll and constant sizes divide by multiplication."""
    return dict(zip(("h", "w", "kh", "kw", "oh", "ow", "sh", "sw", "ph", "pw", "dh", "dw"),
                    geometry[2:]))


def im2col(x, cols, kernel, stride, padding, dilation, out_size):
    """Fill cols (C*KH*KW, N*OH*OW) from the C-contiguous x (N, C, H, W); padding = (top,
    left) is read as zeros. Returns cols."""
    n, c = x.shape[:2]
    threads = _check_threads("im2col", c * n * out_size[0] * out_size[1])
    geometry = _geometry(x.shape, kernel, stride, padding, dilation, out_size)
    _im2col(x, *geometry, cols, size=threads, constants=_constants(geometry))
    return cols


def col2im(cols, grad_x, kernel, stride, padding, dilation, out_size):
    """Fill the C-contiguous grad_x (N, C, H, W) with the column gradients cols
    (C*KH*KW, N*OH*OW) summed back to the pixels they came from. Returns grad_x."""
    _check_threads("col2im", grad_x.size)
    geometry = _geometry(grad_x.shape, kernel, stride, padding, dilation, out_size)
    return _col2im(cols, *geometry, grad_x, constants=_constants(geometry))


def gemm_to_nchw(gemm, bias, out):
    """Fill the C-contiguous out (Nc, OC, OH, OW) with gemm (OC, Nc*OH*OW) plus bias (OC,)."""
    _check_threads("conv2d output layout", out.size)
    n, oc, oh, ow = out.shape
    return _gemm_to_nchw(gemm, bias, oc, oh * ow, n * oh * ow, out)


def nchw_to_gemm(nchw, gemm):
    """Fill gemm (OC, Nc*OH*OW) from the C-contiguous nchw (Nc, OC, OH, OW)."""
    _check_threads("conv2d gradient layout", gemm.size)
    n, oc, oh, ow = nchw.shape
    return _nchw_to_gemm(nchw, oc, oh * ow, n * oh * ow, gemm)
