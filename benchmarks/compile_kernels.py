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


# compile-time constants each kernel is also compiled with (minigrad.kernels.Kernel: a
# specialized version): a VGG 3x3 convolution's window at 56x56
SPECIALIZATIONS = {
    "minigrad_im2col": dict(h=56, w=56, kh=3, kw=3, oh=56, ow=56, sh=1, sw=1, ph=1, pw=1, dh=1,
                            dw=1),
    "minigrad_col2im": dict(h=56, w=56, kh=3, kw=3, oh=56, ow=56, sh=1, sw=1, ph=1, pw=1, dh=1,
                            dw=1),
}


def cupy_like_source(kernel: kernels.Kernel, types: dict[str, str], constants=None) -> str:
    """The kernel as a CUDA translation unit in the shape CuPy generates for it."""
    outputs = {PARAMETER.match(p).group(3) for p in kernel.out_params.split(",")}
    params, bindings = [], []
    for declaration in f"{kernel.in_params}, {kernel.out_params}".split(","):
        raw, kind, name = PARAMETER.match(declaration).groups()
        if kind in CTYPES:  # a scalar
            params.append(f"const {CTYPES[kind]} {name}")
        elif raw:
            const = "" if name in outputs else "const "
            params.append(f"{const}CArray<{kind}, 1> {name}")
        else:
            params.append(f"CArray<{kind}, 1> _raw_{name}")
            const = "" if name in outputs else "const "
            bindings.append(f"{const}{kind} &{name} = _raw_{name}[_ind.get()];")
    typedefs = "".join(f"typedef {CTYPES[dtype]} {placeholder};\n"
                       for placeholder, dtype in types.items())
    return (f"#include <cupy/carray.cuh>\n{typedefs}"
            f"extern \"C\" __global__ void {kernel.name}({', '.join(params)}, CIndexer<1> _ind)"
            " {\n  CUPY_FOR(i, _ind.size()) {\n    _ind.set(i);\n    "
            + "\n    ".join(bindings) + f"\n{kernel.specialized_body(constants)}\n  }}\n}}\n")


def compile_kernel(kernel: kernels.Kernel, types: dict[str, str], constants=None) -> str:
    """NVRTC's log: empty when the kernel compiled without a word."""
    program = nvrtc.createProgram(cupy_like_source(kernel, types, constants),
                                  f"{kernel.name}.cu", (), ())
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
                # a kernel called with constants is always called with them
                for constants in [SPECIALIZATIONS.get(kernel.name)]:
                    log = compile_kernel(kernel, types, constants)
                    failures += bool(log)
                    print(f"{'ok  ' if not log else 'FAIL'} {kernel.name} {types}"
                          f"{' specialized' if constants else ''}"
                          + (f"\n{log}" if log else ""), flush=True)
    print(f"{failures} kernel(s) failed or warned")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
