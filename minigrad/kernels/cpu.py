"""Compiled CPU kernels (Numba) for the CPU fast paths of the memory-bound ops.

NumPy makes one pass over memory per ufunc: layer norm's forward and backward are about a
dozen passes, GELU's erf twenty. Each kernel here is one loop (or two) over the data that does
all of an op's arithmetic per element while it is in a register, compiled by Numba on first use
and cached on disk (the first call of a session is slow once; later sessions load the cache).

    gelu / gelu_backward               exact (erf) and tanh forms
    silu / silu_backward
    softmax / log_softmax (+ backward) along the last axis, rows of a 2-D view
    layer_norm / layer_norm_backward   rows of a 2-D view, with the scale and shift fused
    group_norm / group_norm_backward   (N, G, C/G, HW) views, the per-channel scale and shift
    batch_norm_* (statistics, normalize, backward)   per channel of a (C, A, B) view
    embedding / embedding_backward     rows gathered; rows added in index order (no np.add.at)
    lstm_step / gru_step / rnn_step (+ backward)      the gate arithmetic of one time step

Only float32 is compiled for (the speed that matters; float64 runs the NumPy reference). Inside,
sums are taken in float64 and the elementwise arithmetic in float32 (a 512-bit vector holds 16
float32 lanes, 8 float64): tanh32 and erf32 are rational functions x P(x^2) / Q(x^2) fitted by
benchmarks/rational_fits.py (largest error 2e-8 in float64, under 5e-7 in float32 arithmetic),
and exp32_nonpositive, e^y for y <= 0, is 2^k e^t, e^t a Taylor polynomial and 2^k built from
its bits (within 3e-7). math.tanh, math.exp and math.erf
would be calls into the C library per element, which the compiler cannot vectorize; neither
does a loop taking a maximum with `max` (its NaN test is a branch: fmax is LLVM's maxnum), a
loop over range(a, b) with a nonzero start, or one that reads and writes one array at two
offsets, so the kernels avoid those.
NaN goes through every kernel as it does through NumPy.

Most kernels run on the calling thread. The direct convolution's and Winograd's share their
channels out over threads, and the callers of layer norm, group norm and softmax their rows
(run_split: the kernels release the GIL; get_num_threads / set_num_threads,
MINIGRAD_NUM_THREADS; parts() gives a thread a job only if it is big enough to pay for waking
it). That pays only while OpenBLAS's worker threads do not spin after each
GEMM on the same cores, which minigrad/__init__.py arranges (OPENBLAS_THREAD_TIMEOUT) when it
is imported before NumPy. Numba's own parallel loops were measured to lose here, against the
spinning workers (a U-Net step four times slower).

`available()` says whether the kernels can run: Numba is installed (`pip install
minigrad[cpu]`) and they are enabled (`enable(False)` or MINIGRAD_NUMBA=0 turns them off, and
the fast paths that need them step aside for the NumPy code).
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

try:
    import numba
except ImportError:  # the kernels are optional: without Numba the NumPy code runs
    numba = None

try:
    import threadpoolctl
except ImportError:  # optional too: without it run_split_blas runs one job on one thread
    threadpoolctl = None

_enabled = os.environ.get("MINIGRAD_NUMBA", "1") != "0"

# reassociation (so sums vectorize) and fused multiply-add; not "nnan"/"ninf": NaN and inf are
# values that must go through
FLAGS = {"reassoc", "contract", "nsz"}


def available() -> bool:
    """Whether the compiled kernels run: Numba is installed and they are enabled."""
    return numba is not None and _enabled


def enable(on: bool = True) -> None:
    """Use the compiled kernels where Numba is installed (the default) or, with False, not."""
    global _enabled
    _enabled = bool(on)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_threads = int(os.environ.get("MINIGRAD_NUM_THREADS", "0")) or _cpus()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def get_num_threads() -> int:
    """How many threads the kernels that split their work use (by default the CPUs this
    process may run on; MINIGRAD_NUM_THREADS sets it at start)."""
    return _threads


def set_num_threads(n: int) -> None:
    """Use n threads (n >= 1) for the kernels that split their work."""
    global _threads, _pool
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"kernels.set_num_threads: n must be a positive int, got {n!r}")
    with _pool_lock:
        _threads = n
        if _pool is not None:
            _pool.shutdown(wait=False)
            _pool = None


# Multiply-adds a thread must get for a split to pay: handing a job to a sleeping pool thread
# costs tens of microseconds, and on a virtual machine whose idle core has halted up to a
# scheduler tick (4 ms, measured here), so LeNet5's convolutions at batch 64 (7-15 M each) ran
# its step 20% slower on two threads than on one; a U-Net's 16->16 layer (75 M) 1.6x faster,
# and LeNet5's 6->16 layer at batch 128 (31 M) forward 0.46 ms on two against 0.80 on one.
MIN_WORK_PER_THREAD = 15_000_000

# One element of a norm's or softmax's loops in the multiply-adds that parts(work=) counts:
# layer norm's forward runs 0.5 ns an element here, the direct convolution 39 multiply-adds a
# ns, so a norm over 2 M elements (1 ms) splits in two and GroupNorm's 0.5 M (0.17 ms) does not
ELEMENT_WORK = 20


def parts(total: int, multiple: int = 1, work: float | None = None) -> list[tuple[int, int]]:
    """[0, total) cut into at most get_num_threads() ranges of about equal size, each but the
    last a multiple of `multiple` long (an output channel pair, say); with `work` (the job's
    multiply-adds) into no more ranges than give each MIN_WORK_PER_THREAD of it, and only into
    ranges whose split saves that much (the work outside the largest range)."""
    units = -(-total // multiple)
    count = max(1, min(_threads, units))
    if work is not None and MIN_WORK_PER_THREAD > 0:
        count = max(1, min(count, int(work // MIN_WORK_PER_THREAD)))
    while True:
        bounds = [min(total, (units * k // count) * multiple) for k in range(count + 1)]
        ranges = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
        if count == 1 or work is None or MIN_WORK_PER_THREAD <= 0:
            return ranges
        # the split saves the work outside its largest part, which must pay for the handoff:
        # 3 channel pairs over 2 threads save a third (LeNet5's 6-channel input gradient at
        # batch 64, 30 M multiply-adds: its step ran 3.5% faster unsplit)
        largest = max(b - a for a, b in ranges)
        if work * (total - largest) / total >= MIN_WORK_PER_THREAD:
            return ranges
        count -= 1


def run_split(kernel, jobs) -> None:
    """kernel(*args) for each args in jobs, at once: the first on this thread, the others on
    the pool's (the kernels release the GIL while they run, and each job writes its own part of
    the result). Returns when all have finished; an error in one is raised here."""
    global _pool
    if len(jobs) <= 1:
        for args in jobs:
            kernel(*args)
        return
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, _threads - 1), thread_name_prefix="minigrad")
        pool = _pool
    futures = [pool.submit(kernel, *args) for args in jobs[1:]]
    try:
        kernel(*jobs[0])
    finally:
        for future in futures:
            future.result()


_blas = None  # threadpoolctl's handle on the BLAS libraries NumPy loaded, made on first use


def blas_parts(total: int, work: float) -> list[tuple[int, int]]:
    """parts(total, work=work) for jobs that call BLAS themselves (run_split_blas); one range
    where BLAS cannot be held to one thread per job (threadpoolctl is not installed)."""
    return parts(total, work=work) if threadpoolctl is not None else [(0, total)]


def run_split_blas(fn, jobs) -> None:
    """run_split for jobs that make their own small matrix products (a recurrent layer's rows,
    a product per time step): while they run, BLAS runs one thread in each job, so that the
    jobs' products go side by side rather than each waking BLAS's workers (about 50 us, twice
    a time step). Products elsewhere get BLAS's threads back afterwards."""
    global _blas
    if len(jobs) <= 1:
        for args in jobs:
            fn(*args)
        return
    if _blas is None:
        _blas = threadpoolctl.ThreadpoolController()
    with _blas.limit(limits=1, user_api="blas"):
        run_split(fn, jobs)


