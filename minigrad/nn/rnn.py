"""Recurrent layers, unrolled in time: RNN, LSTM and GRU with PyTorch's parameters.

Each layer and direction has weight_ih_l{k} (gates * hidden, input), weight_hh_l{k}
(gates * hidden, hidden), bias_ih_l{k} and bias_hh_l{k} (a `_reverse` suffix for the
backward direction), in PyTorch's gate order, so a torch state_dict loads as it is:

    RNN:   h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)                  (or relu)
    LSTM:  i, f, g, o = split(x W_ih^T + b_ih + h W_hh^T + b_hh, 4)
           c' = sigmoid(f) * c + sigmoid(i) * tanh(g);    h' = sigmoid(o) * tanh(c')
    GRU:   r, z, n from x W_ih^T + b_ih (three parts) and h W_hh^T + b_hh (three parts):
           r = sigmoid(x_r + h_r);  z = sigmoid(x_z + h_z);  n = tanh(x_n + r * h_n)
           h' = (1 - z) * n + z * h

The loop over time is written with ordinary differentiable ops, so autograd unrolls it: the
graph of a 28-step sequence is 28 copies of the cell, and backpropagation through time is
plain backward. The input's part of every step (x W_ih^T) is one matrix product for the
whole sequence, before the loop.

Variable lengths: give a PackedSequence (nn.utils.rnn.pack_padded_sequence). A sequence's
steps past its length leave its state unchanged and output zeros (a mask), so its final
state is the one after its own last step, as in PyTorch.
"""

from __future__ import annotations

import math

import numpy as np

from minigrad import checks
from minigrad.nn import functional as F
from minigrad.nn import init
from minigrad.nn.module import Module, Parameter
from minigrad.nn.utils.rnn import PackedSequence
from minigrad.ops import fast, recurrent
from minigrad.ops.elementwise import where
from minigrad.ops.shape import cat, stack
from minigrad.tensor import empty, tensor, zeros

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


