"""Quantization to 8-bit integers, in the spirit of torch's eager mode: a trained network whose
weights are stored as int8 (4x smaller) and whose products are integer products.

A real value x is stored as an integer q with a scale and a zero point:
    x ~ scale * (q - zero_point)
- Weights: symmetric, per output channel: scale_c = max|W_c| / 127, zero point 0, q in
  [-127, 127]. A channel of small weights keeps its resolution beside one of large weights.
- Activations: affine, per tensor, uint8: the range [lo, hi] (always holding 0, so that zero
  padding and ReLU's zeros are exact) maps onto 0..255, scale = (hi - lo) / 255 and
  zero_point = round(-lo / scale).
A layer's product then runs on integers and is rescaled once:
    y_c = sum_k W_ck x_k + b_c
        ~ scale_w[c] * scale_x * sum_k q_w[c, k] * (q_x[k] - zp_x) + b_c
The integer sum is what int8 hardware accumulates in int32. NumPy has no fast integer matrix
product (its int matmul is a plain loop), so it is done in float64 with BLAS, which is exact
here: each product is at most 127 * 255 and float64 holds every integer below 2^53, so sums of
up to 2^53 / 32385 (2.8e11) terms are computed without a rounding.

Two ways in:
- Dynamic (`quantize_dynamic(model, {nn.Linear, nn.LSTM}, dtype=mg.qint8)`): the weights are
  quantized once; each input's range is measured on the fly, batch by batch (for a recurrent
  layer, the hidden state's at every step too). Nothing to calibrate.
- Static (`fuse_modules`, `prepare`, a few calibration batches, `convert`): observers record
  the range of every quantized layer's input and output on calibration data, and the scales
  are fixed from them. Conv + BatchNorm (+ ReLU) are fused first: the BN is folded into the
  conv's weights and bias (it is an affine map per channel, at inference), and the ReLU is
  applied to the integer output by clamping it at the zero point.
A static layer takes float input and gives float output: its input is quantized with the
calibrated scale, the product runs on integers, and the output is requantized to uint8 with
its calibrated scale and read back (so the values are the ones an int8 pipeline holds); the
layers between (pooling, flatten) run on those values in float.
"""

from __future__ import annotations

import copy

import numpy as np

from minigrad import autograd, nn
from minigrad.backend import get_array_module
from minigrad.ops.conv import im2col_view
from minigrad.tensor import Tensor


class QDtype:
    """A quantized dtype's name, as torch.qint8 (the storage is NumPy's int8 or uint8)."""

    def __init__(self, name: str, storage):
        self.name, self.storage = name, np.dtype(storage)

    def __repr__(self) -> str:
        return f"minigrad.{self.name}"


qint8 = QDtype("qint8", np.int8)
quint8 = QDtype("quint8", np.uint8)

QMIN, QMAX = 0, 255  # activations: uint8
WMAX = 127  # weights: int8, symmetric


# ---------------------------------------------------------------------------------------------
# scales, quantizing and the integer product


