"""Peak memory of a long graph, minigrad against PyTorch: what the graph keeps alive.

    python benchmarks/long_chain_memory.py [--ops 20000] [--size 100000] [--write]

Each chain starts from a float32 vector of `--size` elements that requires a gradient and
applies `--ops` operations, then runs backward. A graph must keep what each backward reads
(tanh's output, x's partner in x * y) and nothing else: x * 2.0 keeps no copy of x, x + 1
keeps nothing. Each run is its own process; the figure is the growth of its peak resident
memory (ru_maxrss) from just before the chain is built to after backward, so it counts the
graph, the gradients and the allocator's slack, in both libraries alike.
"""

from __future__ import annotations

import minigrad  # noqa: F401  first, before NumPy loads OpenBLAS: README, "Speed on the CPU"

# isort: split

import argparse
import json
import subprocess
import sys

from common import machine, write_section

TITLE = "## Memory of a long graph (benchmarks/long_chain_memory.py)"

# name -> (operations per step of the chain, the step in minigrad's and torch's spelling)
CHAINS = {
    "x * 1.0001 (scalar)": (1, "x = x * 1.0001"),
    "x + 0.001, x * y, tanh, x / 1.01 (mixed)": (4, "x = ((x + 0.001) * y).tanh() / 1.01"),
    "sin": (1, "x = x.sin()"),
}

_CHILD = r"""
import resource, sys, json
import numpy as np
library, step, repeats, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if library == "torch":
    import torch as lib
    torch_threads = lib.set_num_threads(1)
    start = lib.tensor(np.random.default_rng(0).uniform(0.5, 1, size).astype(np.float32),
                       requires_grad=True)
    y = lib.tensor(np.random.default_rng(1).uniform(0.5, 1, size).astype(np.float32))
else:
    import minigrad as lib
    start = lib.tensor(np.random.default_rng(0).uniform(0.5, 1, size).astype(np.float32),
                       requires_grad=True)
    y = lib.tensor(np.random.default_rng(1).uniform(0.5, 1, size).astype(np.float32))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
x = start
for _ in range(repeats):
    exec(step)
x.sum().backward()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_kib": peak - before, "grad": float(start.grad.sum())}))
"""


def measure(library: str, step: str, repeats: int, size: int) -> dict:
    result = subprocess.run([sys.executable, "-c", _CHILD, library, step, str(repeats),
                             str(size)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--write", action="store_true", help="record the table in RESULTS.md")
    args = parser.parse_args(argv)
    lines = [f"| chain of {args.ops} ops on {args.size} float32 | minigrad peak growth | "
             "torch peak growth | ratio |", "|---|---|---|---|"]
    for name, (ops_per_step, step) in CHAINS.items():
        repeats = args.ops // ops_per_step
        ours = measure("minigrad", step, repeats, args.size)
        theirs = measure("torch", step, repeats, args.size)
        agree = abs(ours["grad"] - theirs["grad"]) <= 1e-3 * (abs(theirs["grad"]) + 1)
        line = (f"| {name} | {ours['growth_kib'] / 2**20:.2f} GiB | "
                f"{theirs['growth_kib'] / 2**20:.2f} GiB | "
                f"{ours['growth_kib'] / max(theirs['growth_kib'], 1):.2f} |"
                + ("" if agree else f" (gradients differ: {ours['grad']} vs {theirs['grad']})"))
        lines.append(line)
        print(line, flush=True)
    report = "\n".join([TITLE, "", f"Machine: {machine()}.",
                        f"Command: `python benchmarks/long_chain_memory.py --ops {args.ops} "
                        f"--size {args.size} --write`.", "", *lines]) + "\n"
    print(report)
    if args.write:
        write_section(TITLE, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
