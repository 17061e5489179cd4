"""The cell arithmetic of RNN, LSTM and GRU on Tensors, one step: what nn.RNN's reference
loop runs (nn/rnn.py), and, through `recurrence_formula`, what a second derivative of the
fused CPU layer (ops/fast/cpu_rnn.py) differentiates."""

from __future__ import annotations

from minigrad.ops.elementwise import where
from minigrad.ops.linalg import linear
from minigrad.ops.shape import stack
from minigrad.tensor import Tensor


def cell(mode: str, x_part, h, c, w_hh, b_hh):
    """One step: x_part = x W_ih^T + b_ih for this step; returns (h', c') (c' None but for
    the LSTM). Gates in PyTorch's order: LSTM i, f, g, o; GRU r, z, n."""
    return gates(mode, x_part, linear(h, w_hh, b_hh), h, c)


def gates(mode: str, x_part, h_part, h, c):
    """The step from the two products, x_part = x W_ih^T + b_ih and h_part = h W_hh^T + b_hh
    (what a quantized layer computes its own way); returns (h', c')."""
    hidden = h.shape[-1]
    if mode == "LSTM":
        gates = x_part + h_part
        i, f = gates[:, :hidden].sigmoid(), gates[:, hidden:2 * hidden].sigmoid()
        g, o = gates[:, 2 * hidden:3 * hidden].tanh(), gates[:, 3 * hidden:].sigmoid()
        c = f * c + i * g
        return o * c.tanh(), c
    if mode == "GRU":
        r = (x_part[:, :hidden] + h_part[:, :hidden]).sigmoid()
        z = (x_part[:, hidden:2 * hidden] + h_part[:, hidden:2 * hidden]).sigmoid()
        n = (x_part[:, 2 * hidden:] + r * h_part[:, 2 * hidden:]).tanh()
        return (1 - z) * n + z * h, None
    pre = x_part + h_part
    return (pre.tanh() if mode == "RNN_TANH" else pre.relu()), None


def recurrence_formula(x, h0, c0, w_ih, w_hh, b_ih, b_hh, *, mode, reverse, running):
    """The fused layer's output, every step's state (T, 2 for the LSTM's h and c else 1, B, H),
    as a loop of `cell` steps; a finished sequence (running False) keeps its state."""
    steps, batch = x.shape[:2]
    x_parts = linear(x.reshape(steps * batch, -1), w_ih, b_ih).reshape(steps, batch, -1)
    h, c = h0, (c0 if mode == "LSTM" else None)
    states = [None] * steps
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        h_new, c_new = cell(mode, x_parts[t], h, c, w_hh, b_hh)
        if running is None:
            h, c = h_new, c_new
        else:
            keep = Tensor(running[t][:, None].astype(bool))
            h = where(keep, h_new, h)
            c = where(keep, c_new, c) if c is not None else None
        states[t] = stack([h, c]) if c is not None else h[None]
    return stack(states)