def weight_qparams(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 weights and a scale per output channel (dim 0): W ~ scale[c] * q[c]."""
    xp = get_array_module(w)
    flat = w.reshape(w.shape[0], -1)
    amax = xp.abs(flat).max(axis=1)
    scale = xp.where(amax > 0, amax / WMAX, 1.0).astype(np.float64)
    q = xp.clip(xp.rint(flat / scale[:, None]), -WMAX, WMAX).astype(np.int8)
    return q.reshape(w.shape), scale


def activation_qparams(lo: float, hi: float) -> tuple[float, int]:
    """The uint8 scale and zero point of the range [lo, hi] (widened to hold 0)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / (QMAX - QMIN) if hi > lo else 1.0
    zero_point = int(np.clip(round(QMIN - lo / scale), QMIN, QMAX))
    return scale, zero_point


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """uint8 codes of x: clip(round(x / scale) + zero_point, 0, 255)."""
    xp = get_array_module(x)
    return xp.clip(xp.rint(x / scale) + zero_point, QMIN, QMAX).astype(np.uint8)


def dequantize(q: np.ndarray, scale, zero_point) -> np.ndarray:
    return (q.astype(np.float64) - zero_point) * scale


def integer_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The exact integer product a @ b (int8/int16 entries), computed with float64 BLAS
    (module docstring: exact for sums of up to 2.8e11 int8 x uint8 products)."""
    return a.astype(np.float64) @ b.astype(np.float64)


# ---------------------------------------------------------------------------------------------
# dynamic quantization


def dynamic_linear(a: np.ndarray, q_w: np.ndarray, w_scale: np.ndarray, bias) -> np.ndarray:
    """a @ W^T + b with W int8 (per-channel scales) and a quantized to uint8 from its own
    range: the integer product, rescaled once."""
    scale, zero_point = activation_qparams(a.min(), a.max())
    codes = quantize(a, scale, zero_point).astype(np.int16) - zero_point
    out = integer_matmul(codes, q_w.T) * (scale * w_scale)
    return out if bias is None else out + bias


class DynamicQuantizedLinear(nn.Module):
    """A Linear with int8 weights (per output channel) whose input is quantized to uint8 on
    the fly, from each batch's own range."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight_int8", Tensor(np.zeros((out_features, in_features),
                                                            np.int8)))
        self.register_buffer("weight_scale", Tensor(np.ones(out_features)))
        self.register_buffer("bias", Tensor(np.zeros(out_features, np.float32))
                             if bias else None)

    @classmethod
    def from_float(cls, linear: nn.Linear) -> DynamicQuantizedLinear:
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None)
        q, scale = weight_qparams(linear.weight.numpy())
        layer.weight_int8, layer.weight_scale = Tensor(q), Tensor(scale)
        if linear.bias is not None:
            layer.bias = Tensor(linear.bias.numpy().copy())
        return layer

    def forward(self, x: Tensor) -> Tensor:
        a = x.numpy()
        if a.shape[-1] != self.in_features:
            raise ValueError(f"{type(self).__name__}: expected {self.in_features} features, "
                             f"got shape {tuple(a.shape)}")
        bias = None if self.bias is None else self.bias.numpy()
        out = dynamic_linear(a.reshape(-1, self.in_features), self.weight_int8.numpy(),
                             self.weight_scale.numpy(), bias)
        return Tensor(out.astype(a.dtype).reshape(*a.shape[:-1], self.out_features))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                "dtype=qint8, dynamic")


class DynamicQuantizedRNN(nn.Module):
    """An RNN, LSTM or GRU with int8 weights (per gate row) whose inputs and hidden states are
    quantized on the fly at every step: x W_ih^T and h W_hh^T are integer products; the gates
    are ops/recurrent.py's, in float. (No PackedSequence; for inference.)"""

    def __init__(self, rnn):
        super().__init__()
        for name in ("mode", "input_size", "hidden_size", "num_layers", "bias",
                     "batch_first", "bidirectional"):
            object.__setattr__(self, name, getattr(rnn, name))
        self.float_type = type(rnn).__name__
        for name, p in rnn.named_parameters():
            if name.startswith("weight"):
                q, scale = weight_qparams(p.numpy())
                self.register_buffer(name + "_int8", Tensor(q))
                self.register_buffer(name + "_scale", Tensor(scale))
            else:
                self.register_buffer(name, Tensor(p.numpy().copy()))

    @classmethod
    def from_float(cls, rnn) -> DynamicQuantizedRNN:
        return cls(rnn)

    def _product(self, a: np.ndarray, kind: str, suffix: str) -> np.ndarray:
        bias = getattr(self, f"bias_{kind}{suffix}").numpy() if self.bias else None
        return dynamic_linear(a, getattr(self, f"weight_{kind}{suffix}_int8").numpy(),
                              getattr(self, f"weight_{kind}{suffix}_scale").numpy(), bias)

    def forward(self, input, hx=None):  # noqa: A002
        from minigrad.nn.utils.rnn import PackedSequence
        from minigrad.ops import recurrent

        if isinstance(input, PackedSequence):
            raise NotImplementedError(f"quantized {self.float_type}: a PackedSequence is not "
                                      "supported; pad the batch")
        x = input.numpy()
        unbatched = x.ndim == 2
        x = x[:, None] if unbatched else (x.transpose(1, 0, 2) if self.batch_first else x)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"quantized {self.float_type}: expected input of size "
                             f"{self.input_size} in its last dim, got shape {input.shape}")
        steps, batch = x.shape[:2]
        directions = 2 if self.bidirectional else 1
        lstm = self.mode == "LSTM"
        shape = (self.num_layers * directions, batch, self.hidden_size)
        if hx is None:
            h0 = c0 = np.zeros(shape, x.dtype)
        else:
            states = [s.numpy() for s in (hx if lstm else (hx,))]
            states = [s[:, None] if unbatched else s for s in states]
            h0, c0 = states[0], (states[1] if lstm else None)
        h_n, c_n = [], []
        with autograd.no_grad():
            for layer in range(self.num_layers):
                outputs = []
                for direction in range(directions):
                    k, suffix = layer * directions + direction, f"_l{layer}" + (
                        "_reverse" if direction else "")
                    parts = self._product(x.reshape(steps * batch, -1), "ih", suffix)
                    parts = parts.reshape(steps, batch, -1).astype(x.dtype)
                    h = Tensor(h0[k])
                    c = Tensor(c0[k]) if lstm else None
                    out = [None] * steps
                    for t in (range(steps - 1, -1, -1) if direction else range(steps)):
                        h_part = Tensor(self._product(h.numpy(), "hh", suffix).astype(x.dtype))
                        h, c = recurrent.gates(self.mode, Tensor(parts[t]), h_part, h, c)
                        out[t] = h.numpy()
                    outputs.append(np.stack(out))
                    h_n.append(h.numpy())
                    c_n.append(None if c is None else c.numpy())
                x = outputs[0] if directions == 1 else np.concatenate(outputs, 2)
        state = (Tensor(np.stack(h_n)), Tensor(np.stack(c_n))) if lstm else Tensor(np.stack(h_n))
        if unbatched:
            x = x[:, 0]
            state = tuple(s.squeeze(1) for s in state) if lstm else state.squeeze(1)
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        return Tensor(np.ascontiguousarray(x)), state

    def extra_repr(self) -> str:
        return (f"{self.float_type} {self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, dtype=qint8, dynamic")


