"""Mixed precision as PyTorch's: `autocast` and `GradScaler`.

    scaler = mg.amp.GradScaler()
    with mg.autocast("cuda", dtype=mg.float16):
        loss = loss_fn(model(x), y)          # convolutions and matmuls in float16
    scaler.scale(loss).backward()            # the loss times 2**16, so small gradients survive
    scaler.step(optimizer)                   # unscaled; skipped if a gradient is inf or NaN
    scaler.update()                          # the scale: halved after an overflow, doubled
                                             # after 2000 clean steps

Inside `autocast`, the ops that gain most from half precision (conv2d, conv_transpose2d,
linear, matmul) cast their float32 inputs to float16 and run on tensor cores, which multiply
float16 exactly and sum in float32; the ops whose results need float32's range or digits
(exp, log, pow, softmax and log_softmax, sums and norms, every loss, layer and group norm,
batch norm's statistics) cast float16 inputs up to float32. Everything else runs in the
dtype it is given (ReLU, pooling and dropout on float16 activations stay float16), and an
op of a float16 and a float32 tensor gives float32, as usual. The parameters stay float32
(the "master weights"); each one's float16 copy is made once per autocast block and reused.

float16 has 10 mantissa bits and a largest value of 65504; gradients smaller than 6e-8 vanish.
GradScaler multiplies the loss by a large scale so that they do not, and divides the
gradients by it before the step. On the CPU, autocast works the same way (NumPy multiplies
float16 without tensor cores: correct, slow), so it can be tested anywhere. bfloat16 is not
available: NumPy has no bfloat16 type of floating kind and CuPy's is partial.
"""

from __future__ import annotations

import functools
import math
import threading

import numpy as np

from minigrad import backend, checks

_LOWER = (np.dtype(np.float16),)  # the dtypes autocast casts to
DEFAULT_DTYPE = {"cuda": np.dtype(np.float16), "cpu": np.dtype(np.float16)}


class _State(threading.local):
    def __init__(self):
        self.dtypes: dict[str, np.dtype] = {}  # device type -> dtype, while autocast is on
        self.cache_enabled = True
        self.depth = 0  # nested autocast blocks; the cast cache is dropped when it returns to 0
        self.cache: dict[int, tuple] = {}  # id(parameter) -> (parameter, version, its cast)


_state = _State()


def _device_type(device_type: str) -> str:
    if not isinstance(device_type, str) or device_type.partition(":")[0] not in ("cpu", "cuda"):
        raise ValueError(f"autocast: device_type must be 'cuda' or 'cpu', got {device_type!r}")
    return device_type.partition(":")[0]


class autocast:  # noqa: N801 - PyTorch's name
    """`with mg.autocast("cuda", dtype=mg.float16):` runs convolutions, linear layers and
    matmuls in `dtype` and the precision-sensitive ops in float32 (see the module's docstring).
    As torch.autocast: `enabled=False` turns it off inside an enclosing block; also a
    decorator. The dtype defaults to float16 (PyTorch's CPU default, bfloat16, is not
    available in minigrad)."""

    def __init__(self, device_type: str = "cuda", dtype=None, enabled: bool = True,
                 cache_enabled: bool = True):
        self.device_type = _device_type(device_type)
        self.dtype = DEFAULT_DTYPE[self.device_type] if dtype is None else backend.as_dtype(dtype)
        if self.dtype not in _LOWER:
            raise ValueError(f"autocast: dtype {self.dtype} is not supported; minigrad's "
                             "autocast runs in float16 (bfloat16 is not available)")
        self.enabled, self.cache_enabled = bool(enabled), bool(cache_enabled)

    def __enter__(self):
        self._previous = (_state.dtypes.get(self.device_type), _state.cache_enabled)
        if self.enabled:
            _state.dtypes[self.device_type] = self.dtype
        else:
            _state.dtypes.pop(self.device_type, None)
        _state.cache_enabled = self.cache_enabled
        _state.depth += 1
        return self

    def __exit__(self, *exc_info):
        previous, _state.cache_enabled = self._previous
        if previous is None:
            _state.dtypes.pop(self.device_type, None)
        else:
            _state.dtypes[self.device_type] = previous
        _state.depth -= 1
        if _state.depth == 0:
            _state.cache.clear()  # the float16 copies of the weights go with the block
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device_type, self.dtype, self.enabled, self.cache_enabled):
                return fn(*args, **kwargs)

        return wrapper


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    return _device_type(device_type) in _state.dtypes