def _jit(inline: bool = False):
    def decorate(fn):
        if numba is None:
            return fn
        # error_model="numpy": a division by zero gives inf or NaN, as in NumPy, rather than
        # raising; without it the check on every division keeps loops from vectorizing
        if inline:
            return numba.njit(inline="always", fastmath=FLAGS, error_model="numpy")(fn)
        return numba.njit(cache=True, fastmath=FLAGS, error_model="numpy", nogil=True)(fn)

    return decorate


# ---------------------------------------------------------------------------------------------
# scalar helpers, in float32 arithmetic (inlined into the kernels)

TANH_P = (0.9999999326935153, -0.15887455752323032, 0.03142622924932854, 0.007945154090862603,
          0.0002250968041642206, 1.328243897234143e-06, 8.351285384731076e-10)
TANH_Q = (1.0, 0.1744583745285945, -0.043753598262193535, 0.024067127245636182,
          0.0016273753700734726, 2.1283676800462065e-05, 4.94948541395197e-08)
ERF_P = (1.1283791821102251, 0.18471123511678023, 0.05433263208918057, 0.003839554315641153,
         0.00038268940435233484, 4.780445757333939e-06, -1.3666376111153684e-08)
ERF_Q = (1.0, 0.4970296153720298, 0.1138266022423296, 0.015453556814690838,
         0.0013095803006707182, 6.400837342447202e-05)
SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