def quantize_dynamic(model: nn.Module, qconfig_spec=None, dtype=qint8,
                     inplace: bool = False) -> nn.Module:
    """A copy of `model` (or `model` itself, inplace=True) with every layer of a type in
    qconfig_spec (default {nn.Linear}) replaced by its dynamically quantized form."""
    if dtype is not qint8:
        raise ValueError(f"quantize_dynamic: dtype {dtype!r}; minigrad quantizes to "
                         "minigrad.qint8")
    spec = {nn.Linear} if qconfig_spec is None else set(qconfig_spec)
    makers = {nn.Linear: DynamicQuantizedLinear.from_float, nn.LSTM: DynamicQuantizedRNN,
              nn.GRU: DynamicQuantizedRNN, nn.RNN: DynamicQuantizedRNN}
    unsupported = [t.__name__ if isinstance(t, type) else repr(t) for t in spec
                   if t not in makers]
    if unsupported:
        raise NotImplementedError(f"quantize_dynamic: {', '.join(unsupported)} cannot be "
                                  "quantized dynamically; nn.Linear, LSTM, GRU and RNN can")
    model = model if inplace else copy.deepcopy(model)
    if type(model) in makers and type(model) in spec:  # the model is one such layer
        return makers[type(model)](model).eval()
    for kind in spec:
        _replace(model, kind, makers[kind])
    return model.eval()


# ---------------------------------------------------------------------------------------------
# static quantization: fusion, observers, calibration, conversion


class ConvReLU2d(nn.Sequential):
    """A Conv2d (a BatchNorm folded into it) followed by a ReLU: one layer when quantized."""


class LinearReLU(nn.Sequential):
    """A Linear followed by a ReLU: one layer when quantized."""


