"""Compile every CUDA kernel of minigrad/kernels with NVRTC, on a machine without a GPU:

    pip install cupy-cuda12x nvidia-cuda-nvrtc-cu12      # a separate virtual environment
    LD_LIBRARY_PATH=<site-packages>/nvidia/cuda_nvrtc/lib CUDA_PATH=/usr/local/cuda-13.0 \
        python benchmarks/compile_kernels.py

(CUDA_PATH: a CUDA toolkit whose include/ has cuda_fp16.h, for the float16 versions.)

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
from minigrad.kernels import activation, im2col, norm, pool, winograd

CTYPES = {"float16": "float16", "float32": "float", "float64": "double", "int8": "signed char",
          "int32": "int", "int64": "long long"}
INCLUDE = os.path.join(os.path.dirname(cupy.__file__), "_core", "include")
# cuda_fp16.h, which CuPy's float16 needs: a CUDA toolkit's include folder (CUDA_PATH)
CUDA_INCLUDE = os.path.join(os.environ.get("CUDA_PATH", "/usr/local/cuda"), "include")
PARAMETER = re.compile(r"^\s*(raw\s+)?(\w+)\s+(\w+)\s*$")


# compile-time constants each kernel is also compiled with (minigrad.kernels.Kernel: a
# specialized version): a VGG 3x3 convolution's window at 56x56
SPECIALIZATIONS = {
    "minigrad_im2col": dict(h=56, w=56, kh=3, kw=3, oh=56, ow=56, sh=1, sw=1, ph=1, pw=1, dh=1,
                            dw=1),
    "minigrad_col2im": dict(h=56, w=56, kh=3, kw=3, oh=56, ow=56, sh=1, sw=1, ph=1, pw=1, dh=1,
                            dw=1),
}
for _m in winograd.KERNELS:  # Winograd's at 56x56, padding 1
    _plan = winograd.Plan(_m, 56, 56, 1, 1, 56, 56)
    for _step in ("input", "gather"):
        SPECIALIZATIONS[f"minigrad_winograd_{_step}_f{_m}"] = winograd._constants(
            _plan, *winograd._IN)
    for _step in ("output", "output_adjoint"):
        SPECIALIZATIONS[f"minigrad_winograd_{_step}_f{_m}"] = winograd._constants(
            _plan, *winograd._OUT)


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
    half = "#include <cupy/float16.cuh>\n" if "float16" in types.values() else ""
    return (f"#include <cupy/carray.cuh>\n{half}{typedefs}"
            f"extern \"C\" __global__ void {kernel.name}({', '.join(params)}, CIndexer<1> _ind)"
            " {\n  CUPY_FOR(i, _ind.size()) {\n    _ind.set(i);\n    "
            + "\n    ".join(bindings) + f"\n{kernel.specialized_body(constants)}\n  }}\n}}\n")


def compile_kernel(kernel: kernels.Kernel, types: dict[str, str], constants=None) -> str:
    """NVRTC's log: empty when the kernel compiled without a word."""
    program = nvrtc.createProgram(cupy_like_source(kernel, types, constants),
                                  f"{kernel.name}.cu", (), ())
    try:
        nvrtc.compileProgram(program, (f"-I{INCLUDE}", f"-I{CUDA_INCLUDE}",
                                       "--gpu-architecture=compute_90",
                                       "-std=c++17"))
    except nvrtc.NVRTCError as error:
        return f"{error}\n{nvrtc.getProgramLog(program)}"
    return nvrtc.getProgramLog(program).strip()


def main() -> int:
    failures = 0
    every = [k for module in (activation, im2col, norm, pool) for k in vars(module).values()
             if isinstance(k, kernels.Kernel)]
    every += [k for steps in winograd.KERNELS.values() for k in steps.values()]
    for kernel in every:
        params = f" {kernel.in_params} {kernel.out_params} "
        indexed = " I " in params
        # float16 for mg.autocast; Winograd runs on float32 and float16, summing in float32 (S)
        winograd_kernel = kernel.name.startswith("minigrad_winograd")
        pairs = ((("float32", "int8"), ("float16", "int8")) if winograd_kernel
                 else (("float32", "int8"), ("float64", "int32"), ("float16", "int8")))
        for dtype, index_dtype in pairs:
            types = {"T": dtype, "I": index_dtype} if indexed else {"T": dtype}
            if " S " in params:
                types["S"] = "float32"
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
