"""`minigrad.cuda`: is a CUDA GPU usable here, and how many."""

from __future__ import annotations

import sys
import types

from minigrad import amp as _amp
from minigrad import backend
from minigrad.backend import cuda_device_count, cuda_is_available


def is_available() -> bool:
    """True when CuPy is installed and finds at least one CUDA GPU."""
    return cuda_is_available()


def device_count() -> int:
    """The number of CUDA GPUs CuPy finds (0 without CuPy or a GPU)."""
    return cuda_device_count()


class amp:  # noqa: N801 - PyTorch's torch.cuda.amp
    """torch.cuda.amp's names: `autocast(dtype=float16)` for the GPU, and GradScaler."""

    GradScaler = _amp.GradScaler

    @staticmethod
    def autocast(enabled: bool = True, dtype=None, cache_enabled: bool = True):
        return _amp.autocast("cuda", dtype, enabled, cache_enabled)


def set_allow_tf32(enabled: bool) -> None:
    """Same as `minigrad.cuda.allow_tf32 = enabled`."""
    backend.set_allow_tf32(enabled)


class _CudaModule(types.ModuleType):
    """Lets `minigrad.cuda.allow_tf32 = True` switch CuPy's float32 matmuls to TF32, as
    `torch.backends.cuda.matmul.allow_tf32 = True` does in PyTorch (and as
    `minigrad.backends.cuda.matmul.allow_tf32`, which it reads and writes). Off by default;
    convolutions follow `minigrad.backends.cudnn.allow_tf32` (on by default, as PyTorch's)."""

    @property
    def allow_tf32(self) -> bool:
        return backend.matmul_tf32()

    @allow_tf32.setter
    def allow_tf32(self, enabled: bool) -> None:
        backend.set_allow_tf32(enabled)


sys.modules[__name__].__class__ = _CudaModule