def fold_batch_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A Conv2d computing bn(conv(x)) at inference: BN's y = gamma (z - mean) / sqrt(var +
    eps) + beta is a scale and a shift per channel, so W' = W * s and b' = (b - mean) * s +
    beta with s = gamma / sqrt(var + eps)."""
    if bn.running_mean is None:
        raise ValueError(f"fuse_modules: {bn!r} tracks no running statistics to fold")
    fused = copy.deepcopy(conv)
    s = bn.running_var.numpy().astype(np.float64) + bn.eps
    s = (bn.weight.numpy() if bn.affine else 1.0) / np.sqrt(s)
    bias = conv.bias.numpy() if conv.bias is not None else np.zeros(conv.out_channels)
    beta = bn.bias.numpy() if bn.affine else 0.0
    dtype = conv.weight.dtype
    with autograd.no_grad():
        fused.weight.copy_(Tensor((conv.weight.numpy() * s.reshape(-1, 1, 1, 1)).astype(dtype)))
        new_bias = ((bias - bn.running_mean.numpy()) * s + beta).astype(dtype)
        if fused.bias is None:
            fused.bias = nn.Parameter(Tensor(new_bias))
        else:
            fused.bias.copy_(Tensor(new_bias))
    return fused


def fuse_modules(model: nn.Module, modules_to_fuse, inplace: bool = False) -> nn.Module:
    """Fuse each listed group of submodule names, as torch.ao.quantization.fuse_modules:
    [conv, bn], [conv, bn, relu], [conv, relu], [linear, relu]. The first becomes the fused
    layer, the others nn.Identity. For inference: BN is folded with its running statistics."""
    model = model if inplace else copy.deepcopy(model)
    groups = [modules_to_fuse] if modules_to_fuse and isinstance(modules_to_fuse[0], str) \
        else modules_to_fuse
    for names in groups:
        layers = [model.get_submodule(name) for name in names]
        kinds = tuple(type(m) for m in layers)
        if kinds[:2] == (nn.Conv2d, nn.BatchNorm2d):
            fused = fold_batch_norm(layers[0], layers[1])
            rest = kinds[2:]
        elif kinds[0] in (nn.Conv2d, nn.Linear):
            fused, rest = layers[0], kinds[1:]
        else:
            rest = None
        if rest not in ((), (nn.ReLU,)):
            raise ValueError(f"fuse_modules: cannot fuse {[k.__name__ for k in kinds]} "
                             f"({names}); the patterns are conv-bn, conv-bn-relu, conv-relu "
                             "and linear-relu")
        if rest:
            fused = (ConvReLU2d if isinstance(fused, nn.Conv2d) else LinearReLU)(
                fused, nn.ReLU())
        _set(model, names[0], fused)
        for name in names[1:]:
            _set(model, name, nn.Identity())
    return model


class MinMaxObserver(nn.Module):
    """Records the smallest and largest value it sees (calibration); gives the uint8 scale
    and zero point of that range."""

    def __init__(self):
        super().__init__()
        self.register_buffer("min_val", Tensor(np.array(np.inf)))
        self.register_buffer("max_val", Tensor(np.array(-np.inf)))

    def forward(self, x: Tensor) -> Tensor:
        a = x.numpy()
        self.min_val = Tensor(np.minimum(self.min_val.numpy(), a.min()))
        self.max_val = Tensor(np.maximum(self.max_val.numpy(), a.max()))
        return x

    def calculate_qparams(self) -> tuple[float, int]:
        if not np.isfinite(self.min_val.numpy()):
            raise RuntimeError("MinMaxObserver: no data was observed; run calibration batches "
                               "through the prepared model before convert")
        return activation_qparams(self.min_val.item(), self.max_val.item())


_QUANTIZABLE = (nn.Conv2d, nn.Linear, ConvReLU2d, LinearReLU)


class Observed(nn.Module):
    """A layer to be quantized, watched: its input and output ranges go to observers."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer
        self.input_observer, self.output_observer = MinMaxObserver(), MinMaxObserver()

    def forward(self, x: Tensor) -> Tensor:
        return self.output_observer(self.layer(self.input_observer(x)))


