"""Weight initialisation, PyTorch's `nn.init`: each function fills a tensor in place from the
device's seeded generator and returns it.

Kaiming (He) initialisation keeps the variance of activations constant through ReLU layers:
std = gain / sqrt(fan); Xavier (Glorot) balances forward and backward: std = gain * sqrt(2 /
(fan_in + fan_out)). A uniform distribution on [-b, b] has std b / sqrt(3).
"""

from __future__ import annotations

import math

from minigrad import backend
from minigrad.autograd import bump_version, no_grad
from minigrad.tensor import Tensor


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """fan_in = in_features (x kernel area), fan_out = out_features (x kernel area)."""
    if tensor.ndim < 2:
        raise ValueError(f"init: fan in and fan out need at least 2 dimensions, got shape "
                         f"{tensor.shape}")
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _fill(tensor: Tensor, draw) -> Tensor:
    with no_grad(), backend.device_context(tensor.device):
        rng = backend.generator(tensor.device)
        tensor.array[...] = draw(rng, tensor.shape, tensor.dtype)
    bump_version(tensor.array)
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    return _fill(tensor, lambda rng, shape, dtype: a + (b - a) * rng.random(shape, dtype=dtype))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    return _fill(tensor,
                 lambda rng, shape, dtype: mean + std * rng.standard_normal(shape, dtype=dtype))


def constant_(tensor: Tensor, val: float) -> Tensor:
    with no_grad():
        tensor.array[...] = val
    bump_version(tensor.array)
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:  # a zero-element tensor (Linear(0, n)): nothing to draw, as in PyTorch
        return 0.0
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Tensor:
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Tensor:
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))


def _xavier_std(tensor: Tensor, gain: float) -> float:
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return gain * math.sqrt(2.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    bound = math.sqrt(3.0) * _xavier_std(tensor, gain)
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    return normal_(tensor, 0.0, _xavier_std(tensor, gain))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0) -> Tensor:
    """N(mean, std^2) restricted to [a, b]: values outside are drawn again until all fit."""
    if not a < b:
        raise ValueError(f"trunc_normal_: expected a < b, got a={a}, b={b}")

    def draw(rng, shape, dtype):
        values = mean + std * rng.standard_normal(shape, dtype=dtype)
        outside = (values < a) | (values > b)
        while bool(outside.any()):  # each round redraws the few left outside
            values[outside] = mean + std * rng.standard_normal(int(outside.sum()), dtype=dtype)
            outside = (values < a) | (values > b)
        return values

    return _fill(tensor, draw)


def orthogonal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """A (semi-)orthogonal matrix, as PyTorch's: the Q of the QR decomposition of a normal
    matrix (rows = the first dim, columns = the others flattened), signs fixed by diag(R)."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: expected at least 2 dims, got shape {tensor.shape}")
    rows, cols = tensor.shape[0], tensor.numel() // tensor.shape[0]

    def draw(rng, shape, dtype):
        xp = backend.array_module(tensor.device)
        flat = rng.standard_normal((rows, cols), dtype=backend.float64)
        flat = flat.T if rows < cols else flat
        q, r = xp.linalg.qr(flat)
        q = q * xp.sign(xp.diagonal(r))
        q = q.T if rows < cols else q
        return (gain * q).astype(dtype).reshape(shape)

    return _fill(tensor, draw)


def eye_(tensor: Tensor) -> Tensor:
    """The 2-D tensor filled with the identity matrix (ones on the diagonal): a Linear layer
    that passes its input through, where the sizes allow."""
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only 2-D tensors are supported, got shape {tensor.shape}")
    return _fill(tensor, lambda rng, shape, dtype: backend.array_module(tensor.device).eye(
        *shape, dtype=dtype))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """A convolution's weight (OC, C, K...) of 3 to 5 dims made the identity: output channel
    i of each group copies input channel i at the kernel's centre (as many channels as the
    smaller count has), zeros elsewhere. The convolution then passes its input through."""
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: only 3-, 4- and 5-D tensors are supported, got shape "
                         f"{tensor.shape}")
    if tensor.shape[0] % groups:
        raise ValueError(f"dirac_: dim 0 ({tensor.shape[0]}) must be divisible by groups "
                         f"({groups})")
    per_group = tensor.shape[0] // groups
    channels = min(per_group, tensor.shape[1])

    def draw(rng, shape, dtype):
        xp = backend.array_module(tensor.device)
        weight = xp.zeros(shape, dtype=dtype)
        centre = tuple(k // 2 for k in shape[2:])
        for g in range(groups):
            for d in range(channels):
                weight[(g * per_group + d, d) + centre] = 1
        return weight

    return _fill(tensor, draw)