def get_autocast_dtype(device_type: str = "cuda"):
    device_type = _device_type(device_type)
    return _state.dtypes.get(device_type, DEFAULT_DTYPE[device_type])


def _active_dtype(tensors) -> np.dtype | None:
    """The dtype autocast wants for an op on `tensors` (None when it is off for their
    device, the usual case: one dictionary look-up)."""
    if not _state.dtypes:
        return None
    for t in tensors:
        array = getattr(t, "array", None)
        if array is not None:
            return _state.dtypes.get(backend.device_of(array).type)
    return None


def _cast(tensor, dtype):
    """tensor as dtype: a parameter's cast, made while gradients are recorded, is kept for the
    rest of the autocast block (until the parameter changes in place, or a backward pass has
    gone through the cast), as PyTorch caches it."""
    from minigrad.autograd import is_grad_enabled, version
    from minigrad.ops.elementwise import cast

    if not (_state.cache_enabled and is_grad_enabled() and tensor.grad_fn is None
            and tensor.requires_grad):
        return cast(tensor, dtype)  # a no_grad cast is outside the graph: never reused
    key, now = id(tensor), version(tensor.array)
    cached = _state.cache.get(key)
    if (cached is not None and cached[0] is tensor and cached[1] == now
            and cached[2].dtype == dtype and not cached[2].grad_fn._released):
        return cached[2]
    result = cast(tensor, dtype)
    _state.cache[key] = (tensor, now, result)
    return result


def lower_precision(*tensors):
    """The inputs of a convolution, linear layer or matmul as autocast wants them: float32
    ones in float16 while autocast is on for their device; all as they were otherwise."""
    dtype = _active_dtype(tensors)
    if dtype is None:
        return tensors
    return tuple(t if t is None or t.dtype != np.float32 else _cast(t, dtype) for t in tensors)


def full_precision(*tensors):
    """The inputs of a precision-sensitive op: float16 ones in float32 while autocast is on."""
    if _active_dtype(tensors) is None:
        return tensors
    from minigrad.ops.elementwise import cast

    return tuple(t if t is None or not hasattr(t, "dtype") or t.dtype not in _LOWER
                 else cast(t, np.float32) for t in tensors)


def full_precision_one(tensor):
    """`full_precision` of one tensor (the common case of a unary op)."""
    return full_precision(tensor)[0] if _state.dtypes else tensor


# ---------------------------------------------------------------------------------------------
# GradScaler


