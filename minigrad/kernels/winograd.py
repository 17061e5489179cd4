"""The CUDA kernels of Winograd convolution (ops/fast/cuda_winograd.py), each with its twin.

F(m x m, 3 x 3) computes an m x m tile of a 3x3 convolution's output from an (m+2) x (m+2)
tile of its input with (m+2)^2 multiplications instead of 9 m^2, through three small fixed
matrices (BT, G, AT below, `alpha` = m + 2, `tiles` P = N * TH * TW tiles of m x m):

    filter:  U[xi, k, c] = (G g[k, c] G^T)[xi]          g: one 3x3 filter     (T, K, C)
    input:   V[xi, c, p] = (BT d[c, p] BT^T)[xi]        d: input tile p       (T, C, P)
    GEMMs:   M[xi] = U[xi] @ V[xi]                      one per xi            (T, K, P)
    output:  y[k, tile p] = AT M[:, k, p] AT^T + bias[k]                     (m x m)

xi runs over the T = alpha^2 points of a tile; tile p of image n at tile row ty and column tx
reads input rows ty*m - pad_top ... + alpha - 1 (zeros outside the image) and writes output
rows ty*m ... ty*m + m - 1 (those inside the output). The backward is the adjoint of each step:

    dM[xi, k, p] = (A dy[k, p] A^T)[xi]      dy: an m x m output-gradient tile, zeros outside
    dV[xi] = U[xi]^T @ dM[xi]                dU[xi] += dM[xi] @ V[xi]^T
    dd[c, p] = B dV[:, c, p] B^T             then every pixel gathers the entries of the (up to
                                             four) tiles that read it: no atomics, one order
    dg[k, c] = G^T dU[:, k, c] G

Each kernel runs one thread per (channel, tile) (the gather one per pixel), with the matrices
compiled in as constants, so the compiler unrolls the small products and drops the zeros.
Values are read and summed in float32 whatever the array's dtype (float16 under autocast), as
tensor cores do. The twins do the same index arithmetic in NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction as Q

import numpy as np

from minigrad.kernels import Kernel, flat_indices


@dataclass(frozen=True)
class Matrices:
    """F(m x m, 3 x 3)'s transforms (Lavin & Gray 2015; interpolation points 0, +-1, +-2,
    infinity for m = 4), as exact fractions; `array(name)` gives one in float32."""

    m: int
    BT: tuple
    G: tuple
    AT: tuple

    @property
    def alpha(self) -> int:
        return self.m + 2

    def array(self, name: str, dtype=np.float32) -> np.ndarray:
        return np.array([[float(v) for v in row] for row in getattr(self, name)], dtype=dtype)


F2 = Matrices(
    m=2,
    BT=((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
    G=((1, 0, 0), (Q(1, 2), Q(1, 2), Q(1, 2)), (Q(1, 2), Q(-1, 2), Q(1, 2)), (0, 0, 1)),
    AT=((1, 1, 1, 0), (0, 1, -1, -1)),
)
F4 = Matrices(
    m=4,
    BT=((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0),
        (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1)),
    G=((Q(1, 4), 0, 0), (Q(-1, 6), Q(-1, 6), Q(-1, 6)), (Q(-1, 6), Q(1, 6), Q(-1, 6)),
       (Q(1, 24), Q(1, 12), Q(1, 6)), (Q(1, 24), Q(-1, 12), Q(1, 6)), (0, 0, 1)),
    AT=((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)),
)
MATRICES = {2: F2, 4: F4}


def _declarations(matrices: Matrices, body: str) -> str:
    """The constants a kernel body uses: the tile sizes and matrices (float arrays)."""
    def declare(name):
        rows = getattr(matrices, name)
        values = ", ".join("{" + ", ".join(f"{float(v)!r}f" for v in row) + "}" for row in rows)
        return f"    const float {name}[{len(rows)}][{len(rows[0])}] = {{{values}}};\n"

    sizes = "".join(f"    const int {name} = {value};\n"
                    for name, value in (("TILE", matrices.m), ("ALPHA", matrices.alpha))
                    if name in body)
    return sizes + "".join(declare(name) for name in ("BT", "G", "AT") if f"{name}[" in body)


# the index of one (channel or filter, tile) thread: p the tile, ch the channel
_TILE_THREAD = r"""
    const unsigned int tiles = (unsigned int)batch * th * tw;
    const unsigned int t = (unsigned int)i;  // i < channels * tiles < 2**32
    const unsigned int p = t % tiles, ch = t / tiles;
    const unsigned int tx = p % tw, q = p / tw;
    const unsigned int ty = q % th, n = q / th;
    const ptrdiff_t plane = (ptrdiff_t)channels * tiles, at = (ptrdiff_t)ch * tiles + p;
