"""Devices, array modules, dtypes and random generators.

minigrad computes with NumPy on "cpu" and with CuPy on "cuda" / "cuda:N". Every op asks
`get_array_module(array)` for the module that owns its arrays (Chainer's and DeZero's switch),
so one piece of code serves both. CuPy is imported the first time a CUDA device is used, so
minigrad imports and runs on machines that have neither a GPU nor CuPy.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType

import numpy as np

# ---------------------------------------------------------------------------------------------
# dtypes: minigrad's dtypes are NumPy's (CuPy uses the same ones).
bool_ = np.dtype(np.bool_)
uint8 = np.dtype(np.uint8)
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)

_default_dtype = float32


class UnavailableDtype:
    """A PyTorch dtype name that minigrad cannot provide; using it raises with the reason."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason

    def __repr__(self) -> str:
        return f"minigrad.{self.name}"


bfloat16 = UnavailableDtype(
    "bfloat16", "NumPy has no bfloat16 of floating kind (ml_dtypes' is a raw-bytes kind that "
    "NumPy's and minigrad's type rules do not treat as a float) and CuPy's is partial; use "
    "minigrad.float16, with mg.autocast and mg.amp.GradScaler for mixed precision")


def get_default_dtype() -> np.dtype:
    """The floating dtype that Python floats and new random tensors get (float32)."""
    return _default_dtype


def set_default_dtype(dtype) -> None:
    """Change the default floating dtype, as `torch.set_default_dtype` does."""
    global _default_dtype
    dtype = as_dtype(dtype)
    if not is_floating(dtype):
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {dtype}")
    _default_dtype = dtype


def as_dtype(dtype) -> np.dtype:
    """`dtype` as a NumPy dtype; a clear error for something that is not one."""
    if isinstance(dtype, UnavailableDtype):
        raise TypeError(f"{dtype!r} is not available: {dtype.reason}")
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"expected a dtype such as minigrad.float32, got {dtype!r}") from None


