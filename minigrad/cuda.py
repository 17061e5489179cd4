"""`minigrad.cuda`: is a CUDA GPU usable here, and how many."""

from __future__ import annotations

from minigrad.backend import cuda_device_count, cuda_is_available


def is_available() -> bool:
    """True when CuPy is installed and finds at least one CUDA GPU."""
    return cuda_is_available()


def device_count() -> int:
    """The number of CUDA GPUs CuPy finds (0 without CuPy or a GPU)."""
    return cuda_device_count()
