"""The layers: each holds its parameters (shaped and initialised as PyTorch's) and calls one
function of `nn.functional` in `forward`. Errors name the layer and the shapes."""

from __future__ import annotations

import math

from minigrad import backend, checks
from minigrad.autograd import no_grad
from minigrad.nn import functional as F
from minigrad.nn import init
from minigrad.nn.module import Module, Parameter
from minigrad.tensor import Tensor, empty, ones, tensor, zeros


class Identity(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


class Linear(Module):
    """y = x @ W^T + b, with W (out_features, in_features) and b (out_features,), both drawn
    from U(-1/sqrt(in_features), 1/sqrt(in_features)) as in PyTorch."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        self.in_features = checks.integer("Linear", "in_features", in_features, minimum=0)
        self.out_features = checks.integer("Linear", "out_features", out_features, minimum=0)
        self.weight = Parameter(empty(out_features, in_features, device=device, dtype=dtype))
        self.bias = Parameter(empty(out_features, device=device, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 0 or x.array.shape[-1] != self.in_features:
            hint = (f" (if a Flatten comes before this layer, the layers before it produce "
                    f"{x.shape[-1]} features per sample, not {self.in_features})"
                    if x.ndim == 2 else "")
            raise ValueError(
                f"{self!r}: expected input with {self.in_features} features in its last "
                f"dimension, got shape {x.shape}{hint}"
            )
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Conv2d(Module):
    """2-D convolution; weight (out_channels, in_channels/groups, KH, KW), initialised like
    PyTorch's: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weight and the bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_channels, self.out_channels, self.groups = _channels(
            "Conv2d", in_channels, out_channels, groups)
        self.kernel_size = checks.pair("Conv2d", "kernel_size", kernel_size, minimum=1)
        self.stride = checks.pair("Conv2d", "stride", stride, minimum=1)
        if isinstance(padding, str):
            self.padding = checks.choice("Conv2d", "padding", padding, ("valid", "same"))
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"Conv2d: padding='same' needs stride 1, got stride "
                                 f"{self.stride} (as in PyTorch)")
        else:
            self.padding = checks.pair("Conv2d", "padding", padding, minimum=0)
        self.dilation = checks.pair("Conv2d", "dilation", dilation, minimum=1)
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(empty(*shape, device=device, dtype=dtype))
        self.bias = Parameter(empty(out_channels, device=device, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self!r}: expected input (N, {self.in_channels}, H, W) with "
                f"{self.in_channels} channels (in_channels), got shape {x.shape}"
            )
        try:
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                            self.groups)
        except ValueError as error:
            raise ValueError(f"{self!r}: {error}") from None

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding not in ((0, 0), "valid"):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


def _channels(owner: str, in_channels, out_channels, groups) -> tuple[int, int, int]:
    """A convolution's channel counts, each >= 1 and divisible by groups (>= 1)."""
    in_channels = checks.integer(owner, "in_channels", in_channels, minimum=1)
    out_channels = checks.integer(owner, "out_channels", out_channels, minimum=1)
    groups = checks.integer(owner, "groups", groups, minimum=1)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"{owner}: in_channels {in_channels} and out_channels "
                         f"{out_channels} must both be divisible by groups {groups}")
    return in_channels, out_channels, groups


def _pooling(owner: str, kernel_size, stride, padding, dilation=1) -> tuple:
    """A pooling window's kernel, stride (the kernel's if None), padding and dilation,
    checked: padding at most half the (dilated) window, as PyTorch requires."""
    kernel = checks.pair(owner, "kernel_size", kernel_size, minimum=1)
    if stride is not None:
        checks.pair(owner, "stride", stride, minimum=1)
    pad = checks.pair(owner, "padding", padding, minimum=0)
    dilated = [d * (k - 1) + 1 for k, d in zip(kernel, checks.pair(owner, "dilation", dilation,
                                                                   minimum=1))]
    if any(2 * p > k for p, k in zip(pad, dilated)):
        raise ValueError(f"{owner}: padding {padding!r} must be at most half of the window "
                         f"{tuple(dilated)} (kernel_size {kernel_size!r})")
    return kernel_size, kernel_size if stride is None else stride, padding, dilation


