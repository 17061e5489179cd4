"""The layer ops, minigrad against torch in the same run. One command:

    python benchmarks/ops.py [--repeats 9] [--only lenet|vgg] [--write]

At LeNet5's shapes (batch 128, 1x28x28) and at VGG16's shapes scaled down for a CPU
(batch 8, 64x64): conv2d forward and forward+backward, max_pool2d, batch_norm (training) and
linear, each forward and forward+backward (with a random upstream gradient, gradients for
the input and the parameters). `--only new`: the layers of ResNet, U-Net and the recurrent
networks (transposed convolution, bilinear interpolation, layer and group norm, GELU,
embedding, an LSTM and a GRU; and GELU's tanh form, SiLU, softmax and log-softmax), recorded
in a section of their own. Prints a table of medians (IQR) and
the ratio minigrad / torch; with --write the table replaces its section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import minigrad as mg  # first, before NumPy loads OpenBLAS: README, "Speed on the CPU"

# isort: split

import argparse

import numpy as np
from common import compare, machine, table, write_section

TITLE = "## Layer ops (benchmarks/ops.py)"

# name -> (functional name, input shape, parameter shapes, keyword settings)
CASES = {
    "lenet": [
        ("conv1 1->6 5x5 pad 2, 128x1x28x28", "conv2d", (128, 1, 28, 28),
         [(6, 1, 5, 5), (6,)], dict(padding=2)),
        ("conv2 6->16 5x5, 128x6x14x14", "conv2d", (128, 6, 14, 14), [(16, 6, 5, 5), (16,)], {}),
        ("max_pool2d 2, 128x6x28x28", "max_pool2d", (128, 6, 28, 28), [], dict(kernel_size=2)),
        ("batch_norm train, 128x6x28x28", "batch_norm", (128, 6, 28, 28), [(6,), (6,)], {}),
        ("linear 400->120, batch 128", "linear", (128, 400), [(120, 400), (120,)], {}),
    ],
    "vgg": [
        ("conv 3->64 3x3 pad 1, 8x3x64x64", "conv2d", (8, 3, 64, 64), [(64, 3, 3, 3), (64,)],
         dict(padding=1)),
        ("conv 64->64 3x3 pad 1, 8x64x64x64", "conv2d", (8, 64, 64, 64),
         [(64, 64, 3, 3), (64,)], dict(padding=1)),
        ("conv 256->256 3x3 pad 1, 8x256x16x16", "conv2d", (8, 256, 16, 16),
         [(256, 256, 3, 3), (256,)], dict(padding=1)),
        ("max_pool2d 2, 8x64x64x64", "max_pool2d", (8, 64, 64, 64), [], dict(kernel_size=2)),
        ("batch_norm train, 8x64x64x64", "batch_norm", (8, 64, 64, 64), [(64,), (64,)], {}),
        ("linear 25088->4096, batch 8", "linear", (8, 25088), [(4096, 25088), (4096,)], {}),
    ],
    # the layers that ResNet, U-Net and the recurrent networks brought (issue 14)
    "new": [
        ("conv_transpose2d 64->32 2x2 stride 2, 8x64x32x32", "conv_transpose2d",
         (8, 64, 32, 32), [(64, 32, 2, 2), (32,)], dict(stride=2)),
        ("interpolate bilinear x2, 8x64x32x32", "interpolate", (8, 64, 32, 32), [],
         dict(scale_factor=2, mode="bilinear", align_corners=False)),
        ("layer_norm 256, 64x128x256", "layer_norm", (64, 128, 256), [(256,), (256,)],
         dict(normalized_shape=(256,))),
        ("group_norm 8 groups, 8x64x32x32", "group_norm", (8, 64, 32, 32), [(64,), (64,)],
         dict(num_groups=8)),
        ("gelu, 8x64x32x32", "gelu", (8, 64, 32, 32), [], {}),
        ("gelu tanh, 8x64x32x32", "gelu", (8, 64, 32, 32), [], dict(approximate="tanh")),
        ("silu, 8x64x32x32", "silu", (8, 64, 32, 32), [], {}),
        ("softmax last dim, 64x128x256", "softmax", (64, 128, 256), [], dict(dim=-1)),
        ("log_softmax last dim, 64x128x256", "log_softmax", (64, 128, 256), [], dict(dim=-1)),
        ("embedding 10000x128, 64x32 indices", "embedding", (64, 32), [(10000, 128)], {}),
        ("LSTM 28->128, 28 steps, batch 128", "lstm", (28, 128, 28), [], {}),
        ("GRU 28->128, 28 steps, batch 128", "gru", (28, 128, 28), [], {}),
    ],
}
NEW_TITLE = "## Layers of ResNet, U-Net and recurrent networks (benchmarks/ops.py --only new)"


def make_call(lib, functional: str, x_shape, param_shapes, settings, backward: bool):
    """A closure running one op (and its backward) on fixed float32 inputs of `lib`."""
    rng = np.random.default_rng(0)
    x = lib.tensor(rng.standard_normal(x_shape, dtype=np.float32), requires_grad=backward)
    params = [lib.tensor(rng.standard_normal(s, dtype=np.float32) * 0.1, requires_grad=backward)
              for s in param_shapes]
    F = lib.nn.functional
    if functional == "batch_norm":
        def op():
            return F.batch_norm(x, None, None, *params, training=True)
    elif functional == "layer_norm":
        def op():
            return F.layer_norm(x, settings["normalized_shape"], *params)
    elif functional == "group_norm":
        def op():
            return F.group_norm(x, settings["num_groups"], *params)
    elif functional == "embedding":
        indices = lib.tensor(rng.integers(0, param_shapes[0][0], x_shape))

        def op():
            return F.embedding(indices, params[0])
    elif functional in ("lstm", "gru"):
        lib.manual_seed(0)
        layer = (lib.nn.LSTM if functional == "lstm" else lib.nn.GRU)(x_shape[2], 128)
        params = list(layer.parameters())

        def op():
            return layer(x)[0]
    else:
        def op():
            return getattr(F, functional)(x, *params, **settings)
    upstream = lib.tensor(rng.standard_normal(op().shape, dtype=np.float32))

    def run():
        out = op()
        if backward:
            out.backward(upstream)
            x.grad = None
            for p in params:
                p.grad = None

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="blocks per library and case")
    parser.add_argument("--only", choices=sorted(CASES), help="run one group of shapes")
    parser.add_argument("--match", help="run only the cases whose name contains this")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.write and args.match:
        parser.error("--write records whole groups: leave out --match")
    import torch

    rows = []
    for group in [args.only] if args.only else ["lenet", "vgg"]:
        for name, functional, x_shape, param_shapes, settings in CASES[group]:
            if args.match and args.match not in name:
                continue
            for backward in (False, True):
                label = f"{name}, {'fwd+bwd' if backward else 'fwd'}"
                ours = make_call(mg, functional, x_shape, param_shapes, settings, backward)
                theirs = make_call(torch, functional, x_shape, param_shapes, settings, backward)
                calls = 3 if group == "vgg" else 10
                rows.append((label, *compare(ours, theirs, args.repeats, calls)))
                print(table(rows[-1:])[-1], flush=True)
    only = f" --only {args.only}" if args.only else ""
    report = "\n".join([
        NEW_TITLE if args.only == "new" else TITLE, "",
        f"Machine: {machine()}.",
        f"Command: `python benchmarks/ops.py --repeats {args.repeats}{only} --write`. "
        "float32; times per call, median of the blocks (interquartile range).",
        "", *table(rows), "",
    ])
    print(report)
    if args.write:
        write_section(NEW_TITLE if args.only == "new" else TITLE, report)


if __name__ == "__main__":
    main()
