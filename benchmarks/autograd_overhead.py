"""How much does minigrad's graph cost per op, next to PyTorch? One command:

    python benchmarks/autograd_overhead.py [--repeats 15] [--write]

Cases (forward + backward, minigrad and torch alternating in blocks, see common.py):
- chain: 100 elementwise ops on a 1-element tensor: pure per-op overhead in Python.
- mlp: a 784-256-10 MLP with ReLU and log_softmax on a batch of 64, written with tensor ops.
With --write the table replaces its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import minigrad as mg  # first, before NumPy loads OpenBLAS: README, "Speed on the CPU"

# isort: split

import argparse

import numpy as np
from common import compare, machine, table, write_section

TITLE = "## Autograd overhead (benchmarks/autograd_overhead.py)"


def chain(lib, x):
    y = x
    for _ in range(25):
        y = ((y * 1.0001) + 0.5).tanh() - 0.25
    y.sum().backward()


def mlp(lib, x, labels, w1, b1, w2, b2):
    logits = (x @ w1 + b1).relu() @ w2 + b2
    loss = -logits.log_softmax(dim=1)[lib.arange(len(labels)), labels].mean()
    loss.backward()


def make_cases(lib):
    rng = np.random.default_rng(0)
    scalar = lib.tensor(np.ones(1, dtype=np.float32), requires_grad=True)
    x = lib.tensor(rng.standard_normal((64, 784), dtype=np.float32))
    labels = lib.tensor(rng.integers(0, 10, 64))
    params = [lib.tensor(rng.standard_normal(s, dtype=np.float32) * 0.05, requires_grad=True)
              for s in [(784, 256), (256,), (256, 10), (10,)]]
    return {
        "chain: 100 tiny ops, fwd+bwd": lambda: chain(lib, scalar),
        "mlp 784-256-10, batch 64, fwd+bwd": lambda: mlp(lib, x, labels, *params),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="blocks per library and case")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    import torch

    ours, theirs = make_cases(mg), make_cases(torch)
    rows = [(name, *compare(ours[name], theirs[name], args.repeats, calls=20)) for name in ours]
    report = "\n".join([
        TITLE, "",
        f"Machine: {machine()}.",
        f"Command: `python benchmarks/autograd_overhead.py --repeats {args.repeats} --write`",
        "", *table(rows), "",
    ])
    print(report)
    if args.write:
        write_section(TITLE, report)


if __name__ == "__main__":
    main()
