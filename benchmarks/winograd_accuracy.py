"""How far Winograd convolution's results are from float64, against im2col's, on VGG16's layers:

    python benchmarks/winograd_accuracy.py [--size 12] [--write]

For each distinct (in, out) channel pair of VGG16's 3x3 layers after the first, one image of
size x size (padding 1), standard normal inputs and He-scaled weights: the output, the input
gradient and the weight gradient of the CUDA paths (im2col, Winograd F(2x2, 3x3) and F(4x4,
3x3)) in strict fp32, TF32 and float16, as max |error| / max |float64 reference|. The
reference is minigrad's Conv2d in float64 on the CPU. On a machine without a GPU it runs
through the CuPy stand-in of the tests, whose kernels are the NumPy twins and whose GEMMs
emulate cuBLAS's compute types (TF32 rounding, float16 products summed in float32); on a GPU,
the kernels and cuBLAS themselves.

The worst error of each column decides ops/fast/cuda_winograd.py's TILE_FOR_PRECISION:
F(4x4) where it stays within 1e-5 (of the output's range) in every layer, F(2x2) elsewhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import minigrad as mg  # noqa: E402

TITLE = "## Winograd accuracy on VGG16's layers (benchmarks/winograd_accuracy.py)"
LAYERS = [(64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512)]
PATHS = ("im2col", "F(2x2)", "F(4x4)")
PRECISIONS = ("fp32", "tf32", "fp16")
THRESHOLD = 1e-5  # F(4x4) is used for a precision only if every error stays within it


def _relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(ours.astype(np.float64) - reference).max() / np.abs(reference).max())


def run_path(path: str, precision: str, arrays, upstream):
    """(output, grad_x, grad_weight) of one CUDA path, as float64 host arrays."""
    from minigrad.ops.fast import cuda_conv, cuda_winograd

    dtype = np.float16 if precision == "fp16" else np.float32
    mg.backends.cudnn.allow_tf32 = precision == "tf32"
    settings = dict(stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1), groups=1)
    if path == "im2col":
        function = cuda_conv.Conv2dCUDA
    else:
        function = cuda_winograd.Conv2dWinogradCUDA
        cuda_winograd.TILE_FOR_PRECISION[precision] = int(path[2])
    x, w = (mg.tensor(a.astype(dtype), device="cuda", requires_grad=True) for a in arrays)
    out = function.apply(x, w, **settings)
    out.backward(mg.tensor(upstream.astype(dtype), device="cuda"))
    return [t.numpy().astype(np.float64) for t in (out, x.grad, w.grad)]


def measure(size: int) -> dict:
    """{(path, precision): [(layer, errors of output, grad_x, grad_weight)]}."""
    from minigrad.ops import conv

    rng = np.random.default_rng(0)
    results: dict = {}
    saved_tiles = dict(__import__("minigrad.ops.fast.cuda_winograd",
                                  fromlist=["x"]).TILE_FOR_PRECISION)
    try:
        for c, k in LAYERS:
            x = rng.standard_normal((1, c, size, size))
            w = rng.standard_normal((k, c, 3, 3)) * np.sqrt(2 / (9 * c))
            upstream = rng.standard_normal((1, k, size, size))
            xs, ws = (mg.tensor(a, requires_grad=True) for a in (x, w))
            reference = conv.Conv2d.apply(xs, ws, stride=(1, 1), padding=(1, 1, 1, 1),
                                          dilation=(1, 1), groups=1)
            reference.backward(mg.tensor(upstream))
            expected = [reference.numpy(), xs.grad.numpy(), ws.grad.numpy()]
            for path in PATHS:
                for precision in PRECISIONS:
                    got = run_path(path, precision, (x, w), upstream)
                    errors = [_relative_error(a, b) for a, b in zip(got, expected)]
                    results.setdefault((path, precision), []).append(((c, k), errors))
                    print(f"{c:3d}->{k:3d} {path:7s} {precision}: output {errors[0]:.1e} "
                          f"grad_x {errors[1]:.1e} grad_w {errors[2]:.1e}", flush=True)
    finally:
        import minigrad.ops.fast.cuda_winograd as cuda_winograd

        cuda_winograd.TILE_FOR_PRECISION.update(saved_tiles)
        mg.backends.cudnn.allow_tf32 = True
    return results


def report(results: dict, size: int, device: str) -> str:
    lines = [TITLE, "", f"Device: {device}. Command: `python benchmarks/winograd_accuracy.py "
             f"--size {size}`. Max |error| / max |float64| over VGG16's layers {LAYERS}, one "
             f"{size}x{size} image, padding 1 (output / input gradient / weight gradient).", "",
             "| path | " + " | ".join(PRECISIONS) + " |", "|---|---|---|---|"]
    for path in PATHS:
        cells = []
        for precision in PRECISIONS:
            worst = np.max([errors for _, errors in results[(path, precision)]], axis=0)
            cells.append(" / ".join(f"{e:.1e}" for e in worst))
        lines.append(f"| {path} | " + " | ".join(cells) + " |")
    lines.append("")
    for precision in PRECISIONS:
        worst = max(max(e) for _, e in results[("F(4x4)", precision)])
        choice = "F(4x4)" if worst <= THRESHOLD else "F(2x2)"
        lines.append(f"- {precision}: F(4x4)'s worst error {worst:.1e} "
                     f"{'<=' if worst <= THRESHOLD else '>'} {THRESHOLD:g}: {choice}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=12, help="image height and width")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if mg.cuda.is_available():
        device = "GPU (CuPy, cuBLAS)"
    else:
        import fake_cupy

        fake_cupy.install()
        device = "the CuPy stand-in on the CPU (NumPy twins, emulated cuBLAS compute types)"
    text = report(measure(args.size), args.size, device)
    print(text)
    if args.write:
        from common import write_section

        write_section(TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
