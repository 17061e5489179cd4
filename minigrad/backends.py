"""`minigrad.backends`: PyTorch's precision switches, by their PyTorch names and defaults.

    mg.backends.cudnn.allow_tf32         True: float32 convolutions may run in TF32 on GPUs
                                         that have it (PyTorch's default; minigrad has no
                                         cuDNN, the name says what PyTorch code sets)
    mg.backends.cuda.matmul.allow_tf32   False: float32 matmuls and Linear layers stay strict
    mg.set_float32_matmul_precision(p)   "highest" (strict), "high"/"medium" (TF32): the same
                                         switch as matmul.allow_tf32 seen another way

TF32 keeps float32's range and rounds each product's inputs to a 10-bit mantissa (about 3
decimal digits): on an H100 a convolution's GEMM runs ~5x faster. On the CPU, and on GPUs
before compute capability 8.0, these switches change nothing. `cudnn.benchmark`,
`cudnn.deterministic` and `cudnn.enabled` are accepted so that PyTorch scripts run; they change
nothing either (minigrad's convolutions are deterministic and choose their algorithm by shape).
`mps.is_available()` (Apple's GPUs, which minigrad does not run on) is False.
"""

from __future__ import annotations

import sys
import types

from minigrad import backend


class _CudnnModule(types.ModuleType):
    benchmark = False
    deterministic = False
    enabled = True

    @property
    def allow_tf32(self) -> bool:
        return backend.conv_tf32()

    @allow_tf32.setter
    def allow_tf32(self, enabled: bool) -> None:
        backend.set_conv_tf32(enabled)

    @staticmethod
    def is_available() -> bool:
        """False: minigrad's convolutions are its own (CuPy 14 has no cuDNN bindings)."""
        return False


class _MatmulSettings:
    @property
    def allow_tf32(self) -> bool:
        return backend.matmul_tf32()

    @allow_tf32.setter
    def allow_tf32(self, enabled: bool) -> None:
        backend.set_float32_matmul_precision("high" if enabled else "highest")

    def __repr__(self) -> str:
        return f"<minigrad.backends.cuda.matmul allow_tf32={self.allow_tf32}>"


cudnn = _CudnnModule("minigrad.backends.cudnn", "PyTorch's torch.backends.cudnn switches.")
cuda = types.ModuleType("minigrad.backends.cuda", "PyTorch's torch.backends.cuda switches.")
cuda.matmul = _MatmulSettings()
cuda.is_built = lambda: True
mps = types.ModuleType("minigrad.backends.mps", "PyTorch's torch.backends.mps: Apple's GPUs, "
                       "which minigrad does not run on (is_available() and is_built() are False).")
mps.is_available = lambda: False
mps.is_built = lambda: False
sys.modules[cudnn.__name__], sys.modules[cuda.__name__] = cudnn, cuda
sys.modules[mps.__name__] = mps

get_float32_matmul_precision = backend.get_float32_matmul_precision
set_float32_matmul_precision = backend.set_float32_matmul_precision


def precision_summary(device: str = "cuda") -> str:
    """One line saying which precision convolutions and matmuls run in on `device`."""
    if backend.Device(device).type == "cpu":
        return "float32 (the CPU computes float32 in float32 whatever the TF32 switches say)"
    conv = "TF32" if backend.conv_tf32() else "strict fp32"
    matmul = "TF32" if backend.matmul_tf32() else "strict fp32"
    return f"convolutions {conv}, matmuls {matmul}"
