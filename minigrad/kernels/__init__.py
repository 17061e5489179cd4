"""CUDA kernels of the GPU fast paths (minigrad/ops/fast/cuda_*.py), each with its NumPy twin.
(kernels/cpu.py is the other kind: the CPU fast paths' loops compiled by Numba.)

A kernel here is a CuPy `ElementwiseKernel`: its body runs once per output element `i`. Its
*twin* is a NumPy function that takes the same arguments (inputs, then outputs) and does the
same index arithmetic for every `i` at once. The twins are what the CPU can check: the tests
compare them with minigrad's reference ops, and the CuPy stand-in of the test suite
(tests/fake_cupy.py) runs a twin wherever real CuPy would run the kernel, so the whole CUDA
path is exercised on every machine. On a GPU, `benchmarks/gpu_check.py` compares each kernel
with its twin first.

The kernels are on by default on CUDA. `minigrad.kernels.enable(False)` (or the environment
variable MINIGRAD_KERNELS=0) turns them off: CUDA then runs the plain reference ops with CuPy.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

_enabled = os.environ.get("MINIGRAD_KERNELS", "1") != "0"

TWINS: dict[str, Callable] = {}  # kernel name -> its NumPy twin, for the CuPy stand-in
BLOCK = 1 << 22  # twins work through the indices in blocks, so their temporaries stay small


def enable(on: bool = True) -> None:
    """Use the CUDA kernels (the default) or, with False, the plain CuPy reference ops."""
    global _enabled
    _enabled = bool(on)


def enabled() -> bool:
    return _enabled


class Kernel:
    """One elementwise CUDA kernel: compiled by CuPy on first use, called with its inputs and
    its preallocated outputs, positionally, as `cupy.ElementwiseKernel` is.

    `constants` (a dict of int32 parameters, say the window's size and stride) compiles a
    version of the kernel for those values: the body starts by redeclaring each as a
    compile-time constant, which shadows the parameter of the same name, so the compiler
    unrolls loops over it and turns divisions by it into multiplications. The arguments stay
    the same (and so does the twin); one compiled version is kept per set of values."""

    def __init__(self, name: str, in_params: str, out_params: str, body: str, twin: Callable):
        self.name, self.in_params, self.out_params, self.body = name, in_params, out_params, body
        self._compiled: dict[tuple, object] = {}
        TWINS[name] = twin

    def specialized_body(self, constants: dict[str, int] | None = None) -> str:
        """The body compiled for `constants`: one `const int name = value;` line each."""
        lines = "".join(f"    const int {name} = {int(value)};\n"
                        for name, value in sorted((constants or {}).items()))
        return lines + self.body

    def __call__(self, *args, size=None, constants: dict[str, int] | None = None):
        """Run the kernel; `size` (the number of threads) is needed when every array
        parameter is raw, as for cupy.ElementwiseKernel."""
        from minigrad.backend import cupy_module

        key = tuple(sorted((constants or {}).items()))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = cupy_module().ElementwiseKernel(
                self.in_params, self.out_params, self.specialized_body(constants), self.name)
        try:
            return compiled(*args) if size is None else compiled(*args, size=size)
        except Exception as error:
            if type(error).__name__ != "CompileException":
                raise
            raise RuntimeError(
                f"minigrad kernel {self.name} did not compile on this GPU ({error}); "
                "minigrad.kernels.enable(False) or MINIGRAD_KERNELS=0 runs the plain CuPy ops"
            ) from error


def flat_indices(size: int):
    """The twins' loop: blocks of the output's flat indices i, as int64 arrays."""
    for start in range(0, size, BLOCK):
        yield np.arange(start, min(size, start + BLOCK), dtype=np.int64)
