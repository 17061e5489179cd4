"""The CPU's convolution paths side by side: each fast Function that supports a layer (the
direct loops, Winograd F(2x2, 3x3), im2col + OpenBLAS) against torch, in the same run. One
command:

    python benchmarks/cpu_conv_paths.py [--repeats 5] [--write]

The dispatch (minigrad/ops/fast/__init__.py) picks the first path whose `supports` accepts a
layer; this shows what each would cost, forward and forward+backward (random upstream
gradient, gradients for the input, the weight and the bias), so the limits in `supports` can
be checked against measurements. Rows marked * are the path the dispatch chooses. With
--write the table replaces its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import minigrad as mg  # first, before NumPy loads OpenBLAS: README, "Speed on the CPU"

# isort: split

import argparse

import numpy as np
from common import compare, machine, table, write_section

from minigrad.ops import conv, fast
from minigrad.ops.fast import cpu_conv, cpu_conv_direct, cpu_winograd

TITLE = "## CPU convolution paths (benchmarks/cpu_conv_paths.py)"
PATHS = [("direct", cpu_conv_direct.Conv2dDirectCPU), ("winograd", cpu_winograd.Conv2dWinogradCPU),
         ("im2col", cpu_conv.Conv2dCPU)]

# (input shape, weight shape, padding): VGG's layers at a CPU's batch, ResNet's and U-Net's,
# the small batches and sizes where Winograd's transforms cost more than its GEMMs save
CASES = [
    ((8, 64, 64, 64), (64, 64, 3, 3), 1),
    ((8, 256, 16, 16), (256, 256, 3, 3), 1),
    ((8, 512, 16, 16), (512, 512, 3, 3), 1),
    ((32, 64, 16, 16), (64, 64, 3, 3), 1),
    ((16, 128, 16, 16), (32, 128, 3, 3), 1),
    ((8, 32, 64, 64), (64, 32, 3, 3), 1),
    ((8, 16, 64, 64), (32, 16, 3, 3), 1),
    ((2, 64, 64, 64), (64, 64, 3, 3), 1),
]


def facts_of(x_shape, w_shape, pad):
    return dict(kernel=w_shape[2:], dtype=np.float32, channels=x_shape[1],
                out_channels=w_shape[0], batch=x_shape[0],
                out_width=x_shape[3] + 2 * pad - w_shape[3] + 1)


def runners(function, arrays, settings, pad):
    import torch

    x, w, b = (mg.tensor(a, requires_grad=True) for a in arrays)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in arrays)
    grad = np.random.default_rng(1).standard_normal(
        function.apply(x, w, b, **settings).shape).astype(np.float32)
    g, tg = mg.tensor(grad), torch.tensor(grad)

    def ours_forward():
        with mg.no_grad():
            function.apply(x, w, b, **settings)

    def theirs_forward():
        with torch.no_grad():
            torch.nn.functional.conv2d(tx, tw, tb, padding=pad)

    def ours_both():
        x.grad = w.grad = b.grad = None
        function.apply(x, w, b, **settings).backward(g)

    def theirs_both():
        tx.grad = tw.grad = tb.grad = None
        torch.nn.functional.conv2d(tx, tw, tb, padding=pad).backward(tg)

    return (ours_forward, theirs_forward), (ours_both, theirs_both)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for x_shape, w_shape, pad in CASES:
        arrays = [rng.standard_normal(s).astype(np.float32) for s in
                  (x_shape, w_shape, w_shape[:1])]
        settings = dict(stride=(1, 1), padding=(pad,) * 4, dilation=(1, 1), groups=1)
        facts = facts_of(x_shape, w_shape, pad)
        chosen = fast.select(conv.Conv2d, mg.tensor(arrays[0][:1]), facts, **settings)
        name = f"{x_shape[1]}->{w_shape[0]} 3x3, {'x'.join(map(str, x_shape))}"
        for label, function in PATHS:
            supports = getattr(function, "supports", None)
            if supports is not None and not supports(**settings, **facts):
                continue
            mark = "*" if function is chosen else ""
            forward, both = runners(function, arrays, settings, pad)
            for part, (ours, theirs) in (("fwd", forward), ("fwd+bwd", both)):
                row = (f"{name}, {label}{mark} {part}", *compare(ours, theirs, args.repeats,
                                                                args.calls))
                rows.append(row)
                print(table([row])[-1], flush=True)
    report = "\n".join([
        TITLE, "",
        f"Machine: {machine()}. Command: `python benchmarks/cpu_conv_paths.py --repeats "
        f"{args.repeats}`. float32, stride 1, padding 1, with bias; * marks the path the "
        "dispatch chooses; every path is timed even where it is not chosen.", "",
        *table(rows), ""])
    print(report)
    if args.write:
        write_section(TITLE, report)


if __name__ == "__main__":
    main()