"""

_INPUT = _TILE_THREAD + r"""
    const ptrdiff_t image = ((ptrdiff_t)n * channels + ch) * h * w;
    const int y0 = (int)ty * TILE - ph, x0 = (int)tx * TILE - pw;
    float d[ALPHA][ALPHA];
    #pragma unroll
    for (int u = 0; u < ALPHA; ++u) {
        const int y = y0 + u;
        #pragma unroll
        for (int s = 0; s < ALPHA; ++s) {
            const int x_ = x0 + s;
            d[u][s] = (y >= 0 && y < h && x_ >= 0 && x_ < w)
                ? (float)x[image + (ptrdiff_t)y * w + x_] : 0.f;
        }
    }
    #pragma unroll
    for (int r = 0; r < ALPHA; ++r) {  // row r of BT d BT^T
        float row[ALPHA];
        #pragma unroll
        for (int s = 0; s < ALPHA; ++s) {
            float total = 0.f;
            #pragma unroll
            for (int u = 0; u < ALPHA; ++u) total += BT[r][u] * d[u][s];
            row[s] = total;
        }
        #pragma unroll
        for (int col = 0; col < ALPHA; ++col) {
            float total = 0.f;
            #pragma unroll
            for (int s = 0; s < ALPHA; ++s) total += row[s] * BT[col][s];
            v[(r * ALPHA + col) * plane + at] = (T)total;
        }
    }
"""

_OUTPUT = _TILE_THREAD + r"""
    float g[ALPHA][ALPHA];
    #pragma unroll
    for (int u = 0; u < ALPHA; ++u) {
        #pragma unroll
        for (int s = 0; s < ALPHA; ++s) g[u][s] = (float)mm[(u * ALPHA + s) * plane + at];
    }
    const float b = (float)bias[ch];
    const ptrdiff_t image = ((ptrdiff_t)n * channels + ch) * oh * ow;
    #pragma unroll
    for (int r = 0; r < TILE; ++r) {  // row r of AT M AT^T
        const int y = (int)ty * TILE + r;
        float row[ALPHA];
        #pragma unroll
        for (int s = 0; s < ALPHA; ++s) {
            float total = 0.f;
            #pragma unroll
            for (int u = 0; u < ALPHA; ++u) total += AT[r][u] * g[u][s];
            row[s] = total;
        }
        #pragma unroll
        for (int col = 0; col < TILE; ++col) {
            const int x_ = (int)tx * TILE + col;
            float total = 0.f;
            #pragma unroll
            for (int s = 0; s < ALPHA; ++s) total += row[s] * AT[col][s];
            if (y < oh && x_ < ow) out[image + (ptrdiff_t)y * ow + x_] = (T)(total + b);
        }
    }
"""

_OUTPUT_ADJOINT = _TILE_THREAD + r"""
    const ptrdiff_t image = ((ptrdiff_t)n * channels + ch) * oh * ow;
    float g[TILE][TILE];
    #pragma unroll
    for (int u = 0; u < TILE; ++u) {
        const int y = (int)ty * TILE + u;
        #pragma unroll
        for (int s = 0; s < TILE; ++s) {
            const int x_ = (int)tx * TILE + s;
            g[u][s] = (y < oh && x_ < ow) ? (float)grad[image + (ptrdiff_t)y * ow + x_] : 0.f;
        }
    }
    #pragma unroll
    for (int r = 0; r < ALPHA; ++r) {  // row r of A g A^T (A = AT^T)
        float row[TILE];
        #pragma unroll
        for (int s = 0; s < TILE; ++s) {
            float total = 0.f;
            #pragma unroll
            for (int u = 0; u < TILE; ++u) total += AT[u][r] * g[u][s];
            row[s] = total;
        }
        #pragma unroll
        for (int col = 0; col < ALPHA; ++col) {
            float total = 0.f;
            #pragma unroll
            for (int s = 0; s < TILE; ++s) total += row[s] * AT[s][col];
            dm[(r * ALPHA + col) * plane + at] = (T)total;
        }
    }