def _named(layer: Module, function, *args):
    """function(*args), its errors about bad input prefixed with the layer that called it."""
    try:
        return function(*args)
    except ValueError as error:
        raise ValueError(f"{layer!r}: {error}") from None


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = _pooling(
            "MaxPool2d", kernel_size, stride, padding, dilation)
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x: Tensor) -> Tensor:
        return _named(self, F.max_pool2d, x, self.kernel_size, self.stride, self.padding,
                      self.dilation, self.ceil_mode, self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None):
        super().__init__()
        self.kernel_size, self.stride, self.padding, _ = _pooling(
            "AvgPool2d", kernel_size, stride, padding)
        if divisor_override is not None:
            checks.integer("AvgPool2d", "divisor_override", divisor_override, minimum=1)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return _named(self, F.avg_pool2d, x, self.kernel_size, self.stride, self.padding,
                      self.ceil_mode, self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size):
        super().__init__()
        sizes = (output_size, output_size) if not isinstance(output_size, (tuple, list)) \
            else output_size
        if len(sizes) != 2 or not all(n is None or checks.is_integer(n) and n >= 1
                                      for n in sizes):
            raise ValueError(f"{type(self).__name__}: output_size must be an integer >= 1 or a "
                             f"pair of them (None keeps the input's size), got {output_size!r}")
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(AdaptiveAvgPool2d):
    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_max_pool2d(x, self.output_size)


