"""`summary(model, input_size=(1, 3, 224, 224))`: a model's size and cost, layer by layer, in
the spirit of torchinfo.

It runs one forward pass on random inputs (in eval mode, without gradients), with a forward
hook on every module noting its output shape, its parameters and its multiply-adds:

- Conv1d/Conv2d: each weight is used once per output position,
      N * H_out * W_out * C_out * (C_in / groups) * kH * kW
  (= weight.numel() * N * H_out * W_out; dilation spreads the taps without adding any). A
  bias is an add without a multiply, and is not counted (as torchvision's figures).
- ConvTranspose: each weight once per *input* position: weight.numel() * N * H_in * W_in.
- Linear: weight.numel() per row of the input (all its dims but the last).
- RNN/LSTM/GRU: every weight once per sample and time step (the gates' products).
- Norms (BatchNorm, LayerNorm, GroupNorm, InstanceNorm): their affine parameters once per
  sample, as torchinfo counts them; the elementwise normalisation is not counted, as
  activations and pooling are not.
- A matrix product written in a forward (`q @ k.transpose(-2, -1)`, `mg.matmul`, `bmm`):
  out.numel() * the inner size, counted to the module that runs it.

So VGG16 at 224x224 is 138,357,544 parameters and 15.47 G multiply-adds, ResNet-18 11,689,512
and 1.81 G, as torchinfo reports. Memory: the input's bytes, the forward/backward pass's (the
outputs of the leaf modules, twice: once kept for the backward and once for their gradients,
as torchinfo estimates) and the parameters'.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from minigrad import autograd, backend
from minigrad.ops.linalg import MatMul
from minigrad.tensor import Tensor, tensor


@functools.cache
def _kinds() -> dict:
    """The layers with a formula (nn is read here, not at import: nn imports minigrad.utils)."""
    from minigrad import nn

    kinds = {
        "conv": (nn.Conv1d, nn.Conv2d),
        "transposed": (nn.ConvTranspose2d,),
        "linear": (nn.Linear,),
        "rnn": (nn.RNN, nn.LSTM, nn.GRU),
        "norm": (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm,
                 nn.InstanceNorm1d, nn.InstanceNorm2d),
    }
    kinds["counted"] = tuple(t for group in kinds.values() for t in group)
    return kinds


@dataclass
class LayerInfo:
    """One call of one module."""

    name: str
    class_name: str
    depth: int
    is_leaf: bool
    output_shape: list = field(default_factory=list)
    num_params: int = 0  # its parameters (with its children's), on its first call only
    trainable_params: int = 0
    mult_adds: int = 0  # its own (a formula's, or matrix products in its forward)
    output_bytes: int = 0
    children_mult_adds: int = 0


@dataclass
class ModelStatistics:
    """What `summary` measured; `str()` is the table it prints."""

    summary_list: list
    input_size: list
    total_params: int
    trainable_params: int
    total_mult_adds: int
    total_input: int  # bytes
    total_output_bytes: int  # the forward/backward pass estimate
    total_param_bytes: int
    depth: int = 3

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def total_bytes(self) -> int:
        return self.total_input + self.total_output_bytes + self.total_param_bytes

    def __str__(self) -> str:
        headers = ("Layer (type:depth)", "Output Shape", "Param #", "Mult-Adds")
        rows = []
        for info in self.summary_list:
            if info.depth > self.depth:
                continue
            shape = "" if not info.output_shape else " ".join(str(s) for s in info.output_shape)
            macs = info.mult_adds + (info.children_mult_adds if info.depth == self.depth else 0)
            rows.append((f"{'  ' * info.depth}{info.class_name}: {info.depth}"
                         + (f" ({info.name})" if info.name else ""),
                         shape, f"{info.num_params:,}" if info.num_params else "--",
                         f"{macs:,}" if macs else "--"))
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        line = "=" * (sum(widths) + 3 * (len(widths) - 1))

        def fmt(row):
            return "   ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                              for i, (cell, w) in enumerate(zip(row, widths)))

        return "\n".join([
            line, fmt(headers), line, *(fmt(r) for r in rows), line,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            f"Total mult-adds ({_unit(self.total_mult_adds)[1]}): "
            f"{_unit(self.total_mult_adds)[0]}",
            line,
            f"Input size (MB): {self.total_input / 1e6:.2f}",
            f"Forward/backward pass size (MB): {self.total_output_bytes / 1e6:.2f}",
            f"Params size (MB): {self.total_param_bytes / 1e6:.2f}",
            f"Estimated Total Size (MB): {self.total_bytes / 1e6:.2f}",
            line,
        ])


def _unit(count: int) -> tuple[str, str]:
    for value, name in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if count >= value:
            return f"{count / value:.2f}", name
    return str(count), "units"


def summary(model, input_size=None, input_data=None, dtypes=None, device=None,
            depth: int = 3, verbose: int = 1) -> ModelStatistics:
    """A table of `model`'s layers: output shape, parameters and multiply-adds of each, the
    totals, and the memory of the input, the activations and the parameters.

    input_size: the shape of the input with its batch dim, `(1, 3, 224, 224)`, or a list of
    shapes for a model of several inputs; or input_data: the tensors themselves. dtypes: one
    dtype per input (default float32); device: where the inputs are made (default: where the
    model's parameters are). verbose=1 prints the table; the statistics are returned."""
    from minigrad.nn import Module

    if not isinstance(model, Module):
        raise TypeError(f"summary: expected a minigrad nn.Module, got {type(model).__name__}")
    inputs = _inputs("summary", model, input_size, input_data, dtypes, device)
    entries: list[LayerInfo] = []
    running: list[tuple] = []
    seen_params: set[int] = set()
    names = {id(m): name for name, m in model.named_modules()}
    depths = {}
    for name, module in model.named_modules():
        depths[id(module)] = 0 if not name else name.count(".") + 1

    def before(module, args):
        info = LayerInfo(names.get(id(module), ""), type(module).__name__,
                         depths.get(id(module), 0), not any(True for _ in module.children()))
        fresh = [p for p in module.parameters() if id(p) not in seen_params]
        if info.is_leaf:  # (a container's row shows its children's, not yet counted)
            seen_params.update(id(p) for p in fresh)
        info.num_params = sum(p.numel() for p in fresh)
        info.trainable_params = sum(p.numel() for p in fresh if p.requires_grad)
        entries.append(info)
        running.append((module, info))

    def after(module, args, output):
        _, info = running.pop()
        info.output_shape = _shapes(output)
        info.mult_adds += _mult_adds(module, args, output)
        if info.is_leaf:
            info.output_bytes = sum(t.array.nbytes for t in _tensors(output))
        for _, parent in running:
            parent.children_mult_adds += info.mult_adds

    def counting_matmul(cls, *tensors, **settings):
        out = original_apply(*tensors, **settings)
        if running and not isinstance(running[-1][0], _kinds()["counted"]):
            a = tensors[0]
            running[-1][1].mult_adds += out.numel() * a.shape[-1]
        return out

    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(before))
        handles.append(module.register_forward_hook(after))
    original_apply = MatMul.apply
    had_own_apply = "apply" in MatMul.__dict__
    was_training = model.training
    try:
        MatMul.apply = classmethod(counting_matmul)
        model.eval()
        with autograd.no_grad():
            model(*inputs)
    finally:
        if had_own_apply:
            MatMul.apply = original_apply
        else:
            del MatMul.apply
        model.train(was_training)
        for handle in handles:
            handle.remove()
    # a parameter the forward did not reach is still the model's
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    stats = ModelStatistics(
        summary_list=entries,
        input_size=[list(t.shape) for t in inputs],
        total_params=total,
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        total_mult_adds=sum(e.mult_adds for e in entries),
        total_input=sum(t.array.nbytes for t in inputs),
        total_output_bytes=2 * sum(e.output_bytes for e in entries),
        total_param_bytes=sum(p.array.nbytes for p in params),
        depth=depth,
    )
    if verbose:
        print(stats)
    return stats