def is_floating(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def promote_types(a: np.dtype, b: np.dtype) -> np.dtype:
    """The dtype of a binary op's result, as PyTorch chooses it.

    Two floats give the wider one; a float with an integer or bool gives the float (NumPy would
    give float64 for int32 with float32, PyTorch keeps float32); integers follow NumPy.
    """
    if a == b:
        return a
    a_float, b_float = is_floating(a), is_floating(b)
    if a_float and not b_float:
        return a
    if b_float and not a_float:
        return b
    return np.promote_types(a, b)


# ---------------------------------------------------------------------------------------------
# the CPU's allocator

MALLOC_MMAP_THRESHOLD = 64 * 2**20  # arrays up to this size come from the heap
MALLOC_TRIM_THRESHOLD = 256 * 2**20  # free memory kept at the heap's top before it goes back


def tune_cpu_allocator() -> bool:
    """Keep freed array memory for reuse instead of handing it back to the OS (glibc only).

    The backward pass frees each activation as soon as its gradient has passed, and the forward
    frees what no backward saved. glibc's malloc, left to itself, hands much of that memory
    back to the OS mid-step (it maps large blocks separately and trims the heap's top), and
    each new array then page-faults it back in: a LeNet5 training step at batch 64 took 5.8 ms
    instead of 3.1 here. Fixed thresholds keep freed memory in the heap for the next array.
    Called once on import; MINIGRAD_MALLOC_TUNING=0 leaves malloc alone. Returns whether the
    thresholds were set."""
    if os.environ.get("MINIGRAD_MALLOC_TUNING") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt's parameter numbers (malloc.h)
        return bool(libc.mallopt(m_mmap_threshold, MALLOC_MMAP_THRESHOLD)
                    and libc.mallopt(m_trim_threshold, MALLOC_TRIM_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False


cpu_allocator_tuned = tune_cpu_allocator()


# ---------------------------------------------------------------------------------------------
# devices


class Device:
    """A device: `Device("cpu")`, `Device("cuda")` (= "cuda:0") or `Device("cuda:1")`.

    Compares equal to its string form, so `x.device == "cpu"` reads as in PyTorch.
    """

    __slots__ = ("type", "index")

    def __init__(self, spec: str | Device = "cpu", index: int | None = None):
        if isinstance(spec, Device):
            spec, index = spec.type, spec.index if index is None else index
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string such as 'cpu' or 'cuda:0', got {spec!r}")
        kind, colon, number = spec.partition(":")
        if kind not in ("cpu", "cuda") or (colon and not number.isdigit()):
            raise ValueError(f"device: unknown device {spec!r}; expected 'cpu', 'cuda' or 'cuda:N'")
        if number:
            if index is not None and index != int(number):
                raise ValueError(f"device: {spec!r} and index={index} disagree")
            index = int(number)
        if kind == "cpu" and index not in (None, 0):
            raise ValueError(f"device: 'cpu' takes no index, got {index}")
        self.type = kind
        self.index = None if kind == "cpu" else (index or 0)

    def __str__(self) -> str:
        return "cpu" if self.type == "cpu" else f"cuda:{self.index}"

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = Device(other)
            except (TypeError, ValueError):
                return False
        if not isinstance(other, Device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self) -> int:
        return hash((self.type, self.index))


CPU = Device("cpu")
_default_device = CPU


def set_default_device(device) -> None:
    """The device new tensors are made on when no device is given (torch.set_default_device):
    the factories (zeros, randn, tensor, arange, ...) and so the layers' parameters. None
    means the CPU again."""
    global _default_device
    device = CPU if device is None else Device(device)
    if device.type == "cuda":
        cupy_module()  # (the error that says how to get CuPy, now rather than at first use)
    _default_device = device


def get_default_device() -> Device:
    """The device new tensors are made on when no device is given."""
    return _default_device

_cupy: ModuleType | None = None


def cupy_module() -> ModuleType:
    """CuPy, imported on first use, with an error that says how to get it when it is missing."""
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as error:
            raise RuntimeError(
                "minigrad: the 'cuda' device needs CuPy, which is not installed here. On a "
                "machine with an NVIDIA GPU, from the minigrad checkout: pip install -e "
                "'.[gpu]' for CUDA 12, or pip install -e '.[gpu-cuda13]' for CUDA 13 "
                "(nvidia-smi shows the CUDA version the driver supports)"
            ) from error
        _cupy = cupy
        if _matmul_precision != "highest":
            _apply_tf32(cupy, True)
    return _cupy


def array_module(device: str | Device) -> ModuleType:
    """The array module that computes on `device`: numpy for cpu, cupy for cuda."""
    return np if Device(device).type == "cpu" else cupy_module()


def get_array_module(array) -> ModuleType:
    """The array module that owns `array` (numpy for NumPy arrays and scalars, else cupy);
    for a Tensor (a recorded backward pass), NumPy's names as minigrad's ops on its device
    (ops/tensor_numpy.py)."""
    if isinstance(array, (np.ndarray, np.generic)):
        return np
    if hasattr(array, "grad_fn"):  # a Tensor
        from minigrad.ops import tensor_numpy

        return tensor_numpy.of(array)
    return cupy_module()


def device_of(array) -> Device:
    """The device an array lives on."""
    if isinstance(array, (np.ndarray, np.generic)):
        return CPU
    return Device("cuda", array.device.id)


def device_context(device: Device):
    """A context in which CuPy allocates and computes on `device`; nothing to do for cpu."""
    if device.type == "cpu":
        return contextlib.nullcontext()
    return cupy_module().cuda.Device(device.index)


def to_device(array, device: Device):
    """`array` on `device`: the same array if it is already there, else a copy."""
    source = device_of(array)
    if source == device:
        return array
    if device.type == "cpu":
        run_pending_checks()  # the copy waits for the GPU anyway
        return array.get()
    with device_context(device):
        return cupy_module().asarray(array)


def is_array(obj) -> bool:
    """Whether `obj` is a NumPy array or (when CuPy is loaded) a CuPy array."""
    if isinstance(obj, np.ndarray):
        return True
    return _cupy is not None and isinstance(obj, _cupy.ndarray)


def open_grid(xp, shape) -> list:
    """NumPy's `indices(shape, sparse=True)` (CuPy's indices has no sparse=): one arange per
    axis, shaped to broadcast against the others."""
    return [xp.arange(n).reshape((1,) * k + (n,) + (1,) * (len(shape) - k - 1))
            for k, n in enumerate(shape)]


def matmul(a, b):
    """a @ b, with float16 products summed in float32 on the CPU as on a GPU's tensor cores
    (NumPy's own float16 matmul rounds every partial sum to float16: a sum of 20,000 terms of
    0.1 gives 2000 instead of 1999.5). CuPy already sums float16 products in float32."""
    if isinstance(a, np.ndarray) and a.dtype == float16 and b.dtype == float16:
        return np.matmul(a.astype(float32), b.astype(float32)).astype(float16)
    if isinstance(a, np.ndarray) and a.ndim > 2 and b.ndim == 2 and a.flags.c_contiguous:
        # NumPy multiplies a stack by a matrix one matrix of the stack at a time (a linear layer
        # on (32, 64, 128): 32 GEMMs, 2.5x slower); the rows of the whole stack in one GEMM
        return (a.reshape(-1, a.shape[-1]) @ b).reshape(*a.shape[:-1], b.shape[-1])
    return a @ b


def scatter_add(target, index, values) -> None:
    """target[index] += values, adding repeated indices once per occurrence (in place).

    Used by the gradient of integer-array indexing, where an index may repeat; it is not on
    any hot path of a network (convolution and pooling never call it).
    """
    if isinstance(target, np.ndarray):
        np.add.at(target, index, values)
    else:
        import cupyx

        cupyx.scatter_add(target, index, values)


# ---------------------------------------------------------------------------------------------
# checks of device data that do not make the GPU wait

_sync_checks = os.environ.get("MINIGRAD_SYNC_CHECKS") == "1"
_pending_checks: list[tuple] = []
MAX_PENDING_CHECKS = 1000  # then they are made at once, so a program that never reads is told


def set_sync_checks(enabled: bool) -> None:
    """Make every check of device data at once (True: a debugging aid; each check then waits
    for the GPU), or at the next read from the device (False, the default; also
    MINIGRAD_SYNC_CHECKS=1)."""
    global _sync_checks
    _sync_checks = bool(enabled)
    if enabled:
        run_pending_checks()


def check(failed, error: type[Exception], message: Callable[[], str]) -> None:
    """Raise `error(message())` if the boolean 0-d array `failed` is true.

    On the CPU that is known at once. On a GPU, reading `failed` would make the host wait
    until all queued work is done, so the check is queued and made at the next point where
    minigrad reads the device anyway: `item()`, `numpy()`, `tolist()`, a move to the CPU (a
    training loop that logs its loss reaches one within `log_every` steps). `message` is
    called only on failure, so it may read the data to name the bad value."""
    if isinstance(failed, (np.ndarray, np.generic)) or _sync_checks:
        if bool(failed):
            raise error(message())
        return
    _pending_checks.append((failed, error, message))
    if len(_pending_checks) >= MAX_PENDING_CHECKS:
        run_pending_checks()


def run_pending_checks() -> None:
    """Make the queued device checks, with one read per device, and raise the first failure
    (the others are dropped: one error at a time, as if each had been checked at once)."""
    if not _pending_checks:
        return
    pending, _pending_checks[:] = list(_pending_checks), []
    by_device: dict[Device, list[int]] = {}
    for k, (failed, _, _) in enumerate(pending):
        by_device.setdefault(device_of(failed), []).append(k)
    failed_at = set()
    for indices in by_device.values():
        flags = get_array_module(pending[indices[0]][0]).stack([pending[k][0] for k in indices])
        failed_at.update(k for k, bad in zip(indices, flags.get().tolist()) if bad)
    if failed_at:
        _, error, message = pending[min(failed_at)]
        raise error(message())


# ---------------------------------------------------------------------------------------------
# cuda


# Precision of float32 matrix products on the GPU, with PyTorch's switches and defaults
# (minigrad.backends names them as torch.backends does). TF32 keeps float32's range and rounds
# the products' inputs to a 10-bit mantissa, on the tensor cores of GPUs of compute capability
# 8.0 and up (A100, H100); elsewhere, and on the CPU, float32 stays float32.
_conv_tf32 = True  # torch.backends.cudnn.allow_tf32: convolutions in TF32 (PyTorch's default)
_matmul_precision = "highest"  # torch.set_float32_matmul_precision: matmuls strict by default
MATMUL_PRECISIONS = ("highest", "high", "medium")


def conv_tf32() -> bool:
    """Whether float32 convolutions may run in TF32 (`minigrad.backends.cudnn.allow_tf32`)."""
    return _conv_tf32


def set_conv_tf32(enabled: bool) -> None:
    global _conv_tf32
    _conv_tf32 = bool(enabled)


def matmul_tf32() -> bool:
    """Whether float32 matmuls and linear layers may run in TF32 ("high" or "medium")."""
    return _matmul_precision != "highest"


def get_float32_matmul_precision() -> str:
    return _matmul_precision


def set_float32_matmul_precision(precision: str) -> None:
    """PyTorch's switch: "highest" (float32 products, the default), "high" or "medium" (TF32
    on GPUs that have it; PyTorch's "medium" may also use bfloat16 products, minigrad's is
    TF32 as "high"). It is `minigrad.backends.cuda.matmul.allow_tf32` seen another way."""
    global _matmul_precision
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"set_float32_matmul_precision: expected one of "
                         f"{', '.join(map(repr, MATMUL_PRECISIONS))}, got {precision!r}")
    if _cupy is not None:
        _apply_tf32(_cupy, precision != "highest")  # raises, changing nothing, if it cannot
    _matmul_precision = precision


def set_allow_tf32(enabled: bool) -> None:
    """`minigrad.cuda.allow_tf32 = enabled`: float32 matmuls in TF32 (as
    `torch.backends.cuda.matmul.allow_tf32`), refused where no GPU could use it."""
    if bool(enabled) == matmul_tf32():
        return
    if enabled and not cuda_is_available():
        raise RuntimeError(
            "minigrad.cuda.allow_tf32: no usable CUDA GPU here (CuPy is missing or finds no "
            "device); TF32 only changes float32 matrix products on an NVIDIA GPU"
        )
    set_float32_matmul_precision("high" if enabled else "highest")


_tf32_hardware: dict[int, bool] = {}


def tf32_hardware() -> bool:
    """Whether the current GPU has TF32 tensor cores (compute capability 8.0 or higher)."""
    cupy = cupy_module()
    index = cupy.cuda.Device().id
    if index not in _tf32_hardware:
        _tf32_hardware[index] = int(cupy.cuda.Device(index).compute_capability) >= 80
    return _tf32_hardware[index]


@contextlib.contextmanager
def float32_gemms(tf32: bool):
    """CuPy's float32 2-D matrix products run in TF32 (if `tf32` and the GPU has it) or in
    strict float32 inside this block, then as before: a convolution follows
    `backends.cudnn.allow_tf32` while a Linear layer follows the matmul setting (or CUPY_TF32,
    which CuPy reads itself). CuPy keeps this switch in one process-wide global read at each
    product, so a thread running GPU matmuls while another runs a convolution may see the
    convolution's setting: drive one GPU from one thread, as minigrad's training loop does."""
    cupy = cupy_module()
    linalg = cupy._core._routines_linalg
    wanted = linalg.COMPUTE_TYPE_TF32 if tf32 and tf32_hardware() else linalg.COMPUTE_TYPE_DEFAULT
    previous = linalg.get_compute_type(cupy.float32)
    if wanted == previous:
        yield
        return
    linalg.set_compute_type(cupy.float32, wanted)
    try:
        yield
    finally:
        linalg.set_compute_type(cupy.float32, previous)


def _apply_tf32(cupy, enabled: bool) -> None:
    try:
        linalg = cupy._core._routines_linalg
        compute_type = linalg.COMPUTE_TYPE_TF32 if enabled else linalg.COMPUTE_TYPE_DEFAULT
        linalg.set_compute_type(cupy.float32, compute_type)
    except AttributeError as error:
        raise RuntimeError(f"allow_tf32: this CuPy has no TF32 switch for matmul ({error}); "
                           "set the environment variable CUPY_TF32=1 before starting instead"
                           ) from None


def cuda_is_available() -> bool:
    """True when CuPy is installed and finds at least one CUDA GPU."""
    return cuda_device_count() > 0


def cuda_device_count() -> int:
    try:
        return int(cupy_module().cuda.runtime.getDeviceCount())
    except Exception:  # no CuPy, no driver, or no GPU: all mean "no CUDA device here"
        return 0


# ---------------------------------------------------------------------------------------------
# random generators: one per device, all seeded by manual_seed

_seed: int | None = None
_generators: dict[Device, object] = {}
_per_sample = threading.local()


@contextlib.contextmanager
def sample_generator(rng):
    """Inside this block, in this thread, every random draw on the CPU (mg.rand, the random
    transforms, dropout) comes from `rng`: a Generator, or a seed for one, made only if
    something draws (making a Generator costs ~10 us, as long as loading a Fashion-MNIST
    image: a loader without random transforms should not pay it for every sample). The
    DataLoader loads each sample in one, seeded from (its seed, the epoch, the index): the
    samples are the same whatever the number of worker threads and whichever thread loads
    them."""
    previous = getattr(_per_sample, "rng", None), getattr(_per_sample, "seed", None)
    if isinstance(rng, np.random.Generator):
        _per_sample.rng, _per_sample.seed = rng, None
    else:
        _per_sample.rng, _per_sample.seed = None, rng
    try:
        yield
    finally:
        _per_sample.rng, _per_sample.seed = previous


def sample_rng():
    """The generator of the sample this thread is loading (sample_generator), or None."""
    current = getattr(_per_sample, "rng", None)
    if current is None and getattr(_per_sample, "seed", None) is not None:
        current = _per_sample.rng = np.random.default_rng(_per_sample.seed)
    return current


def manual_seed(seed: int) -> None:
    """Seed every random generator minigrad uses, on the CPU and on every GPU."""
    global _seed
    from minigrad import checks

    _seed = checks.seed("manual_seed", seed)
    _generators.clear()


def generator(device: str | Device = "cpu"):
    """The random generator of `device` (a numpy or cupy `Generator`).

    Each device's generator starts from the seed given to `manual_seed` (or from fresh
    entropy where none was given), so a seeded run draws the same numbers every time.
    """
    device = Device(device)
    if device.type == "cpu" and (sample := sample_rng()) is not None:
        return sample  # loading a sample: its own generator (sample_generator)
    rng = _generators.get(device)
    if rng is None:
        xp = array_module(device)
        with device_context(device):
            rng = xp.random.default_rng(_seed)
        _generators[device] = rng
    return rng