class _RNNBase(Module):
    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None):
        super().__init__()
        self.mode = mode
        name = type(self).__name__
        input_size = checks.integer(name, "input_size", input_size, minimum=1)
        hidden_size = checks.integer(name, "hidden_size", hidden_size, minimum=1)
        num_layers = checks.integer(name, "num_layers", num_layers, minimum=1)
        if not 0 <= checks.number(name, "dropout", dropout) < 1:
            raise ValueError(f"{type(self).__name__}: dropout must be in [0, 1), got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, dropout
        self.bidirectional = bidirectional
        directions = 2 if bidirectional else 1
        gates = _GATES[self.mode] * hidden_size
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                setattr(self, f"weight_ih{suffix}",
                        Parameter(empty(gates, width, device=device, dtype=dtype)))
                setattr(self, f"weight_hh{suffix}",
                        Parameter(empty(gates, hidden_size, device=device, dtype=dtype)))
                if bias:
                    setattr(self, f"bias_ih{suffix}",
                            Parameter(empty(gates, device=device, dtype=dtype)))
                    setattr(self, f"bias_hh{suffix}",
                            Parameter(empty(gates, device=device, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.hidden_size)  # every weight and bias: U(-b, b), as PyTorch
        for parameter in self.parameters():
            init.uniform_(parameter, -bound, bound)

    def _cell(self, x_part, h, c, w_hh, b_hh):
        """One step: x_part = x W_ih^T + b_ih for this step; returns (h', c') (the cell's
        arithmetic is ops/recurrent.py's, shared with the fused layer's formula)."""
        return recurrent.cell(self.mode, x_part, h, c, w_hh, b_hh)

    def _direction(self, x, h, c, suffix: str, reverse: bool, mask):
        """Run one layer in one direction over x (T, B, F); returns (outputs (T, B, H), h, c)."""
        steps, batch = x.shape[:2]
        w_ih, w_hh = getattr(self, f"weight_ih{suffix}"), getattr(self, f"weight_hh{suffix}")
        b_ih = getattr(self, f"bias_ih{suffix}") if self.bias else None
        b_hh = getattr(self, f"bias_hh{suffix}") if self.bias else None
        x_parts = F.linear(x.reshape(steps * batch, -1), w_ih, b_ih).reshape(steps, batch, -1)
        outputs = [None] * steps
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            h_new, c_new = self._cell(x_parts[t], h, c, w_hh, b_hh)
            if mask is None:
                h, c = h_new, c_new
                outputs[t] = h
            else:  # a finished sequence keeps its state and outputs zeros
                running = mask[t]
                h = where(running, h_new, h)
                c = where(running, c_new, c) if c is not None else None
                outputs[t] = where(running, h_new, 0.0)
        return stack(outputs), h, c

    def _fused_direction(self, fused, running, x, h, c, suffix: str, reverse: bool, mask):
        """What _direction computes, by a fast path that runs the whole direction, its input's
        GEMM included, as one Function (ops/fast/cpu_rnn.py), which gives the sequence of
        states."""
        steps, batch = x.shape[:2]
        w_ih, w_hh = getattr(self, f"weight_ih{suffix}"), getattr(self, f"weight_hh{suffix}")
        if self.bias:
            b_ih, b_hh = getattr(self, f"bias_ih{suffix}"), getattr(self, f"bias_hh{suffix}")
        else:  # zeros that want no gradient
            b_ih = b_hh = zeros(w_hh.shape[0], dtype=x.dtype, device=x.device)
        c0 = c if c is not None else zeros(batch, self.hidden_size, dtype=x.dtype,
                                           device=x.device)
        states = fused.apply(x, h, c0, w_ih, w_hh, b_ih, b_hh, mode=self.mode, reverse=reverse,
                             running=running)
        last = 0 if reverse else steps - 1  # the state after the direction's final step
        outputs = states[:, 0]  # (T, B, H)
        if mask is not None:  # a finished sequence outputs zeros (its state is kept)
            outputs = where(mask, outputs, 0.0)
        c_n = states[last, 1] if self.mode == "LSTM" else None
        return outputs, states[last, 0], c_n

    def forward(self, input, hx=None):  # noqa: A002
        packed = isinstance(input, PackedSequence)
        lengths = input.lengths if packed else None
        x = input.data if packed else input
        unbatched = not packed and x.ndim == 2
        if unbatched:
            x = x.unsqueeze(1)
        elif self.batch_first and not packed:
            x = x.transpose(0, 1)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            given = tuple((input.data if packed else input).shape)
            raise ValueError(f"{self!r}: expected input of size {self.input_size} in its last "
                             f"dim, (T, B, {self.input_size}) or batch_first (B, T, "
                             f"{self.input_size}), got shape {given}")
        steps, batch = x.shape[:2]
        directions = 2 if self.bidirectional else 1
        h0, c0 = self._initial_state(hx, batch, x, unbatched)
        mask = running = None
        if lengths is not None:
            running = lengths.numpy()[None, :] > np.arange(steps)[:, None]  # (T, B)
            mask = tensor(running[:, :, None], device=x.device)
        # the reference (the unrolled loop of _direction), unless a fast path takes the layer
        fused = fast.select(fast.RECURRENCE, x, {"dtype": x.dtype}, mode=self.mode)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                k = layer * directions + direction
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                state = (h0[k], None if c0 is None else c0[k])
                if fused is fast.RECURRENCE:
                    out, h, c = self._direction(x, *state, suffix, direction == 1, mask)
                else:
                    out, h, c = self._fused_direction(fused, running, x, *state, suffix,
                                                      direction == 1, mask)
                outputs.append(out)
                h_n.append(h)
                c_n.append(c)
            x = outputs[0] if directions == 1 else cat(outputs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        h_n = stack(h_n)
        state = (h_n, stack(c_n)) if self.mode == "LSTM" else h_n
        if packed:
            return PackedSequence(x, lengths), state
        if unbatched:
            x = x.squeeze(1)
            state = tuple(s.squeeze(1) for s in state) if self.mode == "LSTM" else \
                state.squeeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        return x, state

    def _initial_state(self, hx, batch: int, x, unbatched: bool):
        layers = self.num_layers * (2 if self.bidirectional else 1)
        shape = (layers, batch, self.hidden_size)
        if hx is None:
            h0 = zeros(*shape, dtype=x.dtype, device=x.device)
            return h0, (h0 if self.mode == "LSTM" else None)
        states = hx if self.mode == "LSTM" else (hx,)
        if self.mode == "LSTM" and (not isinstance(hx, tuple) or len(hx) != 2):
            raise ValueError(f"{self!r}: hx must be a pair (h_0, c_0)")
        checked = []
        for state in states:
            state = state.unsqueeze(1) if unbatched else state
            if tuple(state.shape) != shape:
                raise ValueError(f"{self!r}: expected an initial state of shape {shape}, got "
                                 f"{tuple(state.shape)}")
            checked.append(state)
        return checked[0], (checked[1] if self.mode == "LSTM" else None)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text + ("" if self.bias else ", bias=False")


class RNN(_RNNBase):
    """Elman RNN: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (nonlinearity='relu': relu)."""

    def __init__(self, *args, nonlinearity: str = "tanh", **kwargs):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", *args, **kwargs)
        self.nonlinearity = nonlinearity


class LSTM(_RNNBase):
    """Long short-term memory: input, forget, cell and output gates (PyTorch's order)."""

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)


class GRU(_RNNBase):
    """Gated recurrent unit: reset, update and new gates (PyTorch's order)."""

    def __init__(self, *args, **kwargs):
        super().__init__("GRU", *args, **kwargs)