def _inputs(who, model, input_size, input_data, dtypes, device) -> list[Tensor]:
    if (input_size is None) == (input_data is None):
        raise ValueError(f"{who}: give input_size (e.g. (1, 3, 224, 224)) or input_data, "
                         "one of the two")
    if input_data is not None:
        data = input_data if isinstance(input_data, (list, tuple)) else [input_data]
        if not all(isinstance(t, Tensor) for t in data):
            raise TypeError(f"{who}: input_data must be minigrad Tensors, got "
                            f"{[type(t).__name__ for t in data]}")
        return list(data)
    sizes = ([input_size] if input_size and all(isinstance(s, (int, np.integer))
                                                for s in input_size) else list(input_size))
    for size in sizes:
        if not size or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size):
            raise ValueError(f"{who}: input_size {input_size!r}: each input's shape must be "
                             "positive integers, its batch dim first")
    dtypes = [backend.float32] * len(sizes) if dtypes is None else list(dtypes)
    if len(dtypes) != len(sizes):
        raise ValueError(f"{who}: {len(dtypes)} dtypes for {len(sizes)} inputs")
    if device is None:
        first = next(iter(model.parameters()), None)
        device = "cpu" if first is None else first.device
    rng = np.random.default_rng(0)
    made = []
    for size, dtype in zip(sizes, dtypes):
        dtype = np.dtype(dtype)
        values = (rng.standard_normal(size) if dtype.kind == "f"
                  else rng.integers(0, 2, size))  # integer inputs: indices an Embedding takes
        made.append(tensor(values.astype(dtype), device=device))
    return made


def _tensors(output) -> list[Tensor]:
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in _tensors(item)]
    if isinstance(output, dict):
        return [t for item in output.values() for t in _tensors(item)]
    return []


def _shapes(output) -> list:
    return [list(t.shape) for t in _tensors(output)]


def _mult_adds(module, args: tuple, output) -> int:
    """The multiply-adds of one call of a layer with a formula (the module docstring)."""
    outs = _tensors(output)
    if not outs:
        return 0
    out = outs[0]
    weight, kinds = getattr(module, "weight", None), _kinds()
    if isinstance(module, kinds["conv"]):
        return weight.numel() * out.shape[0] * math.prod(out.shape[2:])
    if isinstance(module, kinds["transposed"]):
        x = args[0]
        return weight.numel() * x.shape[0] * math.prod(x.shape[2:])
    if isinstance(module, kinds["linear"]):
        return weight.numel() * math.prod(out.shape[:-1])
    if isinstance(module, kinds["rnn"]):
        steps = math.prod(out.shape[:2])  # batch x time, either order
        return steps * sum(p.numel() for name, p in module.named_parameters(recurse=False)
                           if name.startswith("weight"))
    if isinstance(module, kinds["norm"]):
        batch = out.shape[0] if out.ndim > 1 else 1
        return batch * sum(p.numel() for p in module.parameters(recurse=False))
    return 0