"""

# in place: each thread reads its tile's T values of dv, then writes B dv B^T over them
_INPUT_ADJOINT = r"""
    const ptrdiff_t plane = (ptrdiff_t)channels * tiles, at = (ptrdiff_t)i;
    float g[ALPHA][ALPHA];
    #pragma unroll
    for (int u = 0; u < ALPHA; ++u) {
        #pragma unroll
        for (int s = 0; s < ALPHA; ++s) g[u][s] = (float)dv[(u * ALPHA + s) * plane + at];
    }
    #pragma unroll
    for (int r = 0; r < ALPHA; ++r) {  // row r of B g B^T (B = BT^T)
        float row[ALPHA];
        #pragma unroll
        for (int s = 0; s < ALPHA; ++s) {
            float total = 0.f;
            #pragma unroll
            for (int u = 0; u < ALPHA; ++u) total += BT[u][r] * g[u][s];
            row[s] = total;
        }
        #pragma unroll
        for (int col = 0; col < ALPHA; ++col) {
            float total = 0.f;
            #pragma unroll
            for (int s = 0; s < ALPHA; ++s) total += row[s] * BT[s][col];
            dv[(r * ALPHA + col) * plane + at] = (S)total;
        }
    }
"""

_GATHER = r"""
    const unsigned int t = (unsigned int)i;  // i < grad.size < 2**32
    const int x_ = t % w;
    const unsigned int q = t / w;
    const int y = q % h;
    const unsigned int q2 = q / h;
    const unsigned int ch = q2 % channels, n = q2 / channels;
    const ptrdiff_t tiles = (ptrdiff_t)batch * th * tw, plane = (ptrdiff_t)channels * tiles;
    const int yp = y + ph, xp = x_ + pw;  // in the padded image
    const int ty_hi = min(yp / TILE, th - 1), tx_hi = min(xp / TILE, tw - 1);
    const int ty_lo = max(0, (yp - ALPHA + 1 + TILE - 1) / TILE);
    const int tx_lo = max(0, (xp - ALPHA + 1 + TILE - 1) / TILE);
    float total = 0.f;
    for (int ty = ty_hi; ty >= ty_lo; --ty) {
        const int u = yp - ty * TILE;
        for (int tx = tx_hi; tx >= tx_lo; --tx) {
            const int s = xp - tx * TILE;
            total += (float)dd[(u * ALPHA + s) * plane + (ptrdiff_t)ch * tiles
                               + ((ptrdiff_t)n * th + ty) * tw + tx];
        }
    }
    grad = (T)total;
"""

_FILTER = r"""
    const ptrdiff_t filters = (ptrdiff_t)k * channels, at = (ptrdiff_t)i;  // i = k_ * C + c_
    float g[3][3];
    #pragma unroll
    for (int u = 0; u < 3; ++u) {
        #pragma unroll
        for (int s = 0; s < 3; ++s) g[u][s] = (float)weight[at * 9 + u * 3 + s];
    }
    #pragma unroll
    for (int r = 0; r < ALPHA; ++r) {  // row r of G g G^T
        float row[3];
        #pragma unroll
        for (int s = 0; s < 3; ++s) row[s] = G[r][0] * g[0][s] + G[r][1] * g[1][s]
                                             + G[r][2] * g[2][s];
        #pragma unroll
        for (int col = 0; col < ALPHA; ++col)
            u_out[(r * ALPHA + col) * filters + at] =
                (T)(row[0] * G[col][0] + row[1] * G[col][1] + row[2] * G[col][2]);
    }
"""

_FILTER_ADJOINT = r"""
    const ptrdiff_t filters = (ptrdiff_t)k * channels, at = (ptrdiff_t)i;
    float g[ALPHA][ALPHA];
    #pragma unroll
    for (int u = 0; u < ALPHA; ++u) {
        #pragma unroll
        for (int s = 0; s < ALPHA; ++s) g[u][s] = (float)du[(u * ALPHA + s) * filters + at];
    }
    #pragma unroll
    for (int r = 0; r < 3; ++r) {  // row r of G^T g G
        float row[ALPHA];
        #pragma unroll
        for (int s = 0; s < ALPHA; ++s) {
            float total = 0.f;
            #pragma unroll
            for (int u = 0; u < ALPHA; ++u) total += G[u][r] * g[u][s];
            row[s] = total;
        }
        #pragma unroll
        for (int col = 0; col < 3; ++col) {
            float total = 0.f;
            #pragma unroll
            for (int s = 0; s < ALPHA; ++s) total += row[s] * G[s][col];
            grad_weight[at * 9 + r * 3 + col] = (T)total;
        }
    }