def prepare(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Wrap every Conv2d, Linear and fused layer in an Observed; run calibration batches
    through the result (in eval mode), then `convert` it."""
    model = model if inplace else copy.deepcopy(model)
    _replace(model, _QUANTIZABLE, Observed)
    return model.eval()


def convert(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replace every Observed layer by its static int8 form, with the calibrated scales."""
    model = model if inplace else copy.deepcopy(model)
    if not any(isinstance(m, Observed) for m in model.modules()):
        raise ValueError("convert: the model has no observed layers; call prepare() and run "
                         "calibration batches first")
    _replace(model, Observed, QuantizedLayer.from_observed)
    return model.eval()


class QuantizedLayer(nn.Module):
    """A Conv2d or Linear (a ReLU fused or not) with int8 weights and calibrated uint8 input
    and output scales (the module docstring)."""

    def __init__(self, kind: str, settings: dict, weight_shape, relu: bool, bias: bool):
        super().__init__()
        self.kind, self.settings, self.relu = kind, dict(settings), relu
        self.register_buffer("weight_int8", Tensor(np.zeros(weight_shape, np.int8)))
        self.register_buffer("weight_scale", Tensor(np.ones(weight_shape[0])))
        self.register_buffer("bias", Tensor(np.zeros(weight_shape[0], np.float32))
                             if bias else None)
        self.register_buffer("input_qparams", Tensor(np.array([1.0, 0.0])))  # scale, zp
        self.register_buffer("output_qparams", Tensor(np.array([1.0, 0.0])))

    @classmethod
    def from_observed(cls, observed: Observed) -> QuantizedLayer:
        layer = observed.layer
        relu = isinstance(layer, (ConvReLU2d, LinearReLU))
        inner = layer[0] if relu else layer
        if isinstance(inner, nn.Conv2d):
            if inner.groups != 1:
                raise ValueError(f"convert: {inner!r} has groups={inner.groups}; only groups=1 "
                                 "convolutions are quantized")
            settings = dict(stride=inner.stride, padding=inner.padding, dilation=inner.dilation)
            kind = "conv"
        else:
            settings, kind = {}, "linear"
        q, scale = weight_qparams(inner.weight.numpy())
        new = cls(kind, settings, q.shape, relu, inner.bias is not None)
        new.weight_int8, new.weight_scale = Tensor(q), Tensor(scale)
        if inner.bias is not None:
            new.bias = Tensor(inner.bias.numpy().copy())
        new.input_qparams = Tensor(np.array(observed.input_observer.calculate_qparams(),
                                            dtype=np.float64))
        new.output_qparams = Tensor(np.array(observed.output_observer.calculate_qparams(),
                                             dtype=np.float64))
        return new

    def forward(self, x: Tensor) -> Tensor:
        a = x.numpy()
        in_scale, in_zp = self.input_qparams.numpy()
        codes = quantize(a, in_scale, int(in_zp)).astype(np.int16) - int(in_zp)  # real 0 -> 0
        w = self.weight_int8.numpy()
        acc = self._conv(codes, w) if self.kind == "conv" else self._linear(codes, w)
        out = acc * (in_scale * self.weight_scale.numpy().reshape(
            (1, -1) + (1,) * (acc.ndim - 2)))
        if self.bias is not None:
            out = out + self.bias.numpy().reshape((1, -1) + (1,) * (acc.ndim - 2))
        out_scale, out_zp = self.output_qparams.numpy()
        q_out = quantize(out, out_scale, int(out_zp))  # the uint8 output
        if self.relu:  # ReLU on the codes: nothing below the zero point (real 0)
            q_out = np.maximum(q_out, np.uint8(out_zp))
        return Tensor(dequantize(q_out, out_scale, out_zp).astype(a.dtype))

    def _linear(self, codes, w):
        if codes.shape[-1] != w.shape[1]:
            raise ValueError(f"QuantizedLayer (linear): expected {w.shape[1]} features, got "
                             f"shape {codes.shape}")
        return integer_matmul(codes, w.T)

    def _conv(self, codes, w):
        (ph, pw), (kh, kw) = self.settings["padding"], w.shape[2:]
        if codes.ndim != 4 or codes.shape[1] != w.shape[1]:
            raise ValueError(f"QuantizedLayer (conv): expected (N, {w.shape[1]}, H, W), got "
                             f"shape {codes.shape}")
        padded = np.pad(codes, ((0, 0), (0, 0), (ph, ph), (pw, pw)))  # zeros: real zeros
        (sh, sw), (dh, dw) = self.settings["stride"], self.settings["dilation"]
        oh = (padded.shape[2] - dh * (kh - 1) - 1) // sh + 1
        ow = (padded.shape[3] - dw * (kw - 1) - 1) // sw + 1
        cols = im2col_view(padded, (kh, kw), (sh, sw), (dh, dw), (oh, ow))  # N C KH KW OH OW
        cols = cols.transpose(0, 4, 5, 1, 2, 3).reshape(-1, w.shape[1] * kh * kw)
        acc = integer_matmul(cols, w.reshape(w.shape[0], -1).T)  # (N*OH*OW, C_out)
        return acc.reshape(codes.shape[0], oh, ow, -1).transpose(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f"{self.kind}, weight {tuple(self.weight_int8.shape)} int8"
                + (", relu" if self.relu else "") + ", static")


# ---------------------------------------------------------------------------------------------
# helpers


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, module)


def _replace(model: nn.Module, kinds, make) -> None:
    """Replace every submodule of `kinds` (not inside one already replaced) by make(it)."""
    for name, child in list(model.named_children()):
        if isinstance(child, kinds):
            setattr(model, name, make(child))
        else:
            _replace(child, kinds, make)