class GradScaler:
    """Dynamic loss scaling, as torch.amp.GradScaler: `scale(loss)` multiplies by the scale,
    `unscale_(optimizer)` divides the gradients by it and notes whether any is inf or NaN,
    `step(optimizer)` steps unless one was (and says nothing), `update()` halves the scale
    after an overflow (backoff_factor) and doubles it (growth_factor) after growth_interval
    steps without one. The scale starts at init_scale = 2**16. `state_dict()` keeps it for a
    checkpoint. With enabled=False every method passes through, so one script serves both."""

    def __init__(self, device: str = "cuda", init_scale: float = 2.0**16,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        checks.number("GradScaler", "init_scale", init_scale, low=0, low_open=True)
        if growth_factor <= 1.0 or not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"GradScaler: growth_factor must be > 1 and backoff_factor in "
                             f"(0, 1), got {growth_factor} and {backoff_factor}")
        if not isinstance(growth_interval, int) or growth_interval < 1:
            raise ValueError(f"GradScaler: growth_interval must be an int >= 1, got "
                             f"{growth_interval!r}")
        self.device = _device_type(device)
        self._scale, self._growth_tracker = float(init_scale), 0
        self._init_scale = float(init_scale)
        self._growth_factor, self._backoff_factor = float(growth_factor), float(backoff_factor)
        self._growth_interval, self._enabled = growth_interval, bool(enabled)
        # id(optimizer) -> {"unscaled", "found_inf", "stepped"} since the last update()
        self._per_optimizer: dict[int, dict] = {}

    def is_enabled(self) -> bool:
        return self._enabled

    def get_scale(self) -> float:
        return self._scale if self._enabled else 1.0

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def scale(self, outputs):
        """outputs (a Tensor, or a list/tuple of them) times the scale."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        return outputs * self._scale

    def _state_of(self, optimizer) -> dict:
        return self._per_optimizer.setdefault(
            id(optimizer), {"unscaled": False, "found_inf": False, "stepped": False})

    def unscale_(self, optimizer) -> None:
        """Divide the gradients of `optimizer`'s parameters by the scale, in place (before
        clipping them, say), and note whether any is inf or NaN. Once per step."""
        if not self._enabled:
            return
        state = self._state_of(optimizer)
        if state["unscaled"]:
            raise RuntimeError("GradScaler.unscale_: already called on this optimizer since "
                               "the last update()")
        params = [p for group in optimizer.param_groups for p in group["params"]
                  if p.grad is not None]
        for p in params:  # all checked before any is changed
            if p.grad.dtype in _LOWER:
                raise ValueError(
                    f"GradScaler.unscale_: a parameter of shape {p.shape} has a "
                    f"{p.grad.dtype} gradient; keep the parameters float32 (autocast "
                    "casts them per op) rather than calling model.half()")
        inverse, flags = 1.0 / self._scale, []
        for p in params:
            xp = backend.get_array_module(p.grad.array)
            p.grad.array *= p.grad.array.dtype.type(inverse)
            flags.append(~xp.isfinite(p.grad.array).all())
        # one read of the device per step, as PyTorch makes: the step must know
        state["found_inf"] = bool(_any(flags))
        state["unscaled"] = True

    def step(self, optimizer, *args, **kwargs):
        """optimizer.step() unless a gradient was inf or NaN (then the step is skipped);
        unscales first if unscale_ was not called. Returns what step returned, or None."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        state = self._state_of(optimizer)
        if state["stepped"]:
            raise RuntimeError("GradScaler.step: already called for this optimizer since the "
                               "last update()")
        if not state["unscaled"]:
            self.unscale_(optimizer)
        state["stepped"] = True
        if state["found_inf"]:
            return None
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale: float | None = None) -> None:
        """The scale for the next step: new_scale if given; else halved if any optimizer
        found an inf or NaN since the last update, doubled after growth_interval clean
        steps in a row."""
        if not self._enabled:
            return
        if new_scale is None and not self._per_optimizer:
            raise RuntimeError("GradScaler.update: no unscale_ or step was recorded since the "
                               "last update(); call scaler.step(optimizer) first")
        if new_scale is not None:
            self._scale = float(new_scale.item() if hasattr(new_scale, "item") else new_scale)
        elif any(s["found_inf"] for s in self._per_optimizer.values()):
            self._scale *= self._backoff_factor
            self._growth_tracker = 0
        else:
            self._growth_tracker += 1
            if self._growth_tracker == self._growth_interval:
                self._scale *= self._growth_factor
                self._growth_tracker = 0
        if not math.isfinite(self._scale) or self._scale <= 0:
            raise FloatingPointError(f"GradScaler: the scale became {self._scale}")
        self._per_optimizer.clear()

    def state_dict(self) -> dict:
        if not self._enabled:
            return {}
        return {"scale": self._scale, "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval,
                "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state: dict) -> None:
        if not self._enabled:
            return
        if not state:
            raise RuntimeError("GradScaler.load_state_dict: the state is empty (it was saved "
                               "by a disabled GradScaler)")
        missing = {"scale", "growth_factor", "backoff_factor", "growth_interval",
                   "_growth_tracker"} - set(state)
        if missing:
            raise KeyError(f"GradScaler.load_state_dict: missing {sorted(missing)}")
        self._scale = float(state["scale"])
        self._growth_factor = float(state["growth_factor"])
        self._backoff_factor = float(state["backoff_factor"])
        self._growth_interval = int(state["growth_interval"])
        self._growth_tracker = int(state["_growth_tracker"])


def _any(flags) -> bool:
    """Whether any of the 0-d boolean arrays is true: one read per device."""
    if not flags:
        return False
    by_module: dict = {}
    for flag in flags:
        by_module.setdefault(id(backend.get_array_module(flag)), []).append(flag)
    found = False
    for group in by_module.values():
        xp = backend.get_array_module(group[0])
        found |= bool(xp.stack(group).any())
    return found
