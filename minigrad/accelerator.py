"""`minigrad.accelerator`: PyTorch's device-agnostic names for "the GPU, if there is one".

The current PyTorch tutorials begin with

    device = torch.accelerator.current_accelerator().type if torch.accelerator.is_available() \\
        else "cpu"

minigrad's one accelerator is a CUDA GPU (through CuPy): these say whether there is one, which
one is current, and wait for it. (PyTorch's others, MPS, XPU and the rest, do not exist here:
`minigrad.backends.mps.is_available()` is False.)
"""

from __future__ import annotations

from minigrad import backend
from minigrad.backend import Device


def is_available() -> bool:
    """True when a CUDA GPU is usable (CuPy installed, a device found)."""
    return backend.cuda_is_available()


def current_accelerator(check_available: bool = False) -> Device | None:
    """device(type='cuda') when minigrad is built with an accelerator (CuPy is importable),
    else None; with check_available=True, None too when no GPU is usable now."""
    if check_available:
        return Device("cuda") if is_available() else None
    try:
        backend.cupy_module()
    except RuntimeError:
        return None
    return Device("cuda")


def device_count() -> int:
    """How many accelerators (CUDA GPUs) there are; 0 without one."""
    return backend.cuda_device_count()


def _cuda():
    if not is_available():
        raise RuntimeError("minigrad.accelerator: no accelerator is available here (CUDA GPU "
                           "through CuPy); check minigrad.accelerator.is_available() first")
    return backend.cupy_module()


def current_device_index() -> int:
    """The index of the current CUDA device (-1 without an accelerator, as PyTorch)."""
    return _cuda().cuda.runtime.getDevice() if is_available() else -1


current_device_idx = current_device_index


def set_device_index(device) -> None:
    """Make `device` (an index, 'cuda:N' or a Device) the current CUDA device."""
    index = device if isinstance(device, int) else Device(device).index
    _cuda().cuda.Device(index).use()


set_device_idx = set_device_index


def synchronize(device=None) -> None:
    """Wait until the GPU has finished all the work queued on it."""
    with backend.device_context(Device(device) if device is not None else Device("cuda")):
        _cuda().cuda.runtime.deviceSynchronize()
