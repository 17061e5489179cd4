"""Where the CUDA convolutions of a VGG16 step spend their time, piece by piece, and what the
columns budget trades between speed and memory:

    PYTHONPATH=. python benchmarks/gpu_conv_breakdown.py [--batch 64] [--budgets 512 1024]

For each of VGG16's 13 convolutions at 224x224 it runs the pieces of ops/fast/cuda_conv.py
(im2col, the three GEMMs, col2im, the layout moves, the bias gradient) on random data, chunk
by chunk as the fast path does, timing each with CUDA events, in fp32 and with TF32; then the
pieces of ops/fast/cuda_winograd.py (the transforms, their adjoints and the three batched
GEMMs) for the 12 layers it takes, in fp32, TF32 and float16. With --budgets it then times the
whole training step (gpu_check's) at each columns budget, in MiB. Timing single pieces adds a
synchronisation after each: the sum is a little above the step's.
"""

from __future__ import annotations

import argparse
import collections
import sys
from unittest import mock

import gpu_check

import minigrad as mg
from minigrad.kernels import gemm, winograd
from minigrad.kernels import im2col as kernels
from minigrad.ops import fast
from minigrad.ops.fast import cuda_conv, cuda_winograd

PIECES = ("im2col", "gemm forward", "to nchw", "to gemm", "bias grad", "im2col again",
          "gemm grad_w", "gemm grad_cols", "col2im")
WINOGRAD_PIECES = ("filter transform", "input transform", "gemm forward", "output transform",
                   "output adjoint", "bias grad", "input transform again", "gemm grad_U",
                   "gemm grad_V", "input adjoint + gather", "filter adjoint")


def vgg_layers(size: int = 224) -> list[tuple[int, int, int]]:
    """(in channels, out channels, image size) of VGG16's convolutions."""
    layers, channels = [], 3
    for item in mg.models.vgg.CONFIG_D:
        if item == "M":
            size //= 2
        else:
            layers.append((channels, item, size))
            channels = item
    return layers


def conv_pieces(cin: int, cout: int, size: int, batch: int, clock) -> dict[str, float]:
    """ms of each piece of one 3x3 convolution's forward and backward, summed over chunks."""
    xp = mg.backend.array_module("cuda")
    rng = xp.random.default_rng(0)
    x = rng.standard_normal((batch, cin, size, size), dtype=xp.float32)
    w2d = rng.standard_normal((cout, cin * 9), dtype=xp.float32)
    bias = xp.zeros(cout, dtype=xp.float32)
    out = xp.empty((batch, cout, size, size), dtype=xp.float32)
    g = rng.standard_normal((batch, cout, size, size), dtype=xp.float32)
    grad_x = xp.empty_like(x)
    geometry = ((3, 3), (1, 1), (1, 1), (1, 1), (size, size))
    ms = collections.defaultdict(float)

    def timed(piece, function, *args):
        start = clock.mark()
        result = function(*args)
        ms[piece] += clock.elapsed_ms(start, clock.mark())
        return result

    for start, stop in cuda_conv.batch_chunks(batch, cin * 9 * size * size * 4):
        columns = (stop - start) * size * size
        cols = xp.empty((cin * 9, columns), dtype=xp.float32)
        timed("im2col", kernels.im2col, x[start:stop], cols, *geometry)
        out2d = timed("gemm forward", xp.matmul, w2d, cols)
        timed("to nchw", kernels.gemm_to_nchw, out2d, bias, out[start:stop])
        g2d = xp.empty((cout, columns), dtype=xp.float32)
        timed("to gemm", kernels.nchw_to_gemm, g[start:stop], g2d)
        timed("bias grad", g2d.sum, 1)
        timed("im2col again", kernels.im2col, x[start:stop], cols, *geometry)
        timed("gemm grad_w", xp.matmul, g2d, cols.T)
        cols = None
        w2d_t = xp.ascontiguousarray(w2d.T)
        grad_cols = timed("gemm grad_cols", xp.matmul, w2d_t, g2d)
        timed("col2im", kernels.col2im, grad_cols, grad_x[start:stop], *geometry)
    return dict(ms)