class _BatchNorm(Module):
    """Batch normalization with learnable weight/bias (affine) and running statistics
    (buffers running_mean, running_var, num_batches_tracked), as PyTorch's."""

    expected_ndim: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None,
                 dtype=None):
        super().__init__()
        name = type(self).__name__
        self.num_features = checks.integer(name, "num_features", num_features, minimum=1)
        self.eps = checks.number(name, "eps", eps, low=0)
        self.momentum = momentum if momentum is None else checks.number(
            name, "momentum", momentum, low=0, high=1)
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(ones(num_features, device=device, dtype=dtype))
            self.bias = Parameter(zeros(num_features, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, device=device, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked",
                                 tensor(0, dtype=backend.int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self.expected_ndim or x.shape[1] != self.num_features:
            raise ValueError(
                f"{self!r}: expected a {' or '.join(map(str, self.expected_ndim))}-D input "
                f"with {self.num_features} channels in dim 1, got shape {x.shape}"
            )
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.array += 1
            if momentum is None:  # cumulative moving average: 1 / batches seen, computed on
                # the device (a 0-d array), so that the step never waits to read the count
                momentum = 1 / self.num_batches_tracked.array.astype(self.running_mean.dtype)
        use_batch_stats = self.training or not self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight, self.bias, use_batch_stats, 0.0 if momentum is None else momentum,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    expected_ndim = (2, 3)


class BatchNorm2d(_BatchNorm):
    expected_ndim = (4,)


class Dropout(Module):
    """Elements zeroed with probability p in training (see F.dropout). `inplace=True` is
    accepted and gives the same result, computed out of place (as ReLU's)."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p = checks.number(type(self).__name__, "p", p, low=0, high=1)
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout2d(Dropout):
    """Whole channels of (N, C, H, W) dropped with probability p (see F.dropout2d)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout2d(x, self.p, self.training)


class ReLU(Module):
    """max(x, 0). `inplace=True` is accepted and gives the same result (see F.relu)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x where x > 0, else negative_slope * x. `inplace=True` is accepted and gives the same
    result, computed out of place (as ReLU's)."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = checks.number("LeakyReLU", "negative_slope", negative_slope)
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace
                                                           else "")


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Softmax(Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim if dim is None else checks.integer(type(self).__name__, "dim", dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, self.dim)


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = checks.integer("Flatten", "start_dim", start_dim)
        self.end_dim = checks.integer("Flatten", "end_dim", end_dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = checks.choice("GELU", "approximate", approximate, ("none", "tanh"))

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class ELU(Module):
    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = checks.number("ELU", "alpha", alpha)

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class SiLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x)


class Softplus(Module):
    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta = checks.number("Softplus", "beta", beta)
        self.threshold = checks.number("Softplus", "threshold", threshold)
        if self.beta == 0:
            raise ValueError("Softplus: beta must not be 0 (the function is log(1 + e^(beta x)) "
                             "/ beta)")

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(Module):
    def __init__(self, min_val: float = -1.0, max_val: float = 1.0):
        super().__init__()
        self.min_val = checks.number(type(self).__name__, "min_val", min_val)
        self.max_val = checks.number(type(self).__name__, "max_val", max_val)
        if not self.min_val < self.max_val:
            raise ValueError(f"{type(self).__name__}: min_val {min_val} must be below max_val "
                             f"{max_val}")

    def forward(self, x: Tensor) -> Tensor:
        return F.hardtanh(x, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}"


class ReLU6(Hardtanh):
    def __init__(self):
        super().__init__(0.0, 6.0)


class PReLU(Module):
    """A leaky ReLU whose negative slope is learned: one for all channels (num_parameters=1)
    or one per channel; `weight` starts at `init` (0.25), as in PyTorch."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25):
        super().__init__()
        self.num_parameters = checks.integer("PReLU", "num_parameters", num_parameters, minimum=1)
        checks.number("PReLU", "init", init)
        self.weight = Parameter(ones(num_parameters) * init)

    def forward(self, x: Tensor) -> Tensor:
        return F.prelu(x, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class LayerNorm(Module):
    """Normalise each sample over its last dims (normalized_shape), then a learned elementwise
    scale (weight, ones) and shift (bias, zeros), as PyTorch's LayerNorm."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True):
        super().__init__()
        shape = (normalized_shape,) if checks.is_integer(normalized_shape) else normalized_shape
        if not isinstance(shape, (tuple, list)) or not shape or not all(
                checks.is_integer(n) and n >= 1 for n in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be an integer >= 1 or a "
                             f"non-empty sequence of them, got {normalized_shape!r}")
        self.normalized_shape = tuple(int(n) for n in shape)
        self.eps = checks.number("LayerNorm", "eps", eps, low=0)
        self.elementwise_affine = elementwise_affine
        self.weight = Parameter(ones(*self.normalized_shape)) if elementwise_affine else None
        self.bias = (Parameter(zeros(*self.normalized_shape)) if elementwise_affine and bias
                     else None)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Module):
    """Normalise groups of channels of each sample (num_groups=1: layer norm over C, H, W;
    num_groups=C: instance norm), then a per-channel scale and shift."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True):
        super().__init__()
        num_groups = checks.integer("GroupNorm", "num_groups", num_groups, minimum=1)
        num_channels = checks.integer("GroupNorm", "num_channels", num_channels, minimum=1)
        eps = checks.number("GroupNorm", "eps", eps, low=0)
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: {num_channels} channels do not split into "
                             f"{num_groups} groups")
        self.num_groups, self.num_channels, self.eps, self.affine = (num_groups, num_channels,
                                                                     eps, affine)
        self.weight = Parameter(ones(num_channels)) if affine else None
        self.bias = Parameter(zeros(num_channels)) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: expected {self.num_channels} channels (dim 1), got "
                             f"an input of shape {tuple(x.shape)}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class ConvTranspose2d(Module):
    """Transposed 2-D convolution (an upsampling layer: stride 2 doubles the size); weight
    (in_channels, out_channels/groups, KH, KW), initialised as PyTorch's."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 device=None, dtype=None):
        super().__init__()
        name = "ConvTranspose2d"
        self.in_channels, self.out_channels, self.groups = _channels(
            name, in_channels, out_channels, groups)
        self.kernel_size = checks.pair(name, "kernel_size", kernel_size, minimum=1)
        self.stride = checks.pair(name, "stride", stride, minimum=1)
        self.padding = checks.pair(name, "padding", padding, minimum=0)
        self.output_padding = checks.pair(name, "output_padding", output_padding, minimum=0)
        self.dilation = checks.pair(name, "dilation", dilation, minimum=1)
        if any(o >= max(s, d) for o, s, d in zip(self.output_padding, self.stride,
                                                 self.dilation)):
            raise ValueError(f"{name}: output_padding {self.output_padding} must be smaller "
                             f"than the stride {self.stride} or the dilation {self.dilation}")
        shape = (in_channels, out_channels // groups, *self.kernel_size)
        self.weight = Parameter(empty(*shape, device=device, dtype=dtype))
        self.bias = Parameter(empty(out_channels, device=device, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor, output_size=None) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r}: expected input (N, {self.in_channels}, H, W), got shape "
                             f"{x.shape}")
        output_padding = self.output_padding
        if output_size is not None:  # the output_padding that reaches output_size
            natural = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in zip(
                x.shape[2:], self.stride, self.padding, self.dilation, self.kernel_size)]
            output_padding = tuple(int(o) - m for o, m in zip(tuple(output_size)[-2:], natural))
        return _named(self, F.conv_transpose2d, x, self.weight, self.bias, self.stride,
                      self.padding, output_padding, self.groups, self.dilation)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.output_padding != (0, 0):
            text += f", output_padding={self.output_padding}"
        return text + ("" if self.bias is not None else ", bias=False")


class Upsample(Module):
    def __init__(self, size=None, scale_factor=None, mode: str = "nearest",
                 align_corners: bool | None = None):
        super().__init__()
        checks.choice("Upsample", "mode", mode, ("nearest", "bilinear"))
        if (size is None) == (scale_factor is None):
            raise ValueError("Upsample: give exactly one of size and scale_factor")
        if size is not None and not (
                checks.is_integer(size) and size >= 1 or isinstance(size, (tuple, list))
                and len(size) == 2 and all(checks.is_integer(n) and n >= 1 for n in size)):
            raise ValueError(f"Upsample: size must be an integer >= 1 or a pair of them, got "
                             f"{size!r}")
        for factor in (scale_factor if isinstance(scale_factor, (tuple, list)) else
                       [] if scale_factor is None else [scale_factor]):
            checks.number("Upsample", "scale_factor", factor, low=0, low_open=True)
        self.size, self.scale_factor, self.mode, self.align_corners = (size, scale_factor, mode,
                                                                       align_corners)

    def forward(self, x: Tensor) -> Tensor:
        return _named(self, F.interpolate, x, self.size, self.scale_factor, self.mode,
                      self.align_corners)

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else \
            f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"


class Embedding(Module):
    """A table of num_embeddings vectors of embedding_dim, looked up by integer index; weight
    starts N(0, 1), the padding_idx row at zero (and it gets no gradient), as PyTorch's."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 device=None, dtype=None):
        super().__init__()
        self.num_embeddings = checks.integer("Embedding", "num_embeddings", num_embeddings,
                                             minimum=1)
        self.embedding_dim = checks.integer("Embedding", "embedding_dim", embedding_dim,
                                            minimum=0)
        if padding_idx is not None:
            checks.integer("Embedding", "padding_idx", padding_idx)
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within the "
                                 f"{num_embeddings} embeddings (-{num_embeddings} to "
                                 f"{num_embeddings - 1})")
            padding_idx %= num_embeddings  # as PyTorch: -1 is the last row
        self.padding_idx = padding_idx
        self.weight = Parameter(empty(num_embeddings, embedding_dim, device=device, dtype=dtype))
        init.normal_(self.weight)
        if padding_idx is not None:
            with no_grad():
                self.weight[padding_idx] = 0.0

    def forward(self, x: Tensor) -> Tensor:
        return _named(self, F.embedding, x, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        return text + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None
                       else "")


# ---------------------------------------------------------------------------------------------
# 1-D layers and unpooling (ops/one_d.py: their 2-D twins on a signal one pixel high)


class Conv1d(Module):
    """1-D convolution of (N, C, L); weight (out_channels, in_channels/groups, K), initialised
    as Conv2d's (PyTorch's)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None):
        super().__init__()
        if padding_mode != "zeros":
            raise NotImplementedError(f"Conv1d: padding_mode={padding_mode!r}; minigrad pads "
                                      "with zeros only")
        self.in_channels, self.out_channels, self.groups = _channels(
            "Conv1d", in_channels, out_channels, groups)
        self.kernel_size = (_one("Conv1d", "kernel_size", kernel_size),)
        self.stride = (_one("Conv1d", "stride", stride),)
        self.dilation = (_one("Conv1d", "dilation", dilation),)
        if isinstance(padding, str):
            self.padding = checks.choice("Conv1d", "padding", padding, ("valid", "same"))
            if padding == "same" and self.stride != (1,):
                raise ValueError(f"Conv1d: padding='same' needs stride 1, got stride "
                                 f"{self.stride} (as in PyTorch)")
        else:
            self.padding = (_one("Conv1d", "padding", padding),)
        self.padding_mode = padding_mode
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(empty(*shape, device=device, dtype=dtype))
        self.bias = Parameter(empty(out_channels, device=device, dtype=dtype)) if bias else None
        self.reset_parameters()

    reset_parameters = Conv2d.reset_parameters

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in (2, 3) or x.shape[-2] != self.in_channels:
            raise ValueError(
                f"{self!r}: expected input (N, {self.in_channels}, L) or "
                f"({self.in_channels}, L) with {self.in_channels} channels (in_channels), got "
                f"shape {tuple(x.shape)}")
        try:
            return F.conv1d(x, self.weight, self.bias, self.stride, self.padding,
                            self.dilation, self.groups)
        except ValueError as error:
            raise ValueError(f"{self!r}: {error}") from None

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding not in ((0,), "valid"):
            text += f", padding={self.padding}"
        if self.dilation != (1,):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


def _one(owner: str, name: str, value) -> int:
    """A 1-D layer's size argument: an int >= its minimum, or a 1-tuple of one."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    return checks.integer(owner, name, value, minimum=0 if name == "padding" else 1)


class MaxPool1d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = _one("MaxPool1d", "kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else _one("MaxPool1d", "stride", stride)
        self.padding = _one("MaxPool1d", "padding", padding)
        self.dilation = _one("MaxPool1d", "dilation", dilation)
        _pooling("MaxPool1d", (1, self.kernel_size), None, (0, self.padding),
                 (1, self.dilation))
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x: Tensor) -> Tensor:
        return _named(self, F.max_pool1d, x, self.kernel_size, self.stride, self.padding,
                      self.dilation, self.ceil_mode, self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool1d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__()
        self.kernel_size = _one("AvgPool1d", "kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else _one("AvgPool1d", "stride", stride)
        self.padding = _one("AvgPool1d", "padding", padding)
        _pooling("AvgPool1d", (1, self.kernel_size), None, (0, self.padding))
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        return _named(self, F.avg_pool1d, x, self.kernel_size, self.stride, self.padding,
                      self.ceil_mode, self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool2d(Module):
    """max_pool2d undone: `unpool(values, indices)` with the indices of
    MaxPool2d(return_indices=True); zeros except at each maximum's place (SegNet's decoder)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = checks.pair("MaxUnpool2d", "kernel_size", kernel_size, minimum=1)
        self.stride = self.kernel_size if stride is None else checks.pair(
            "MaxUnpool2d", "stride", stride, minimum=1)
        self.padding = checks.pair("MaxUnpool2d", "padding", padding, minimum=0)

    def forward(self, x: Tensor, indices: Tensor, output_size=None) -> Tensor:
        return _named(self, F.max_unpool2d, x, indices, self.kernel_size, self.stride,
                      self.padding, output_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(Module):
    """max_pool1d undone, as MaxUnpool2d."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _one("MaxUnpool1d", "kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else _one("MaxUnpool1d", "stride",
                                                                    stride)
        self.padding = _one("MaxUnpool1d", "padding", padding)

    def forward(self, x: Tensor, indices: Tensor, output_size=None) -> Tensor:
        return _named(self, F.max_unpool1d, x, indices, self.kernel_size, self.stride,
                      self.padding, output_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _InstanceNorm(_BatchNorm):
    """Each channel of each sample normalised over its positions (F.instance_norm); PyTorch's
    defaults: no affine parameters and no running statistics. With track_running_stats, eval
    mode normalises by the running statistics, as batch norm does."""

    expected_ndim: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = False, track_running_stats: bool = False, device=None,
                 dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device,
                         dtype)

    def forward(self, x: Tensor) -> Tensor:
        unbatched = x.ndim == self.expected_ndim[0] - 1
        if unbatched:
            x = x.unsqueeze(0)
        if x.ndim not in self.expected_ndim or x.shape[1] != self.num_features:
            raise ValueError(
                f"{self!r}: expected a {self.expected_ndim[0]}-D input (or an unbatched "
                f"{self.expected_ndim[0] - 1}-D one) with {self.num_features} channels, got "
                f"shape {tuple(x.shape)}")
        if self.training and self.track_running_stats:
            self.num_batches_tracked.array += 1
        out = F.instance_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias,
            self.training or not self.track_running_stats,
            0.1 if self.momentum is None else self.momentum, self.eps)
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    expected_ndim = (3,)


class InstanceNorm2d(_InstanceNorm):
    expected_ndim = (4,)
