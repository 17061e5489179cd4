"""What the benchmarks share: timing minigrad and torch side by side, the machine, the table.

Timings alternate between the two libraries in blocks with a pause between blocks (their
BLAS/OpenMP worker threads spin after work and would slow each other down otherwise), each
block after untimed calls for 0.1 s (as a training loop runs, step after step: the first calls
after an idle pause wake sleeping threads, 2x slower for a minigrad U-Net step on two cores,
not for torch's, and a small GEMM's first few calls 4-12 ms instead of 0.1; and this virtual
machine's second core runs a thread at full speed only after ~0.1 s of work: LeNet5's 6->16
layer forward on two threads took 1.16 ms after 30 ms of calls, 0.77 after 0.1 s and 0.74
after 0.4 s, one thread 1.0 throughout), and report medians with the interquartile range, and
the ratio of medians minigrad / torch.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).with_name("RESULTS.md")


def time_block(fn: Callable, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def warm_up(fn: Callable, seconds: float = 0.1) -> None:
    """Untimed calls, at least one and for at least `seconds`: after an idle pause the worker
    threads sleep, and on this virtual machine a halted core wakes for a thread only at a
    scheduler tick (4 ms) for the first few handoffs (measured: a 0.1 ms GEMM taking 4-12 ms
    for its first 2-8 calls after 0.3 s idle, with OpenBLAS's workers sleeping after 2^14
    cycles); a training loop runs step after step, so the blocks time the steps after it."""
    start = time.perf_counter()
    fn()
    while time.perf_counter() - start < seconds:
        fn()


def compare(ours: Callable, theirs: Callable, repeats: int, calls: int, pause: float = 0.3):
    """Per-call times of `ours` and `theirs`, `repeats` alternating blocks of `calls` each."""
    time_block(ours, 2)
    time_block(theirs, 2)
    samples = ([], [])
    for _ in range(repeats):
        for fn, times in ((ours, samples[0]), (theirs, samples[1])):
            time.sleep(pause)
            warm_up(fn)
            times.append(time_block(fn, calls))
    return samples


def cell(samples) -> str:
    q1, median, q3 = np.percentile(samples, [25, 50, 75]) * 1e3
    return f"{median:.3f} ms ({q1:.3f}-{q3:.3f})"


def table(rows) -> list[str]:
    """Markdown rows for (case, our samples, their samples)."""
    lines = ["| case | minigrad (IQR) | torch (IQR) | minigrad / torch |", "|---|---|---|---|"]
    for name, ours, theirs in rows:
        ratio = statistics.median(ours) / statistics.median(theirs)
        lines.append(f"| {name} | {cell(ours)} | {cell(theirs)} | {ratio:.2f} |")
    return lines


def machine() -> str:
    """CPU model, cores, NumPy's BLAS and its kernel (threadpoolctl), Python, torch."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = "BLAS unknown (pip install threadpoolctl to see it)"
    try:
        from threadpoolctl import threadpool_info

        for info in threadpool_info():
            if info.get("user_api") == "blas":
                blas = (f"{info['internal_api']} {info['version']}, kernel "
                        f"{info.get('architecture')}, {info['num_threads']} threads")
                break
    except ImportError:
        pass
    import torch

    return (f"{cpu}, {os.cpu_count()} cores; NumPy {np.__version__} ({blas}); "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads); "
            f"Python {platform.python_version()}")


def write_section(title: str, report: str) -> None:
    """Replace the section `title` of RESULTS.md (or append it), keeping the others."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start = text.find(title)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + report
    else:
        end = text.find("\n## ", start + len(title))
        text = text[:start] + report + (text[end + 1:] if end != -1 else "")
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}", file=sys.stderr)
