"""Where the CUDA convolutions of a VGG16 step spend their time, piece by piece, and what the
columns budget trades between speed and memory:

    PYTHONPATH=. python benchmarks/gpu_conv_breakdown.py [--batch 64] [--budgets 512 1024]

For each of VGG16's 13 convolutions at 224x224 it runs the pieces of ops/fast/cuda_conv.py
(im2col, the three GEMMs, col2im, the layout moves, the bias gradient) on random data, chunk
by chunk as the fast path does, timing each with CUDA events, in fp32 and with TF32. With
--budgets it then times the whole training step (gpu_check's) at each columns budget, in MiB.
Timing single pieces adds a synchronisation after each: the sum is a little above the step's.
"""

from __future__ import annotations

import argparse
import collections
import sys
from unittest import mock

import gpu_check

import minigrad as mg
from minigrad.kernels import im2col as kernels
from minigrad.ops.fast import cuda_conv

PIECES = ("im2col", "gemm forward", "to nchw", "to gemm", "bias grad", "im2col again",
          "gemm grad_w", "gemm grad_cols", "col2im")


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


def breakdown(batch: int, size: int = 224, clock=None, layers=None,
              precisions=(False, True)) -> dict[bool, dict]:
    """{tf32: {piece: ms over all layers}} for fp32 (tf32 False) and TF32 (True)."""
    clock = clock or gpu_check._Events()
    totals = {}
    for tf32 in precisions:
        mg.cuda.allow_tf32 = tf32
        try:
            total = collections.defaultdict(float)
            for cin, cout, s in layers or vgg_layers(size):
                conv_pieces(cin, cout, s, batch, clock)  # warm-up: compile, fill the pool
                for piece, ms in conv_pieces(cin, cout, s, batch, clock).items():
                    total[piece] += ms
            totals[tf32] = {piece: total[piece] for piece in PIECES}
        finally:
            mg.cuda.allow_tf32 = False
    return totals


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
    totals = breakdown(args.batch)
    print("| piece | fp32 ms | TF32 ms |\n|---|---|---|")
    for piece in PIECES:
        print(f"| {piece} | {totals[False][piece]:.1f} | {totals[True][piece]:.1f} |")
    print(f"| total | {sum(totals[False].values()):.1f} | {sum(totals[True].values()):.1f} |",
          flush=True)
    for budget in args.budgets:
        for tf32 in (False, True):
            with mock.patch.object(cuda_conv, "COLS_BUDGET_BYTES", budget * 2**20):
                speed, peak = gpu_check.time_minigrad(args.batch, tf32)
            print(f"columns budget {budget} MiB, {'TF32' if tf32 else 'fp32'}: "
                  f"{speed:.1f} images/s, peak {peak:.2f} GiB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