"""

_INPUT_GEOMETRY = ("int32 batch, int32 channels, int32 h, int32 w, int32 th, int32 tw, "
                   "int32 ph, int32 pw")
_OUTPUT_GEOMETRY = "int32 batch, int32 channels, int32 oh, int32 ow, int32 th, int32 tw"


# ---------------------------------------------------------------------------------------------
# the twins: the same thread-index arithmetic, a block of threads at a time, sums in float32


def _tile_thread(t, batch, channels, th, tw):
    tiles = batch * th * tw
    p, ch = t % tiles, t // tiles
    tx, q = p % tw, p // tw
    ty, n = q % th, q // th
    return tiles, channels * tiles, ch * tiles + p, ch, n, ty, tx


def _input_twin(mats, x, batch, channels, h, w, th, tw, ph, pw, v):
    bt, m, a = mats.array("BT"), mats.m, mats.alpha
    x_flat, v_flat, points = x.reshape(-1), v.reshape(-1), np.arange(a)
    for t in flat_indices(channels * batch * th * tw):
        _, plane, at, ch, n, ty, tx = _tile_thread(t, batch, channels, th, tw)
        y = (ty * m - ph)[:, None, None] + points[None, :, None]
        x_ = (tx * m - pw)[:, None, None] + points[None, None, :]
        inside = (y >= 0) & (y < h) & (x_ >= 0) & (x_ < w)
        source = ((n * channels + ch) * h * w)[:, None, None] + np.clip(y, 0, h - 1) * w \
            + np.clip(x_, 0, w - 1)
        d = np.where(inside, x_flat[source], 0).astype(np.float32)
        transformed = bt @ d @ bt.T  # (threads, a, a)
        v_flat[np.arange(a * a)[:, None] * plane + at] = transformed.reshape(-1, a * a).T
    return v


def _output_twin(mats, mm, bias, batch, channels, oh, ow, th, tw, out):
    at_, m, a = mats.array("AT"), mats.m, mats.alpha
    mm_flat, out_flat, points = mm.reshape(-1), out.reshape(-1), np.arange(m)
    for t in flat_indices(channels * batch * th * tw):
        _, plane, at, ch, n, ty, tx = _tile_thread(t, batch, channels, th, tw)
        g = mm_flat[np.arange(a * a)[:, None] * plane + at].T.reshape(-1, a, a)
        tile = at_ @ g.astype(np.float32) @ at_.T + bias[ch].astype(np.float32)[:, None, None]
        y = (ty * m)[:, None, None] + points[None, :, None]
        x_ = (tx * m)[:, None, None] + points[None, None, :]
        inside = (y < oh) & (x_ < ow)
        target = ((n * channels + ch) * oh * ow)[:, None, None] + y * ow + x_
        out_flat[target[inside]] = tile[inside]
    return out


def _output_adjoint_twin(mats, grad, batch, channels, oh, ow, th, tw, dm):
    at_, m, a = mats.array("AT"), mats.m, mats.alpha
    grad_flat, dm_flat, points = grad.reshape(-1), dm.reshape(-1), np.arange(m)
    for t in flat_indices(channels * batch * th * tw):
        _, plane, at, ch, n, ty, tx = _tile_thread(t, batch, channels, th, tw)
        y = (ty * m)[:, None, None] + points[None, :, None]
        x_ = (tx * m)[:, None, None] + points[None, None, :]
        inside = (y < oh) & (x_ < ow)
        source = ((n * channels + ch) * oh * ow)[:, None, None] + np.minimum(y, oh - 1) * ow \
            + np.minimum(x_, ow - 1)
        g = np.where(inside, grad_flat[source], 0).astype(np.float32)
        transformed = at_.T @ g @ at_
        dm_flat[np.arange(a * a)[:, None] * plane + at] = transformed.reshape(-1, a * a).T
    return dm


def _input_adjoint_twin(mats, channels, tiles, dv):
    bt, a = mats.array("BT"), mats.alpha
    dv_flat, plane = dv.reshape(-1), channels * tiles
    for t in flat_indices(channels * tiles):
        where = np.arange(a * a)[:, None] * plane + t
        g = dv_flat[where].T.reshape(-1, a, a).astype(np.float32)
        dv_flat[where] = (bt.T @ g @ bt).reshape(-1, a * a).T
    return dv


def _gather_twin(mats, dd, batch, channels, h, w, th, tw, ph, pw, grad):
    m, a = mats.m, mats.alpha
    dd_flat, grad_flat = dd.reshape(-1), grad.reshape(-1)
    tiles = batch * th * tw
    plane = channels * tiles
    for t in flat_indices(grad.size):
        x_, y = t % w, (t // w) % h
        ch, n = (t // (w * h)) % channels, t // (w * h * channels)
        yp, xp = y + ph, x_ + pw
        total = np.zeros(t.shape, np.float32)
        for dy in range(2):  # at most two tiles cover a row (and a column): a <= 2 m
            ty = np.minimum(yp // m, th - 1) - dy
            u = yp - ty * m
            for dx in range(2):
                tx = np.minimum(xp // m, tw - 1) - dx
                s = xp - tx * m
                ok = (ty >= 0) & (u < a) & (tx >= 0) & (s < a)
                where = (u * a + s) * plane + ch * tiles + (n * th + ty) * tw + tx
                total += np.where(ok, dd_flat[np.where(ok, where, 0)], 0).astype(np.float32)
        grad_flat[t] = total
    return grad


def _filter_twin(mats, weight, k, channels, u_out):
    g_, a = mats.array("G"), mats.alpha
    transformed = g_ @ weight.reshape(-1, 3, 3).astype(np.float32) @ g_.T  # (K*C, a, a)
    u_out.reshape(a * a, k * channels)[...] = transformed.reshape(-1, a * a).T
    return u_out


def _filter_adjoint_twin(mats, du, k, channels, grad_weight):
    g_, a = mats.array("G"), mats.alpha
    g = du.reshape(a * a, k * channels).T.reshape(-1, a, a).astype(np.float32)
    grad_weight.reshape(-1, 3, 3)[...] = g_.T @ g @ g_
    return grad_weight


def _kernels(mats: Matrices) -> dict[str, Kernel]:
    """The seven kernels of F(m x m, 3 x 3), named minigrad_winograd_<step>_f<m>."""
    def bind(twin):
        return lambda *args: twin(mats, *args)

    specs = {
        "input": (f"raw T x, {_INPUT_GEOMETRY}", "raw T v", _INPUT, _input_twin),
        "output": (f"raw S mm, raw T bias, {_OUTPUT_GEOMETRY}", "raw T out", _OUTPUT,
                   _output_twin),
        "output_adjoint": (f"raw T grad, {_OUTPUT_GEOMETRY}", "raw T dm", _OUTPUT_ADJOINT,
                           _output_adjoint_twin),
        "input_adjoint": ("int32 channels, int32 tiles", "raw S dv", _INPUT_ADJOINT,
                          _input_adjoint_twin),
        "gather": (f"raw S dd, {_INPUT_GEOMETRY}", "T grad", _GATHER, _gather_twin),
        "filter": ("raw T weight, int32 k, int32 channels", "raw T u_out", _FILTER,
                   _filter_twin),
        "filter_adjoint": ("raw S du, int32 k, int32 channels", "raw T grad_weight",
                           _FILTER_ADJOINT, _filter_adjoint_twin),
    }
    return {step: Kernel(f"minigrad_winograd_{step}_f{mats.m}", ins, outs,
                         _declarations(mats, body) + body, bind(twin))
            for step, (ins, outs, body, twin) in specs.items()}


KERNELS = {m: _kernels(mats) for m, mats in MATRICES.items()}


# ---------------------------------------------------------------------------------------------
# the calls, with the geometry


@dataclass(frozen=True)
class Plan:
    """The tiling of one layer: tile size m, input (h, w) with top/left padding (ph, pw),
    output (oh, ow), th x tw tiles per image."""

    m: int
    h: int
    w: int
    ph: int
    pw: int
    oh: int
    ow: int

    @property
    def th(self) -> int:
        return -(-self.oh // self.m)

    @property
    def tw(self) -> int:
        return -(-self.ow // self.m)

    @property
    def points(self) -> int:
        return (self.m + 2) ** 2

    def constants(self) -> dict[str, int]:
        """Compiled into the kernels: a network has few layer shapes."""
        return dict(h=self.h, w=self.w, oh=self.oh, ow=self.ow, th=self.th, tw=self.tw,
                    ph=self.ph, pw=self.pw)

    def input_geometry(self, batch: int, channels: int) -> tuple:
        return (batch, channels, self.h, self.w, self.th, self.tw, self.ph, self.pw)

    def output_geometry(self, batch: int, channels: int) -> tuple:
        return (batch, channels, self.oh, self.ow, self.th, self.tw)


_THREADS_LIMIT = 2**32


def _threads(what: str, count: int) -> int:
    if count >= _THREADS_LIMIT:
        raise ValueError(f"winograd {what}: {count} threads do not fit the kernel's 32-bit "
                         "index arithmetic; use a smaller batch chunk "
                         "(minigrad.ops.fast.cuda_winograd.BUDGET_BYTES)")
    return count


def _constants(plan: Plan, *names: str) -> dict[str, int]:
    every = plan.constants()
    return {name: every[name] for name in names}


_IN = ("h", "w", "th", "tw", "ph", "pw")
_OUT = ("oh", "ow", "th", "tw")


def filter_transform(weight, m: int, xp):
    """U (T, K, C) from weight (K, C, 3, 3), in weight's dtype."""
    k, c = weight.shape[:2]
    u = xp.empty(((m + 2) ** 2, k, c), dtype=weight.dtype)
    KERNELS[m]["filter"](xp.ascontiguousarray(weight), k, c, u, size=_threads("filter", k * c))
    return u


