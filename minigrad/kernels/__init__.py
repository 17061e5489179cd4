"""CuPy-only fast paths, each beside the NumPy reference it must equal.

The plain CuPy path (the ops in minigrad/ops, run with xp = cupy) is what minigrad uses by
default. These kernels do the same work in one pass each; they stay off until
`benchmarks/gpu_check.py --kernels` has shown, on a real GPU, that they give the plain path's
results. Turn them on with `minigrad.kernels.enable()` or MINIGRAD_KERNELS=1.

Status: written and their index arithmetic checked on the CPU (tests/test_kernels.py), not yet
run on a GPU.
"""

from __future__ import annotations

import os

_enabled = os.environ.get("MINIGRAD_KERNELS") == "1"


def enable(on: bool = True) -> None:
    global _enabled
    _enabled = bool(on)


def enabled() -> bool:
    return _enabled