def winograd_pieces(cin: int, cout: int, size: int, batch: int, clock,
                    precision: str) -> dict[str, float]:
    """ms of each piece of one Winograd 3x3 convolution's forward and backward."""
    xp = mg.backend.array_module("cuda")
    dtype = xp.float16 if precision == "fp16" else xp.float32
    tf32 = precision == "tf32"
    rng = xp.random.default_rng(0)
    x = rng.standard_normal((batch, cin, size, size), dtype=xp.float32).astype(dtype)
    weight = rng.standard_normal((cout, cin, 3, 3), dtype=xp.float32).astype(dtype)
    bias = xp.zeros(cout, dtype=dtype)
    out = xp.empty((batch, cout, size, size), dtype=dtype)
    g = rng.standard_normal((batch, cout, size, size), dtype=xp.float32).astype(dtype)
    grad_x = xp.empty_like(x)
    plan = winograd.Plan(cuda_winograd.TILE_FOR_PRECISION[precision], size, size, 1, 1, size,
                         size)
    ms = collections.defaultdict(float)

    def timed(piece, function, *args, **kwargs):
        start = clock.mark()
        result = function(*args, **kwargs)
        ms[piece] += clock.elapsed_ms(start, clock.mark())
        return result

    u = timed("filter transform", winograd.filter_transform, weight, plan.m, xp)
    du = xp.zeros(u.shape, dtype=xp.float32)
    per_image = plan.points * plan.th * plan.tw * (cin * x.itemsize + cout * 4)
    for start, stop in fast.blocks(batch, per_image, cuda_winograd.BUDGET_BYTES):
        v = timed("input transform", winograd.input_transform, x[start:stop], plan, xp)
        mm = xp.empty((plan.points, cout, v.shape[2]), dtype=xp.float32)
        timed("gemm forward", gemm.batched_matmul, u, v, mm, tf32=tf32)
        timed("output transform", winograd.output_transform, mm, bias, out[start:stop], plan)
        v = mm = None
    for start, stop in fast.blocks(batch, per_image, cuda_winograd.BUDGET_BYTES):
        dm = timed("output adjoint", winograd.output_adjoint, g[start:stop], plan, xp)
        timed("bias grad", g[start:stop].sum, (0, 2, 3), xp.float32)
        v = timed("input transform again", winograd.input_transform, x[start:stop], plan, xp)
        timed("gemm grad_U", gemm.batched_matmul, dm, v, du, trans_b=True, accumulate=True,
              tf32=tf32)
        v = None
        dv = xp.empty((plan.points, cin, dm.shape[2]), dtype=xp.float32)
        timed("gemm grad_V", gemm.batched_matmul, u, dm, dv, trans_a=True, tf32=tf32)
        timed("input adjoint + gather", winograd.input_adjoint, dv, grad_x[start:stop], plan)
        dm = dv = None
    timed("filter adjoint", winograd.filter_adjoint, du, weight.shape, weight.dtype, plan.m, xp)
    return dict(ms)


def breakdown(batch: int, size: int = 224, clock=None, layers=None,
              precisions=("fp32", "tf32"), path: str = "im2col") -> dict[str, dict]:
    """{precision: {piece: ms over all layers}} of the im2col path (fp32, tf32) or the
    Winograd one (fp32, tf32, fp16; the layers it takes: 3x3 with 16 channels in or more)."""
    clock = clock or gpu_check._Events()
    pieces = PIECES if path == "im2col" else WINOGRAD_PIECES
    totals = {}
    for precision in precisions:
        with gpu_check.minigrad_precision(precision if precision != "fp16" else "default"):
            total = collections.defaultdict(float)
            for cin, cout, s in layers or vgg_layers(size):
                if path == "winograd" and cin < cuda_winograd.MIN_CHANNELS:
                    continue
                arguments = (cin, cout, s, batch, clock)
                if path == "winograd":
                    arguments += (precision,)
                pieces_of = winograd_pieces if path == "winograd" else conv_pieces
                pieces_of(*arguments)  # warm-up: compile, fill the pool
                for piece, ms in pieces_of(*arguments).items():
                    total[piece] += ms
            totals[precision] = {piece: total[piece] for piece in pieces}
    return totals


def table(path: str, totals: dict) -> list[str]:
    """A markdown table of breakdown's result: a row per piece, a column per precision."""
    precisions = list(totals)
    pieces = list(next(iter(totals.values())))
    lines = [f"| {path} piece | " + " | ".join(f"{p} ms" for p in precisions) + " |",
             "|---|" + "---|" * len(precisions)]
    for piece in pieces:
        lines.append(f"| {piece} | " + " | ".join(f"{totals[p][piece]:.1f}" for p in precisions)
                     + " |")
    lines.append("| total | " + " | ".join(f"{sum(totals[p].values()):.1f}" for p in precisions)
                 + " |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--budgets", type=int, nargs="*", default=[],
                        help="columns budgets (MiB) to time the whole step at")
    args = parser.parse_args(argv)
    if not mg.cuda.is_available():
        print("gpu_conv_breakdown: no CUDA GPU found by CuPy", file=sys.stderr)
        return 2
    print(f"# {gpu_check.gpu_name()}, VGG16 convolutions, batch {args.batch}, 224x224")
    for path, precisions in (("im2col", ("fp32", "tf32")),
                             ("winograd", ("fp32", "tf32", "fp16"))):
        for line in table(path, breakdown(args.batch, path=path, precisions=precisions)):
            print(line, flush=True)
    for budget in args.budgets:
        for precision in ("fp32", "tf32"):
            with mock.patch.object(cuda_conv, "COLS_BUDGET_BYTES", budget * 2**20), \
                    mock.patch.object(cuda_winograd, "BUDGET_BYTES", budget * 2**20):
                speed, peak = gpu_check.time_minigrad(args.batch, precision)
            print(f"budget {budget} MiB, {precision}: {speed:.1f} images/s, peak "
                  f"{peak:.2f} GiB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
