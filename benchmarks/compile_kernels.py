"""Compile every CUDA kernel of minigrad/kernels with NVRTC, on a machine without a GPU:

    pip install cupy-cuda12x nvidia-cuda-nvrtc-cu12      # a separate virtual environment
    LD_LIBRARY_PATH=<site-packages>/nvidia/cuda_nvrtc/lib python benchmarks/compile_kernels.py

Each kernel body is wrapped as CuPy's ElementwiseKernel wraps it (CuPy's own carray.cuh, a
typedef per type placeholder, raw parameters as CArray, the others as references to element
i, a CUPY_FOR loop) and compiled for sm_90 (the H100), in float32 and float64 (the window
offsets of max pooling in int8 and int32). That catches a
kernel that would not compile (an undefined name, a header NVRTC cannot find, a type error)
before a GPU is at hand; it proves nothing about the results, which gpu_check.py compares with
the kernels' twins on the GPU. Exits non-zero if any kernel fails to compile or warns.
"""

from __future__ import annotations

import os
import re
import sys

import cupy
from cupy_backends.cuda.libs import nvrtc

from minigrad import kernels
from minigrad.kernels import activation, im2col, norm, pool

CTYPES = {"float32": "float", "float64": "double", "int8": "signed char", "int32": "int",
          "int64": "long long"}
INCLUDE = os.path.join(os.path.dirname(cupy.__file__), "_core", "include")
PARAMETER = re.compile(r"^\s*(raw\s+)?(\w+)\s+(\w+)\s*$")


def cupy_like_source(kernel: kernels.Kernel, types: dict[str, str]) -> str:
    """The kernel as a CUDA translation unit in the shape CuPy generates for it."""
    outputs = {PARAMETER.match(p).group(3) for p in kernel.out_params.split(",")}
    params, bindings = [], []
    for declaration in f"{kernel.in_params}, {kernel.out_params}".split(","):
        raw, kind, name = PARAMETER.match(declaration).groups()
        if kind in CTYPES:  # a scalar
            params.append(f"const {CTYPES[kind]} {name}")
        elif raw:
            params.append(f"const CArray<{kind}, 1> {name}")
        else:
            params.append(f"CArray<{kind}, 1> _raw_{name}")
            const = "" if name in outputs else "const "
            bindings.append(f"{const}{kind} &{name} = _raw_{name}[_ind.get()];")
    typedefs = "".join(f"typedef {CTYPES[dtype]} {placeholder};\n"
                       for placeholder, dtype in types.items())
    return (f"#include <cupy/carray.cuh>\n{typedefs}"
            f"extern \"C\" __global__ void {kernel.name}({', '.join(params)}, CIndexer<1> _ind)"
            " {\n  CUPY_FOR(i, _ind.size()) {\n    _ind.set(i);\n    "
            + "\n    ".join(bindings) + f"\n{kernel.body}\n  }}\n}}\n")


def compile_kernel(kernel: kernels.Kernel, types: dict[str, str]) -> str:
    """NVRTC's log: empty when the kernel compiled without a word."""
    program = nvrtc.createProgram(cupy_like_source(kernel, types), f"{kernel.name}.cu", (), ())
    try:
        nvrtc.compileProgram(program, (f"-I{INCLUDE}", "--gpu-architecture=compute_90",
                                       "-std=c++17"))
    except nvrtc.NVRTCError as error:
        return f"{error}\n{nvrtc.getProgramLog(program)}"
    return nvrtc.getProgramLog(program).strip()


def main() -> int:
    failures = 0
    for module in (activation, im2col, norm, pool):
        for kernel in vars(module).values():
            if not isinstance(kernel, kernels.Kernel):
                continue
            indexed = " I " in f" {kernel.in_params} {kernel.out_params} "
            for dtype, index_dtype in (("float32", "int8"), ("float64", "int32")):
                types = {"T": dtype, "I": index_dtype} if indexed else {"T": dtype}
                log = compile_kernel(kernel, types)
                failures += bool(log)
                print(f"{'ok  ' if not log else 'FAIL'} {kernel.name} {types}" +
                      (f"\n{log}" if log else ""), flush=True)
    print(f"{failures} kernel(s) failed or warned")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