def input_transform(x, plan: Plan, xp, out=None):
    """V (T, C, N*TH*TW) from the C-contiguous x (N, C, H, W), in x's dtype."""
    n, c = x.shape[:2]
    tiles = n * plan.th * plan.tw
    v = xp.empty((plan.points, c, tiles), dtype=x.dtype) if out is None else out
    KERNELS[plan.m]["input"](x, *plan.input_geometry(n, c), v,
                             size=_threads("input", c * tiles), constants=_constants(plan, *_IN))
    return v


def output_transform(mm, bias, out, plan: Plan) -> None:
    """Fill the C-contiguous out (N, K, OH, OW) from M (T, K, N*TH*TW) plus bias (K,)."""
    n, k = out.shape[:2]
    KERNELS[plan.m]["output"](mm, bias, *plan.output_geometry(n, k), out,
                              size=_threads("output", k * n * plan.th * plan.tw),
                              constants=_constants(plan, *_OUT))


def output_adjoint(grad, plan: Plan, xp):
    """dM (T, K, N*TH*TW) from the C-contiguous output gradient (N, K, OH, OW)."""
    n, k = grad.shape[:2]
    tiles = n * plan.th * plan.tw
    dm = xp.empty((plan.points, k, tiles), dtype=grad.dtype)
    KERNELS[plan.m]["output_adjoint"](grad, *plan.output_geometry(n, k), dm,
                                      size=_threads("output adjoint", k * tiles),
                                      constants=_constants(plan, *_OUT))
    return dm


def input_adjoint(dv, grad_x, plan: Plan) -> None:
    """Fill the C-contiguous grad_x (N, C, H, W) from dV (T, C, N*TH*TW), which is
    overwritten (each tile's B dV B^T takes its place)."""
    n, c = grad_x.shape[:2]
    tiles = n * plan.th * plan.tw
    KERNELS[plan.m]["input_adjoint"](c, tiles, dv, size=_threads("input adjoint", c * tiles))
    _threads("gather", grad_x.size)
    KERNELS[plan.m]["gather"](dv, *plan.input_geometry(n, c), grad_x,
                              constants=_constants(plan, *_IN))


def filter_adjoint(du, weight_shape, dtype, m: int, xp):
    """The weight gradient (K, C, 3, 3) in `dtype` from dU (T, K, C)."""
    k, c = weight_shape[:2]
    grad_weight = xp.empty(weight_shape, dtype=dtype)
    KERNELS[m]["filter_adjoint"](du, k, c, grad_weight, size=_threads("filter adjoint", k * c))
    return grad_weight
