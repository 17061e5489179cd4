"""Where a training step's time goes, op by op, in minigrad and in torch. One command:

    python benchmarks/profile_step.py [--model lenet|unet-block|gelu-ln|lstm] [--steps 20]
                                      [--write]

minigrad: every Function's forward and backward is timed (the time inside the op, the engine's
own bookkeeping excluded), summed over the steps and shown per step, with the rest of the
step (graph walk, optimizer, Python) as one row. torch: its profiler's self CPU time per aten
op. With --write the tables go into their section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import minigrad as mg  # first, before NumPy loads OpenBLAS: README, "Speed on the CPU"

# isort: split

import argparse
import collections
import time

import numpy as np
from common import machine, write_section
from train_step import make_step

from minigrad.autograd import Function

TITLE = "## Per-op profile of a training step (benchmarks/profile_step.py)"


def _functions():
    from minigrad.ops import fast

    fast.paths("cpu")  # the fast paths are imported on first use: import them now
    found, stack = [], [Function]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            found.append(sub)
            stack.append(sub)
    return found


def profile_minigrad(step, steps: int):
    """{(op, 'forward'|'backward'): seconds per step} and the whole step's seconds."""
    totals = collections.defaultdict(float)
    originals, depth = [], [0]
    for cls in _functions():
        for kind in ("forward", "backward"):
            if kind not in cls.__dict__:
                continue
            original = cls.__dict__[kind]
            fn = original.__func__ if isinstance(original, staticmethod) else original

            def timed(*args, _fn=fn, _key=(cls.__name__, kind), **kwargs):
                if depth[0]:  # a Function called inside another's: counted there
                    return _fn(*args, **kwargs)
                depth[0] += 1
                start = time.perf_counter()
                try:
                    return _fn(*args, **kwargs)
                finally:
                    totals[_key] += time.perf_counter() - start
                    depth[0] -= 1

            originals.append((cls, kind, original))
            setattr(cls, kind, staticmethod(timed))
    try:
        for _ in range(3):
            step()
        totals.clear()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        whole = (time.perf_counter() - start) / steps
    finally:
        for cls, kind, original in originals:
            setattr(cls, kind, original)
    return {key: value / steps for key, value in totals.items()}, whole


def profile_torch(step, steps: int):
    import torch

    for _ in range(3):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    rows = {}
    for event in prof.key_averages():
        rows[event.key] = event.self_cpu_time_total / 1e6 / steps
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return rows, (time.perf_counter() - start) / steps


def tables(name: str, ours, whole, theirs, whole_theirs, top: int = 12) -> list[str]:
    lines = [f"### {name}", "",
             f"Step: minigrad {whole * 1e3:.2f} ms, torch {whole_theirs * 1e3:.2f} ms "
             f"(unprofiled, {whole / whole_theirs:.2f}x).", "",
             "| minigrad op | ms per step | share |", "|---|---|---|"]
    in_ops = sum(ours.values())
    for (op, kind), seconds in sorted(ours.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {op} {kind} | {seconds * 1e3:.3f} | {seconds / whole:.0%} |")
    lines.append(f"| everything else (engine, optimizer, Python) | "
                 f"{(whole - in_ops) * 1e3:.3f} | {(whole - in_ops) / whole:.0%} |")
    lines += ["", "| torch op (self CPU) | ms per step |", "|---|---|"]
    for op, seconds in sorted(theirs.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {op} | {seconds * 1e3:.3f} |")
    return lines + [""]


MODELS = {"lenet": ("LeNet5 train step, batch 128", "lenet", 128, (1, 28, 28)),
          "unet-block": ("U-Net block train step, 8x3x64x64", "unet-block", 8, (3, 64, 64)),
          "gelu-ln": ("Linear-GELU-LayerNorm x2 train step, 32x64x128", "gelu-ln", 32,
                      (64, 128)),
          "lstm": ("LSTM 28->128 + Linear train step, batch 128", "lstm", 128, (28, 28))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), action="append")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    report = [TITLE, "", f"Machine: {machine()}.",
              f"Command: `python benchmarks/profile_step.py --steps {args.steps} --write`. "
              "Times per training step (forward, loss, backward, SGD-momentum step); the "
              "minigrad rows are the time inside each Function's forward or backward.", ""]
    for key in args.model or list(MODELS):
        name, model, batch, shape = MODELS[key]
        ours, whole = profile_minigrad(make_step("minigrad", model, batch, shape, True),
                                       args.steps)
        time.sleep(0.3)
        theirs, whole_theirs = profile_torch(make_step("torch", model, batch, shape, True),
                                             args.steps)
        report += tables(name, ours, whole, theirs, whole_theirs)
        print("\n".join(report[-40:]), flush=True)
    if args.write:
        write_section(TITLE, "\n".join(report))


if __name__ == "__main__":
    mg.manual_seed(0)
    np.random.seed(0)
    main()