if numba is not None:
    from llvmlite import ir
    from numba.extending import intrinsic

    @intrinsic
    def _float_from_bits(typingctx, bits):
        """The float32 whose IEEE-754 bits are the int32 `bits` (a register move)."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())

        return numba.types.float32(numba.types.int32), codegen

    @intrinsic
    def fmax(typingctx, a, b):
        """The larger of two floats of one type, and the other one where one is NaN (LLVM's
        maxnum). A loop taking a row's maximum with it vectorizes, one with `max` does not (its
        NaN test is a branch); the softmax kernels let NaN through in the exponentials."""
        def codegen(context, builder, signature, args):
            kind = args[0].type
            maxnum = builder.module.declare_intrinsic("llvm.maxnum", [kind],
                                                      ir.FunctionType(kind, [kind, kind]))
            return builder.call(maxnum, args)

        return a(a, a), codegen
else:  # never called without Numba: the kernels do not run then
    def _float_from_bits(bits):
        return np.int32(bits).view(np.float32)

    def fmax(a, b):
        return np.fmax(a, b)


LOG2_E = 1 / math.log(2)
LN_2 = math.log(2)


# float32 constants, so that exp32_nonpositive's arithmetic stays in float32 (16 lanes a vector
# where float64 has 8)
F32 = np.float32
LOG2_E32, HALF32, LIMIT32 = F32(LOG2_E), F32(0.5), F32(-87.0)
LN_2_HIGH32 = F32(0.693145751953125)  # ln 2 in two parts: k * high is exact for |k| < 2^8
LN_2_LOW32 = F32(LN_2 - 0.693145751953125)
C2, C3, C4, C5, C6, C7 = (F32(1 / math.factorial(n)) for n in range(2, 8))
ONE32, ZERO32, MINUS_INF32 = F32(1.0), F32(0.0), F32(-np.inf)


@_jit(inline=True)
def exp32_nonpositive(y):
    """e^y for a float32 y <= 0, in float32 arithmetic; 0 below -87 (e^-87 ~ 1.6e-38, float32's
    smallest normal numbers). e^y = 2^k e^t with k = round(y / ln 2) and |t| <= ln(2)/2 (t
    reduced in two parts, Cody and Waite), e^t by its Taylor terms to t^7, and 2^k made from its
    bits: exponent k + 127, shifted into place. Relative error under 3e-7, two of float32's
    units in the last place."""
    v = max(y, LIMIT32)
    k = np.floor(v * LOG2_E32 + HALF32)
    t = (v - k * LN_2_HIGH32) - k * LN_2_LOW32
    p = ONE32 + t * (ONE32 + t * (C2 + t * (C3 + t * (C4 + t * (C5 + t * (C6 + t * C7))))))
    p = p * _float_from_bits(np.int32((np.int64(k) + 127) << 23))  # Numba's int32 + int32 is int64
    p = ZERO32 if y < LIMIT32 else p
    return p if y == y else y


TP32 = tuple(F32(c) for c in TANH_P)
TQ32 = tuple(F32(c) for c in TANH_Q)
NINE32 = F32(9.0)


@_jit(inline=True)
def tanh32(x):
    """tanh in float32 arithmetic, for a float32 x: the same rational function (relative error
    under 5e-7, float32's rounding in the ten operations)."""
    p0, p1, p2, p3, p4, p5, p6 = TP32
    q1, q2, q3, q4, q5, q6 = TQ32[1:]
    v = min(max(x, -NINE32), NINE32)
    s = v * v
    p = (((((p6 * s + p5) * s + p4) * s + p3) * s + p2) * s + p1) * s + p0
    q = (((((q6 * s + q5) * s + q4) * s + q3) * s + q2) * s + q1) * s + ONE32
    r = min(max(v * p / q, -ONE32), ONE32)
    if v == NINE32 or v == -NINE32:
        r = v / NINE32
    return r if x == x else x


EP32 = tuple(F32(c) for c in ERF_P)
EQ32 = tuple(F32(c) for c in ERF_Q)
FOUR32 = F32(4.0)


@_jit(inline=True)
def erf32(x):
    """erf in float32 arithmetic, for a float32 x: the same rational function (absolute error
    under 5e-7)."""
    p0, p1, p2, p3, p4, p5, p6 = EP32
    q1, q2, q3, q4, q5 = EQ32[1:]
    v = min(max(x, -FOUR32), FOUR32)
    s = v * v
    p = (((((p6 * s + p5) * s + p4) * s + p3) * s + p2) * s + p1) * s + p0
    q = ((((q5 * s + q4) * s + q3) * s + q2) * s + q1) * s + ONE32
    r = min(max(v * p / q, -ONE32), ONE32)
    if v == FOUR32 or v == -FOUR32:
        r = v / FOUR32
    return r if x == x else x


@_jit(inline=True)
def sigmoid32(x):
    """sigmoid in float32 arithmetic, for a float32 x (relative error under 4e-7)."""
    e = exp32_nonpositive(-abs(x))
    return (ONE32 if x >= ZERO32 else e) / (ONE32 + e)


# ---------------------------------------------------------------------------------------------
# activations (flat contiguous float32 arrays)

GELU_A32, GELU_3A32 = F32(0.044715), F32(3 * 0.044715)
SQRT_HALF32, INV_SQRT_2PI32, SQRT_2_OVER_PI32 = F32(SQRT_HALF), F32(INV_SQRT_2PI), \
    F32(SQRT_2_OVER_PI)


@_jit()
def gelu(x, out, approximate_tanh):
    for i in range(x.size):
        v = x[i]
        if approximate_tanh:
            out[i] = HALF32 * v * (ONE32 + tanh32(SQRT_2_OVER_PI32 * (v + GELU_A32 * v * v * v)))
        else:
            out[i] = HALF32 * v * (ONE32 + erf32(v * SQRT_HALF32))


@_jit()
def gelu_backward(x, grad, out, approximate_tanh):
    for i in range(x.size):
        v = x[i]
        if approximate_tanh:
            t = tanh32(SQRT_2_OVER_PI32 * (v + GELU_A32 * v * v * v))
            d_inner = SQRT_2_OVER_PI32 * (ONE32 + GELU_3A32 * v * v)
            out[i] = grad[i] * (HALF32 * (ONE32 + t) + HALF32 * v * (ONE32 - t * t) * d_inner)
        else:
            cdf = HALF32 * (ONE32 + erf32(v * SQRT_HALF32))
            out[i] = grad[i] * (cdf + v * INV_SQRT_2PI32 * exp32_nonpositive(-HALF32 * v * v))


@_jit()
def silu(x, out):
    for i in range(x.size):
        v = x[i]
        out[i] = v * sigmoid32(v)


@_jit()
def silu_backward(x, grad, out):
    for i in range(x.size):
        v = x[i]
        s = sigmoid32(v)
        out[i] = grad[i] * s * (ONE32 + v * (ONE32 - s))


# ---------------------------------------------------------------------------------------------
# softmax and log-softmax over the last axis of (R, D)

@_jit()
def softmax(x, out, log):
    rows, d = x.shape
    for r in range(rows):
        top = MINUS_INF32  # float32 throughout: a float64 here would make the loops float64
        for j in range(d):
            top = fmax(top, x[r, j])  # NaN is passed over here, and goes through the exp
        if top == MINUS_INF32:  # a row of -inf: shift by 0, as x - max would give NaN anyway
            top = ZERO32
        total = 0.0
        if log:  # x - top written first, then less log(total): exact near the top, as in
            for j in range(d):  # the reference (x - (top + log total) would round the sum)
                centered = x[r, j] - top
                out[r, j] = centered
                total += exp32_nonpositive(centered)
            log_total = F32(math.log(total))
            for j in range(d):
                out[r, j] -= log_total
        else:  # the exponentials written once, then scaled while the row is in cache
            for j in range(d):
                e = exp32_nonpositive(x[r, j] - top)
                out[r, j] = e
                total += e
            scale = F32(1.0 / total)
            for j in range(d):
                out[r, j] *= scale


@_jit()
def softmax_backward(out, grad, dx, log):
    rows, d = out.shape
    for r in range(rows):
        total = 0.0
        if log:  # dx = g - softmax * sum(g)
            for j in range(d):
                total += grad[r, j]
            total32 = F32(total)  # float32 arithmetic below (16 lanes)
            for j in range(d):
                dx[r, j] = grad[r, j] - exp32_nonpositive(out[r, j]) * total32
        else:  # dx = y * (g - sum(g y))
            for j in range(d):
                total += np.float64(grad[r, j]) * out[r, j]
            total32 = F32(total)
            for j in range(d):
                dx[r, j] = out[r, j] * (grad[r, j] - total32)


# ---------------------------------------------------------------------------------------------
# normalization

@_jit(inline=True)
def _float32_pair(m):
    """m (float64) as hi + lo in float32, so that (x - hi) - lo in float32 arithmetic (16
    lanes, where float64 has 8) keeps x - m as exact as float64 does where x is near m: x - hi
    is exact there, and m rounded to float32 alone would lose the small differences of a row
    or group of close values."""
    hi = F32(m)
    return hi, F32(m - hi)


@_jit(inline=True)
def _row_statistics(x, r, eps):
    """Row r's mean and 1/std, in one pass: sums of x - K and (x - K)^2, K the row's first
    value (which keeps the subtraction exact enough, as in batch norm's statistics)."""
    d = x.shape[1]
    shift = np.float64(x[r, 0])
    total = 0.0
    squares = 0.0
    for j in range(d):
        centered = x[r, j] - shift
        total += centered
        squares += centered * centered
    centered_mean = total / d
    variance = max(squares / d - centered_mean * centered_mean, 0.0)
    return shift + centered_mean, 1.0 / math.sqrt(variance + eps)


@_jit()
def layer_norm(x, weight, bias, out, mean, rstd, eps):
    """x, out (R, D); weight, bias (D,); writes out and each row's mean and 1/std."""
    for r in range(x.shape[0]):
        m, s = _row_statistics(x, r, eps)
        mean[r], rstd[r] = m, s
        m_hi, m_lo = _float32_pair(m)
        s32 = F32(s)
        for j in range(x.shape[1]):
            out[r, j] = ((x[r, j] - m_hi) - m_lo) * s32 * weight[j] + bias[j]


@_jit()
def layer_norm_backward(x, grad, weight, mean, rstd, dx, dw, db):
    """dx (R, D); dw, db (D,) float64, zeroed by the caller: the sums over the rows. Sums in
    float64, elementwise arithmetic in float32; g w is written to dx in the first loop and
    read back (a product recomputed there could be fused into the subtraction unrounded, and a
    row of one value would not come out exactly 0)."""
    rows, d = x.shape
    for r in range(rows):
        m_hi, m_lo = _float32_pair(mean[r])
        s = F32(rstd[r])
        sum_g = 0.0
        sum_g_xhat = 0.0
        for j in range(d):
            x_hat = ((x[r, j] - m_hi) - m_lo) * s
            g = grad[r, j]
            gw = g * weight[j]
            dx[r, j] = gw
            sum_g += gw
            sum_g_xhat += gw * x_hat
            dw[j] += g * x_hat
            db[j] += g
        mean_g, mean_g_xhat = F32(sum_g / d), F32(sum_g_xhat / d)
        for j in range(d):
            x_hat = ((x[r, j] - m_hi) - m_lo) * s
            dx[r, j] = s * (dx[r, j] - mean_g - x_hat * mean_g_xhat)


@_jit()
def group_norm(x, weight, bias, out, mean, rstd, eps):
    """x, out (N, G, Cg, L); weight, bias (G, Cg); mean, rstd (N, G). The statistics in one
    pass, sums of x - K and (x - K)^2 with K the group's first value (as batch norm's)."""
    n, groups, cg, length = x.shape
    count = cg * length
    for k in range(n * groups):
        i, g = k // groups, k % groups
        shift = np.float64(x[i, g, 0, 0])
        total = 0.0
        squares = 0.0
        for c in range(cg):
            for j in range(length):
                d = x[i, g, c, j] - shift
                total += d
                squares += d * d
        centered_mean = total / count
        m = shift + centered_mean
        s = 1.0 / math.sqrt(max(squares / count - centered_mean * centered_mean, 0.0) + eps)
        mean[i, g], rstd[i, g] = m, s
        m_hi, m_lo = _float32_pair(m)
        for c in range(cg):
            scale, b = F32(s * weight[g, c]), bias[g, c]
            for j in range(length):
                out[i, g, c, j] = ((x[i, g, c, j] - m_hi) - m_lo) * scale + b


@_jit()
def group_norm_backward(x, grad, weight, mean, rstd, dx, dw, db):
    """dx (N, G, Cg, L); dw, db (N, G, Cg) float64 per-sample sums (the caller sums over N).
    Sums in float64, elementwise arithmetic in float32, g w through dx as in layer norm's."""
    n, groups, cg, length = x.shape
    count = cg * length
    for k in range(n * groups):
        i, g = k // groups, k % groups
        m_hi, m_lo = _float32_pair(mean[i, g])
        s = F32(rstd[i, g])
        sum_g = 0.0
        sum_g_xhat = 0.0
        for c in range(cg):
            w = weight[g, c]
            channel_g = 0.0
            channel_gx = 0.0
            for j in range(length):
                gv = grad[i, g, c, j]
                x_hat = ((x[i, g, c, j] - m_hi) - m_lo) * s
                dx[i, g, c, j] = gv * w
                channel_g += gv
                channel_gx += gv * x_hat
            dw[i, g, c], db[i, g, c] = channel_gx, channel_g
            sum_g += w * channel_g
            sum_g_xhat += w * channel_gx
        mean_g, mean_g_xhat = F32(sum_g / count), F32(sum_g_xhat / count)
        for c in range(cg):
            for j in range(length):
                x_hat = ((x[i, g, c, j] - m_hi) - m_lo) * s
                dx[i, g, c, j] = s * (dx[i, g, c, j] - mean_g - x_hat * mean_g_xhat)


# batch norm works on (A, C, B) C-contiguous views with the channel in the middle: (N, C, H*W)
# for NCHW, (1, C, H*W*N) for the CPU conv's batch-innermost layout, (N, C, 1) for (N, C)

@_jit()
def batch_norm_statistics(x, mean, var):
    """Each channel's mean and biased variance (float64 (C,)), in one pass: sums of x - K and
    (x - K)^2 with K a value of the channel, which keeps the subtraction exact enough."""
    outer, channels, inner = x.shape
    shift = np.empty(channels)
    total = np.zeros(channels)
    squares = np.zeros(channels)
    for c in range(channels):
        shift[c] = x[0, c, 0]
    for a in range(outer):
        for c in range(channels):
            k = shift[c]
            t = 0.0
            q = 0.0
            for b in range(inner):
                d = x[a, c, b] - k
                t += d
                q += d * d
            total[c] += t
            squares[c] += q
    count = outer * inner
    for c in range(channels):
        m = total[c] / count
        mean[c] = shift[c] + m
        var[c] = max(squares[c] / count - m * m, 0.0)


@_jit()
def batch_norm_normalize(x, mean, rstd, weight, bias, out):
    """out = (x - mean[c]) * rstd[c] * weight[c] + bias[c], in float32 arithmetic (mean as a
    float32 pair: x - mean as exact as in float64 near the mean)."""
    outer, channels, inner = x.shape
    for a in range(outer):
        for c in range(channels):
            m_hi, m_lo = _float32_pair(mean[c])
            scale, b = F32(rstd[c] * weight[c]), bias[c]
            for k in range(inner):
                out[a, c, k] = ((x[a, c, k] - m_hi) - m_lo) * scale + b


@_jit()
def batch_norm_backward(x, grad, mean, rstd, weight, dx, dw, db, training, want_dx):
    """dw[c] = sum(g x_hat), db[c] = sum(g) (float64, written here); dx the closed form
    (training) or g * weight * rstd (eval). Sums in float64, elementwise arithmetic in
    float32."""
    outer, channels, inner = x.shape
    count = outer * inner
    for c in range(channels):
        dw[c] = 0.0
        db[c] = 0.0
    for a in range(outer):
        for c in range(channels):
            m_hi, m_lo = _float32_pair(mean[c])
            t = 0.0
            q = 0.0
            for k in range(inner):
                g = grad[a, c, k]
                t += g
                q += g * ((x[a, c, k] - m_hi) - m_lo)
            db[c] += t
            dw[c] += q
    for c in range(channels):
        dw[c] *= rstd[c]
    if want_dx:
        for a in range(outer):
            for c in range(channels):
                m_hi, m_lo = _float32_pair(mean[c])
                s = F32(rstd[c])
                scale = F32(weight[c] * rstd[c])
                mean_g, mean_gx = F32(db[c] / count), F32(dw[c] / count)
                if training:
                    for k in range(inner):
                        x_hat = ((x[a, c, k] - m_hi) - m_lo) * s
                        dx[a, c, k] = scale * (grad[a, c, k] - mean_g - x_hat * mean_gx)
                else:
                    for k in range(inner):
                        dx[a, c, k] = scale * grad[a, c, k]


# ---------------------------------------------------------------------------------------------
# embedding

@_jit()
def embedding(weight, indices, out):
    """out[k] = weight[indices[k]]; indices (M,), out (M, D). A row copied at a time, where
    NumPy's fancy indexing iterates element by element. Returns -1, or the first k whose index
    is outside [0, rows) (out is then not all written): the range check costs no pass of its
    own."""
    rows = weight.shape[0]
    for k in range(indices.shape[0]):
        row = indices[k]
        if row < 0 or row >= rows:
            return k
        for j in range(weight.shape[1]):
            out[k, j] = weight[row, j]
    return -1


@_jit()
def embedding_backward(indices, grad, out):
    """out[indices[k]] += grad[k] for every k, in order; indices (M,), grad (M, D)."""
    for k in range(indices.shape[0]):
        row = indices[k]
        for j in range(grad.shape[1]):
            out[row, j] += grad[k, j]


# ---------------------------------------------------------------------------------------------
# recurrent cells: one time step's gate arithmetic, for a batch (B rows)

@_jit()
def lstm_step(h_part, x_part, bias, c_prev, h_prev, running, gates, c_out, h_out, tanh_c):
    """The gates' input h_part + x_part + bias (B, 4H: h W_hh^T, x W_ih^T, b_ih + b_hh).
    Writes the activated gates i, f, g, o (B, 4H), c' and h' (a row that is not running keeps
    its state) and tanh32(c'). (One short loop per result: a loop that writes many arrays does
    not vectorize.)"""
    batch, hidden = c_prev.shape
    for b in range(batch):
        for j in range(2 * hidden):
            gates[b, j] = sigmoid32(h_part[b, j] + x_part[b, j] + bias[j])
        for j in range(hidden):  # (range(2 * hidden, 3 * hidden) would not vectorize)
            k = 2 * hidden + j
            gates[b, k] = tanh32(h_part[b, k] + x_part[b, k] + bias[k])
        for j in range(hidden):
            k = 3 * hidden + j
            gates[b, k] = sigmoid32(h_part[b, k] + x_part[b, k] + bias[k])
        if running[b]:
            for j in range(hidden):
                c_out[b, j] = gates[b, hidden + j] * c_prev[b, j] + \
                    gates[b, j] * gates[b, 2 * hidden + j]
            for j in range(hidden):
                tanh_c[b, j] = tanh32(c_out[b, j])
            for j in range(hidden):
                h_out[b, j] = gates[b, 3 * hidden + j] * tanh_c[b, j]
        else:
            for j in range(hidden):
                c_out[b, j], h_out[b, j], tanh_c[b, j] = c_prev[b, j], h_prev[b, j], ZERO32


@_jit()
def lstm_step_backward(dh, dc, gates, c_prev, tanh_c, running, d_pre, dc_prev, dh_direct):
    """dh, dc: the gradients reaching h' and c'. Writes d_pre (B, 4H), the gradient of the
    gates' pre-activations, dc_prev, and dh_direct (dh's direct path to the previous h: zero,
    but for a row that was not running, which passes dh and dc on unchanged). One short loop
    per result, as in the forward; dc_prev holds dc + dh o (1 - tanh32(c)^2) until the end."""
    batch, hidden = dc.shape
    for b in range(batch):
        if not running[b]:
            for j in range(4 * hidden):
                d_pre[b, j] = ZERO32
            for j in range(hidden):
                dc_prev[b, j] = dc[b, j]
                dh_direct[b, j] = dh[b, j]
            continue
        for j in range(hidden):
            t = tanh_c[b, j]
            dc_prev[b, j] = dc[b, j] + dh[b, j] * gates[b, 3 * hidden + j] * (ONE32 - t * t)
        for j in range(hidden):
            i = gates[b, j]
            d_pre[b, j] = dc_prev[b, j] * gates[b, 2 * hidden + j] * i * (ONE32 - i)
        for j in range(hidden):
            f = gates[b, hidden + j]
            d_pre[b, hidden + j] = dc_prev[b, j] * c_prev[b, j] * f * (ONE32 - f)
        for j in range(hidden):
            g = gates[b, 2 * hidden + j]
            d_pre[b, 2 * hidden + j] = dc_prev[b, j] * gates[b, j] * (ONE32 - g * g)
        for j in range(hidden):
            o = gates[b, 3 * hidden + j]
            d_pre[b, 3 * hidden + j] = dh[b, j] * tanh_c[b, j] * o * (ONE32 - o)
        for j in range(hidden):
            dc_prev[b, j] *= gates[b, hidden + j]
            dh_direct[b, j] = ZERO32


@_jit()
def gru_step(x_part, b_ih, h_part, b_hh, h_prev, running, saved, h_out):
    """x_part = x W_ih^T and h_part = h W_hh^T (B, 3H), their biases b_ih and b_hh added here.
    Writes r, z, n and the hidden part of n, h_n = h_part's third + its bias (B, 4H), and h'."""
    batch, hidden = h_prev.shape
    for b in range(batch):
        for j in range(2 * hidden):
            saved[b, j] = sigmoid32(x_part[b, j] + b_ih[j] + h_part[b, j] + b_hh[j])
        for j in range(hidden):
            saved[b, 3 * hidden + j] = h_part[b, 2 * hidden + j] + b_hh[2 * hidden + j]
        for j in range(hidden):  # n's pre-activation, in h_out for now: a loop that reads
            h_out[b, j] = x_part[b, 2 * hidden + j] + b_ih[2 * hidden + j] + \
                saved[b, j] * saved[b, 3 * hidden + j]  # saved and writes it does not vectorize
        for j in range(hidden):
            saved[b, 2 * hidden + j] = tanh32(h_out[b, j])
        if running[b]:
            for j in range(hidden):
                z = saved[b, hidden + j]
                h_out[b, j] = (ONE32 - z) * saved[b, 2 * hidden + j] + z * h_prev[b, j]
        else:
            for j in range(hidden):
                h_out[b, j] = h_prev[b, j]


@_jit()
def gru_step_backward(dh, saved, h_prev, running, d_x, d_h, dh_direct):
    """Writes d_x (the gradient of x_part), d_h (of h_part) and dh_direct (dh's direct path to
    the previous state, through z or through a finished row)."""
    batch, hidden = dh.shape
    for b in range(batch):
        if not running[b]:
            for j in range(3 * hidden):
                d_x[b, j] = ZERO32
                d_h[b, j] = ZERO32
            for j in range(hidden):
                dh_direct[b, j] = dh[b, j]
            continue
        for j in range(hidden):  # d_n
            z, n = saved[b, hidden + j], saved[b, 2 * hidden + j]
            d_x[b, 2 * hidden + j] = dh[b, j] * (ONE32 - z) * (ONE32 - n * n)
        for j in range(hidden):  # d_r (d_n again: reading d_x here would not vectorize)
            r, z, n = saved[b, j], saved[b, hidden + j], saved[b, 2 * hidden + j]
            d_n = dh[b, j] * (ONE32 - z) * (ONE32 - n * n)
            d_x[b, j] = d_n * saved[b, 3 * hidden + j] * r * (ONE32 - r)
        for j in range(hidden):  # d_z
            z = saved[b, hidden + j]
            d_x[b, hidden + j] = dh[b, j] * (h_prev[b, j] - saved[b, 2 * hidden + j]) * z * \
                (ONE32 - z)
        for j in range(2 * hidden):
            d_h[b, j] = d_x[b, j]
        for j in range(hidden):
            d_h[b, 2 * hidden + j] = d_x[b, 2 * hidden + j] * saved[b, j]
        for j in range(hidden):
            dh_direct[b, j] = dh[b, j] * saved[b, hidden + j]


@_jit()
def rnn_step(h_part, x_part, bias, h_prev, running, relu, h_out):
    batch, hidden = h_prev.shape
    for b in range(batch):
        for j in range(hidden):
            if running[b]:
                v = h_part[b, j] + x_part[b, j] + bias[j]
                h_out[b, j] = (ZERO32 if v <= ZERO32 else v) if relu else tanh32(v)
            else:
                h_out[b, j] = h_prev[b, j]


@_jit()
def rnn_step_backward(dh, h, running, relu, d_pre, dh_direct):
    batch, hidden = dh.shape
    for b in range(batch):
        for j in range(hidden):
            if running[b]:
                v = h[b, j]
                slope = (ZERO32 if v <= ZERO32 else ONE32) if relu else ONE32 - v * v
                d_pre[b, j] = dh[b, j] * slope
                dh_direct[b, j] = ZERO32
            else:
                d_pre[b, j] = ZERO32
                dh_direct[b, j] = dh[b, j]


# ---------------------------------------------------------------------------------------------
# direct convolution, for layers with few weights per output (LeNet5's first: 1 channel, 5x5)
# in the CPU conv's batch-innermost layout: x (C, HP, WP, N) padded, out and g (OC, OH, OW, N).
# Along a row, stride 1 and no dilation: the input under tap kw of a whole output row (OW, N)
# is one contiguous run of the input row, shifted by kw * N. Each sweep (_sweep_pair) updates
# two rows from up to five taps at once (fewer loads and stores per multiply-add); the weights
# come padded with zero columns to a multiple of five (taps_weight).

TAPS = 5


def taps_weight(weight, flip: bool = False):
    """The kernel's rows zero-padded to a multiple of TAPS columns (the layout the direct
    kernels read), flipped left to right if asked."""
    oc, c, kh, kw = weight.shape
    padded = np.zeros((oc, c, kh, -(-kw // TAPS) * TAPS), dtype=weight.dtype)
    padded[..., :kw] = weight[..., ::-1] if flip else weight
    return padded


@_jit(inline=True)
def _shifted(row, kw0, taps, batch, length):
    """The five runs of `row` under taps kw0.. (a missing tap repeats the last; its weight
    is 0)."""
    a = kw0 * batch
    b = (kw0 + min(1, taps - 1)) * batch
    c = (kw0 + min(2, taps - 1)) * batch
    d = (kw0 + min(3, taps - 1)) * batch
    e = (kw0 + min(4, taps - 1)) * batch
    return (row[a:a + length], row[b:b + length], row[c:c + length], row[d:d + length],
            row[e:e + length])


@_jit(inline=True)
def _sweep_pair(d0, d1, wa, wb, src, kw0, taps, batch, run):
    """One sweep over two rows that read the same input: d0 += sum over the taps from kw0 of
    wa[kw] * (src shifted by kw * N), d1 likewise with wb; five taps, or three where that is
    all the kernel row has left (a 3x3 kernel), so that no zero weight is multiplied."""
    s0, s1, s2, s3, s4 = _shifted(src, kw0, taps, batch, run)
    a0, a1, a2, a3, a4 = wa[kw0], wa[kw0 + 1], wa[kw0 + 2], wa[kw0 + 3], wa[kw0 + 4]
    b0, b1, b2, b3, b4 = wb[kw0], wb[kw0 + 1], wb[kw0 + 2], wb[kw0 + 3], wb[kw0 + 4]
    if taps <= 3:
        for k in range(run):
            u0, u1, u2 = s0[k], s1[k], s2[k]
            d0[k] += a0 * u0 + a1 * u1 + a2 * u2
            d1[k] += b0 * u0 + b1 * u1 + b2 * u2
        return
    for k in range(run):
        u0, u1, u2, u3, u4 = s0[k], s1[k], s2[k], s3[k], s4[k]
        d0[k] += a0 * u0 + a1 * u1 + a2 * u2 + a3 * u3 + a4 * u4
        d1[k] += b0 * u0 + b1 * u1 + b2 * u2 + b3 * u3 + b4 * u4


@_jit(inline=True)
def _sweep_quad_3x3(d0, d1, d2, d3, w0, w1, w2, w3, r0, r1, r2, batch, run):
    """A whole 3x3 kernel for four output rows at once: d0 += sum over kh, kw of w0[kh, kw] *
    (row kh shifted by kw * N), d1..d3 likewise with w1..w3. Nine inputs read for thirty-six
    products, each destination loaded and stored once per input channel (the sweeps are bound
    by their loads)."""
    n1, n2 = batch, 2 * batch
    s00, s01, s02 = r0[:run], r0[n1:n1 + run], r0[n2:n2 + run]
    s10, s11, s12 = r1[:run], r1[n1:n1 + run], r1[n2:n2 + run]
    s20, s21, s22 = r2[:run], r2[n1:n1 + run], r2[n2:n2 + run]
    a00, a01, a02, a10, a11, a12, a20, a21, a22 = (
        w0[0, 0], w0[0, 1], w0[0, 2], w0[1, 0], w0[1, 1], w0[1, 2], w0[2, 0], w0[2, 1], w0[2, 2])
    b00, b01, b02, b10, b11, b12, b20, b21, b22 = (
        w1[0, 0], w1[0, 1], w1[0, 2], w1[1, 0], w1[1, 1], w1[1, 2], w1[2, 0], w1[2, 1], w1[2, 2])
    c00, c01, c02, c10, c11, c12, c20, c21, c22 = (
        w2[0, 0], w2[0, 1], w2[0, 2], w2[1, 0], w2[1, 1], w2[1, 2], w2[2, 0], w2[2, 1], w2[2, 2])
    e00, e01, e02, e10, e11, e12, e20, e21, e22 = (
        w3[0, 0], w3[0, 1], w3[0, 2], w3[1, 0], w3[1, 1], w3[1, 2], w3[2, 0], w3[2, 1], w3[2, 2])
    for k in range(run):
        u00, u01, u02 = s00[k], s01[k], s02[k]
        u10, u11, u12 = s10[k], s11[k], s12[k]
        u20, u21, u22 = s20[k], s21[k], s22[k]
        d0[k] += (a00 * u00 + a01 * u01 + a02 * u02 + a10 * u10 + a11 * u11 + a12 * u12 +
                  a20 * u20 + a21 * u21 + a22 * u22)
        d1[k] += (b00 * u00 + b01 * u01 + b02 * u02 + b10 * u10 + b11 * u11 + b12 * u12 +
                  b20 * u20 + b21 * u21 + b22 * u22)
        d2[k] += (c00 * u00 + c01 * u01 + c02 * u02 + c10 * u10 + c11 * u11 + c12 * u12 +
                  c20 * u20 + c21 * u21 + c22 * u22)
        d3[k] += (e00 * u00 + e01 * u01 + e02 * u02 + e10 * u10 + e11 * u11 + e12 * u12 +
                  e20 * u20 + e21 * u21 + e22 * u22)


@_jit()
def conv2d_direct(x, weight, kernel_w, bias, stride_h, dilation_h, out):
    """out[o, i, j, n] = bias[o] + sum over c, kh, kw of weight[o, c, kh, kw] *
    x[c, i*sh + kh*dh, j + kw, n]; weight from taps_weight, kernel_w its real width. Two output
    channels per sweep, which share the five input runs they read (an odd last channel sweeps
    with a scratch row as its partner)."""
    channels, height, width, batch = x.shape
    out_channels, _, kernel_h, _ = weight.shape
    _, out_h, out_w, _ = out.shape
    run = out_w * batch
    rows = x.reshape(channels, height, width * batch)
    out_rows = out.reshape(out_channels, out_h, run)
    scratch = np.empty(run, dtype=out.dtype)
    for o in range(0, out_channels, 2):
        pair = o + 1 < out_channels
        p = o + 1 if pair else o
        for i in range(out_h):
            d0 = out_rows[o, i]
            d1 = out_rows[p, i] if pair else scratch
            for k in range(run):
                d0[k] = bias[o]
                d1[k] = bias[p]
            base = i * stride_h
            for c in range(channels):
                for kh in range(kernel_h):
                    src = rows[c, base + kh * dilation_h]
                    for kw0 in range(0, kernel_w, TAPS):
                        _sweep_pair(d0, d1, weight[o, c, kh], weight[p, c, kh], src, kw0,
                                    min(TAPS, kernel_w - kw0), batch, run)


@_jit()
def conv2d_direct_3x3(x, weight, bias, stride_h, dilation_h, out):
    """conv2d_direct for a 3x3 kernel (weight as it is, not padded to taps), all nine taps and
    four output channels per sweep (scratch rows stand in for a last group's missing ones):
    a U-Net step 3-14% faster than with 3x3 sweeps in pairs; a loop of its own, as the same
    sweeps inside conv2d_direct's general one compiled slower."""
    channels, height, width, batch = x.shape
    out_channels = weight.shape[0]
    _, out_h, out_w, _ = out.shape
    run = out_w * batch
    rows = x.reshape(channels, height, width * batch)
    out_rows = out.reshape(out_channels, out_h, run)
    scratch = np.empty((3, run), dtype=out.dtype)
    last = out_channels - 1
    for o in range(0, out_channels, 4):
        p, q, t = min(o + 1, last), min(o + 2, last), min(o + 3, last)
        for i in range(out_h):
            d0 = out_rows[o, i]
            d1 = out_rows[p, i] if o + 1 <= last else scratch[0]
            d2 = out_rows[q, i] if o + 2 <= last else scratch[1]
            d3 = out_rows[t, i] if o + 3 <= last else scratch[2]
            for k in range(run):
                d0[k] = bias[o]
                d1[k] = bias[p]
                d2[k] = bias[q]
                d3[k] = bias[t]
            base = i * stride_h
            for c in range(channels):
                _sweep_quad_3x3(d0, d1, d2, d3, weight[o, c], weight[p, c], weight[q, c],
                                weight[t, c], rows[c, base], rows[c, base + dilation_h],
                                rows[c, base + 2 * dilation_h], batch, run)


@_jit(inline=True)
def _dot_3x3(gr, r0, r1, r2, batch, run, dw_oc):
    """dw_oc[kh, kw] += the dot product of gr with row kh shifted by kw * N: the weight
    gradient of a 3x3 kernel in one pass over the rows (nine sums)."""
    n1, n2 = batch, 2 * batch
    s00, s01, s02 = r0[:run], r0[n1:n1 + run], r0[n2:n2 + run]
    s10, s11, s12 = r1[:run], r1[n1:n1 + run], r1[n2:n2 + run]
    s20, s21, s22 = r2[:run], r2[n1:n1 + run], r2[n2:n2 + run]
    a00 = a01 = a02 = a10 = a11 = a12 = a20 = a21 = a22 = np.float32(0.0)
    for k in range(run):
        v = gr[k]
        a00 += v * s00[k]
        a01 += v * s01[k]
        a02 += v * s02[k]
        a10 += v * s10[k]
        a11 += v * s11[k]
        a12 += v * s12[k]
        a20 += v * s20[k]
        a21 += v * s21[k]
        a22 += v * s22[k]
    dw_oc[0, 0] += a00
    dw_oc[0, 1] += a01
    dw_oc[0, 2] += a02
    dw_oc[1, 0] += a10
    dw_oc[1, 1] += a11
    dw_oc[1, 2] += a12
    dw_oc[2, 0] += a20
    dw_oc[2, 1] += a21
    dw_oc[2, 2] += a22


@_jit(inline=True)
def _dot_3x3_pair(ga, gb, r0, r1, r2, batch, run, dw_a, dw_b):
    """_dot_3x3 for two output channels at once: their gradient rows against the same nine
    shifted input runs (eleven loads for eighteen products where one channel takes ten for
    nine; 1.3-1.6x faster here)."""
    n1, n2 = batch, 2 * batch
    s00, s01, s02 = r0[:run], r0[n1:n1 + run], r0[n2:n2 + run]
    s10, s11, s12 = r1[:run], r1[n1:n1 + run], r1[n2:n2 + run]
    s20, s21, s22 = r2[:run], r2[n1:n1 + run], r2[n2:n2 + run]
    a00 = a01 = a02 = a10 = a11 = a12 = a20 = a21 = a22 = np.float32(0.0)
    b00 = b01 = b02 = b10 = b11 = b12 = b20 = b21 = b22 = np.float32(0.0)
    for k in range(run):
        v, u = ga[k], gb[k]
        x00, x01, x02 = s00[k], s01[k], s02[k]
        x10, x11, x12 = s10[k], s11[k], s12[k]
        x20, x21, x22 = s20[k], s21[k], s22[k]
        a00 += v * x00
        a01 += v * x01
        a02 += v * x02
        a10 += v * x10
        a11 += v * x11
        a12 += v * x12
        a20 += v * x20
        a21 += v * x21
        a22 += v * x22
        b00 += u * x00
        b01 += u * x01
        b02 += u * x02
        b10 += u * x10
        b11 += u * x11
        b12 += u * x12
        b20 += u * x20
        b21 += u * x21
        b22 += u * x22
    dw_a[0, 0] += a00
    dw_a[0, 1] += a01
    dw_a[0, 2] += a02
    dw_a[1, 0] += a10
    dw_a[1, 1] += a11
    dw_a[1, 2] += a12
    dw_a[2, 0] += a20
    dw_a[2, 1] += a21
    dw_a[2, 2] += a22
    dw_b[0, 0] += b00
    dw_b[0, 1] += b01
    dw_b[0, 2] += b02
    dw_b[1, 0] += b10
    dw_b[1, 1] += b11
    dw_b[1, 2] += b12
    dw_b[2, 0] += b20
    dw_b[2, 1] += b21
    dw_b[2, 2] += b22


@_jit()
def conv2d_direct_backward_weight(x, g, stride_h, dilation_h, dw, db):
    """dw[o, c, kh, kw] = sum over i, j, n of g[o, i, j, n] x[c, i*sh + kh*dh, j + kw, n] and
    db[o] = sum of g[o] (dw, db float64, zeroed by the caller), row by row of the output so
    that the rows read stay in cache."""
    channels, height, width, batch = x.shape
    out_channels, _, kernel_h, kernel_w = dw.shape
    _, out_h, out_w, _ = g.shape
    run = out_w * batch
    rows = x.reshape(channels, height, width * batch)
    g_rows = g.reshape(out_channels, out_h, run)
    nine = kernel_h == 3 and kernel_w == 3
    for i in range(out_h):
        base = i * stride_h
        for o in range(out_channels):
            gr = g_rows[o, i]
            total = np.float32(0.0)
            for k in range(run):
                total += gr[k]
            db[o] += total
            if nine and o % 2 == 1:  # swept with channel o - 1
                continue
            for c in range(channels):
                r0, r1 = rows[c, base], rows[c, base + dilation_h]
                r2 = rows[c, base + 2 * dilation_h] if nine else r0
                if nine and o + 1 < out_channels:
                    _dot_3x3_pair(gr, g_rows[o + 1, i], r0, r1, r2, batch, run, dw[o, c],
                                  dw[o + 1, c])
                    continue
                if nine:
                    _dot_3x3(gr, r0, r1, r2, batch, run, dw[o, c])
                    continue
                for kh in range(kernel_h):
                    src = rows[c, base + kh * dilation_h]
                    for kw0 in range(0, kernel_w, TAPS):
                        taps = min(TAPS, kernel_w - kw0)
                        s0, s1, s2, s3, s4 = _shifted(src, kw0, taps, batch, run)
                        a0 = a1 = a2 = a3 = a4 = np.float32(0.0)
                        if taps <= 3:
                            for k in range(run):
                                a0 += gr[k] * s0[k]
                                a1 += gr[k] * s1[k]
                                a2 += gr[k] * s2[k]
                        else:
                            for k in range(run):
                                a0 += gr[k] * s0[k]
                                a1 += gr[k] * s1[k]
                                a2 += gr[k] * s2[k]
                                a3 += gr[k] * s3[k]
                                a4 += gr[k] * s4[k]
                        dw[o, c, kh, kw0] += a0
                        if taps > 1:
                            dw[o, c, kh, kw0 + 1] += a1
                        if taps > 2:
                            dw[o, c, kh, kw0 + 2] += a2
                        if taps > 3:
                            dw[o, c, kh, kw0 + 3] += a3
                        if taps > 4:
                            dw[o, c, kh, kw0 + 4] += a4


@_jit()
def conv2d_direct_backward_input(g, weight, kernel_w, stride_h, dilation_h, dx):
    """dx[c, i*sh + kh*dh, j + kw, n] += weight[o, c, kh, kw] g[o, i, j, n] (dx padded, zeroed
    by the caller; weight from taps_weight(..., flip=True)). Each output row's gradient is
    copied into a buffer with KW - 1 zero columns on each side, so that a row of dx is, tap by
    tap of the flipped kernel, a shifted run of it."""
    out_channels, out_h, out_w, batch = g.shape
    channels, height, width, _ = dx.shape
    kernel_h = weight.shape[2]
    margin = (kernel_w - 1) * batch
    run = width * batch  # = (out_w + kernel_w - 1) * batch
    padded = np.zeros(out_w * batch + 2 * margin, dtype=g.dtype)
    g_rows = g.reshape(out_channels, out_h, out_w * batch)
    dx_rows = dx.reshape(channels, height, run)
    scratch = np.empty(run, dtype=dx.dtype)
    for o in range(out_channels):
        for i in range(out_h):
            gr = g_rows[o, i]
            for k in range(out_w * batch):
                padded[margin + k] = gr[k]
            for c in range(0, channels, 2):  # two input channels per sweep, as the forward
                pair = c + 1 < channels
                q = c + 1 if pair else c
                for kh in range(kernel_h):
                    row = i * stride_h + kh * dilation_h
                    d0 = dx_rows[c, row]
                    d1 = dx_rows[q, row] if pair else scratch
                    for kw0 in range(0, kernel_w, TAPS):
                        _sweep_pair(d0, d1, weight[o, c, kh], weight[o, q, kh], padded, kw0,
                                    min(TAPS, kernel_w - kw0), batch, run)


# ---------------------------------------------------------------------------------------------
# max pooling whose windows tile the input, in the batch-innermost layout (C, H, W, N)

@_jit()
def max_pool_tiled_backward(x, out, grad, kernel_h, kernel_w, dx):
    """dx gets each window's gradient at the first offset (row-major) holding its maximum
    (or a NaN, which max pooling passes on), zeros elsewhere (and on the border the tiles
    leave out)."""
    channels, height, width, batch = x.shape
    _, out_h, out_w, _ = out.shape
    done = np.empty(batch, dtype=np.bool_)
    for c in range(channels):
        for h in range(out_h * kernel_h, height):  # rows no window covers
            for w in range(width):
                for n in range(batch):
                    dx[c, h, w, n] = 0.0
        for h in range(height):
            for w in range(out_w * kernel_w, width):
                for n in range(batch):
                    dx[c, h, w, n] = 0.0
        for i in range(out_h):
            for j in range(out_w):
                for n in range(batch):
                    done[n] = False
                for di in range(kernel_h):
                    for dj in range(kernel_w):
                        h, w = i * kernel_h + di, j * kernel_w + dj
                        for n in range(batch):
                            value = x[c, h, w, n]  # (a NaN is its window's max)
                            hit = (value == out[c, i, j, n] or value != value) and not done[n]
                            dx[c, h, w, n] = grad[c, i, j, n] if hit else 0.0
                            done[n] = done[n] or hit


@_jit()
def relu_backward(out, grad, dx):
    """dx = grad where out is not <= 0 (so NaN passes its gradient on), else 0; flat arrays."""
    for i in range(out.size):
        dx[i] = 0.0 if out[i] <= 0 else grad[i]


# ---------------------------------------------------------------------------------------------
# Winograd F(2x2, 3x3) (ops/fast/cpu_winograd.py), batch innermost: x (C, 2 TH + 2, 2 TW + 2, N)
# zero-padded to whole tiles, the output and its gradient (K, 2 TH, 2 TW, N), tile p =
# (ty TW + tx) N + n, its 16 points xi = 4 i + j the rows of v (16, C, P) and mm (16, K, P).
# A 2-D transform is the 1-D one down the tile's columns, then along its rows; each step is a
# loop with one store stream over runs of N (vectorized along the batch). The matrices of
# kernels/winograd.py's F2, as the pairs of entries of each row (index, index, sign of the
# second; the first is +1):
#   BT = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
#   AT = [[1, 1, 1, 0], [0, 1, -1, -1]] (three entries a row), A = AT^T, B = BT^T

BT_ROWS = ((0, 2, -1), (1, 2, 1), (2, 1, -1), (1, 3, -1))


@_jit()
def winograd_input(x, v, first, stop, row0):
    """v[:, c, p] = BT d BT^T, d the 4x4 patch of channel c under tile p, for c in [first,
    stop) and the tile rows from row0 (whole arrays and ranges: views of some channels or rows
    would not be contiguous, and Numba's loops over them not vectorized)."""
    _, _, width, batch = x.shape
    tiles_w = (width - 2) // 2
    tiles_h = v.shape[2] // (tiles_w * batch)
    t = np.empty((4, width, batch), dtype=np.float32)  # BT down the columns of one tile row
    for c in range(first, stop):
        for ty in range(tiles_h):
            for i in range(4):
                r1, r2, sign = BT_ROWS[i]
                a, b, f = x[c, 2 * (row0 + ty) + r1], x[c, 2 * (row0 + ty) + r2], F32(sign)
                for w in range(width):
                    for n in range(batch):
                        t[i, w, n] = a[w, n] + f * b[w, n]
            for i in range(4):
                for j in range(4):
                    s1, s2, sign = BT_ROWS[j]
                    f, row, ti = F32(sign), v[4 * i + j, c], t[i]
                    for tx in range(tiles_w):
                        base = (ty * tiles_w + tx) * batch
                        for n in range(batch):
                            row[base + n] = ti[2 * tx + s1, n] + f * ti[2 * tx + s2, n]


@_jit()
def winograd_input_adjoint(dv, dx, first, stop, row0):
    """dx (zeroed, x's shape) += B dV B^T for every tile, the overlapping patches summed, for
    the channels in [first, stop) and the tile rows from row0."""
    _, _, width, batch = dx.shape
    tiles_w = (width - 2) // 2
    tiles_h = dv.shape[2] // (tiles_w * batch)
    r = np.empty((4, width, batch), dtype=np.float32)  # dV B^T of one tile row, overlaps summed
    for c in range(first, stop):
        for ty in range(tiles_h):
            r[:] = 0
            for i in range(4):
                e0, e1, e2, e3 = dv[4 * i, c], dv[4 * i + 1, c], dv[4 * i + 2, c], dv[4 * i + 3, c]
                ri = r[i]
                for tx in range(tiles_w):  # column 2 tx + s gets B's row s . (e0, e1, e2, e3)
                    base = (ty * tiles_w + tx) * batch
                    for n in range(batch):
                        ri[2 * tx, n] += e0[base + n]
                        ri[2 * tx + 1, n] += e1[base + n] - e2[base + n] + e3[base + n]
                        ri[2 * tx + 2, n] += e1[base + n] + e2[base + n] - e0[base + n]
                        ri[2 * tx + 3, n] -= e3[base + n]
            y = 2 * (row0 + ty)
            d0, d1, d2, d3 = dx[c, y], dx[c, y + 1], dx[c, y + 2], dx[c, y + 3]
            for w in range(width):  # row 2 ty + s likewise, down the columns
                for n in range(batch):
                    d0[w, n] += r[0, w, n]
                    d1[w, n] += r[1, w, n] - r[2, w, n] + r[3, w, n]
                    d2[w, n] += r[1, w, n] + r[2, w, n] - r[0, w, n]
                    d3[w, n] -= r[3, w, n]


@_jit()
def winograd_output(mm, bias, out, first, stop, row0):
    """out[k, 2 ty + i, 2 tx + j, n] = (AT M AT^T)[i, j] + bias[k], M the 4x4 of mm[:, k, p],
    for k in [first, stop) and the tile rows from row0."""
    _, _, width, batch = out.shape
    tiles_w = width // 2
    run = tiles_w * batch  # the points of one tile row
    s = np.empty((4, 2, run), dtype=np.float32)  # AT along the rows of the tiles
    for k in range(first, stop):
        b = bias[k]
        for ty in range(mm.shape[2] // run):
            base = ty * run
            for i in range(4):
                m0, m1 = mm[4 * i, k, base:base + run], mm[4 * i + 1, k, base:base + run]
                m2, m3 = mm[4 * i + 2, k, base:base + run], mm[4 * i + 3, k, base:base + run]
                s0, s1 = s[i, 0], s[i, 1]
                for q in range(run):
                    s0[q] = m0[q] + m1[q] + m2[q]
                for q in range(run):
                    s1[q] = m1[q] - m2[q] - m3[q]
            for j in range(2):  # then down the columns, into output rows 2 ty and 2 ty + 1
                top, bottom = out[k, 2 * (row0 + ty)], out[k, 2 * (row0 + ty) + 1]
                a0, a1, a2, a3 = s[0, j], s[1, j], s[2, j], s[3, j]
                for tx in range(tiles_w):
                    for n in range(batch):
                        q = tx * batch + n
                        top[2 * tx + j, n] = a0[q] + a1[q] + a2[q] + b
                for tx in range(tiles_w):
                    for n in range(batch):
                        q = tx * batch + n
                        bottom[2 * tx + j, n] = a1[q] - a2[q] - a3[q] + b


@_jit()
def winograd_output_adjoint(grad, dm, first, stop, row0):
    """dm[:, k, p] = A dY A^T, dY the 2x2 tile p of grad[k], for k in [first, stop)
    and the tile rows from row0."""
    _, _, width, batch = grad.shape
    tiles_w = width // 2
    run = tiles_w * batch
    q = np.empty((2, 4, run), dtype=np.float32)  # A along the rows of the tiles
    for k in range(first, stop):
        for ty in range(dm.shape[2] // run):
            for r in range(2):
                g = grad[k, 2 * (row0 + ty) + r]
                q0, q1, q2, q3 = q[r, 0], q[r, 1], q[r, 2], q[r, 3]
                for tx in range(tiles_w):
                    for n in range(batch):
                        y0, y1, at = g[2 * tx, n], g[2 * tx + 1, n], tx * batch + n
                        q0[at], q1[at], q2[at], q3[at] = y0, y0 + y1, y0 - y1, -y1
            base = ty * run
            for j in range(4):  # then down the columns
                top, bottom = q[0, j], q[1, j]
                d0, d1 = dm[j, k, base:base + run], dm[4 + j, k, base:base + run]
                d2, d3 = dm[8 + j, k, base:base + run], dm[12 + j, k, base:base + run]
                for at in range(run):
                    d0[at] = top[at]
                for at in range(run):
                    d1[at] = top[at] + bottom[at]
                for at in range(run):
                    d2[at] = top[at] - bottom[at]
                for at in range(run):
                    d3[at] = -bottom[at]
