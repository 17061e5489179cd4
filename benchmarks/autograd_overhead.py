"""How much does minigrad's graph cost per op, next to PyTorch? One command:

    python benchmarks/autograd_overhead.py [--repeats 15] [--write]

Cases (each timed forward + backward, minigrad and torch alternating in blocks with a pause
between them, so that neither library's worker threads slow the other):
- chain: 100 elementwise ops on a 1-element tensor: pure per-op overhead in Python.
- mlp: a 784-256-10 MLP with ReLU and log_softmax on a batch of 64, written with tensor ops.

Prints a table (median time per call, spread as the interquartile range, ratio minigrad /
torch) and with --write replaces the section of benchmarks/RESULTS.md that this script owns.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import minigrad as mg

SECTION = "## Autograd overhead (benchmarks/autograd_overhead.py)"


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


def time_block(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = "unknown BLAS"
    try:
        from threadpoolctl import threadpool_info

        infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if infos:
            i = infos[0]
            blas = f"{i['internal_api']} {i['version']} ({i.get('architecture')}, " \
                   f"{i['num_threads']} threads)"
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, NumPy {np.__version__} with {blas}, " \
           f"Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="blocks per library and case")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    import torch

    ours, theirs = make_cases(mg), make_cases(torch)
    rows = []
    for name in ours:
        for fn in (ours[name], theirs[name]):  # warm-up
            time_block(fn, 5)
        times = {"minigrad": [], "torch": []}
        for _ in range(args.repeats):
            for label, fn in (("minigrad", ours[name]), ("torch", theirs[name])):
                time.sleep(0.3)
                times[label].append(time_block(fn, 20))
        rows.append((name, times["minigrad"], times["torch"]))

    def fmt(samples):
        q1, median, q3 = np.percentile(samples, [25, 50, 75]) * 1e3
        return f"{median:.3f} ms (IQR {q1:.3f}-{q3:.3f})"

    lines = [
        "| case | minigrad | torch | ratio minigrad/torch |",
        "|---|---|---|---|",
        *(f"| {name} | {fmt(m)} | {fmt(t)} | {statistics.median(m) / statistics.median(t):.2f} |"
          for name, m, t in rows),
    ]
    report = "\n".join([
        SECTION, "",
        f"Machine: {machine()}; torch {torch.__version__}.",
        f"Command: `python benchmarks/autograd_overhead.py --repeats {args.repeats} --write`",
        "", *lines, "",
    ])
    print(report)
    if args.write:
        write_section(Path(__file__).with_name("RESULTS.md"), report)


def write_section(path: Path, report: str) -> None:
    """Replace this script's section of RESULTS.md (or add it), keeping the others."""
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    start = text.find(SECTION)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + report
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + report + (text[end + 1:] if end != -1 else "")
    path.write_text(text)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
