"""A whole recurrent layer, one direction, as one Function: the CPU fast path of RNN, LSTM and
GRU (minigrad/nn/rnn.py, whose unrolled loop of ordinary ops is the reference).

The reference records ~15 graph nodes per time step and its backward walks them all. Here the
forward runs the loop itself: the input's part of every step (x W_ih^T) is one GEMM over all
steps, and per step there is one GEMM for the hidden part (h W_hh^T) and one pass of gate
arithmetic, which also adds the input part and the biases (a compiled kernel from
minigrad/kernels/cpu.py for float32, else the NumPy twin below, which does the same with NumPy
ops). It saves only what the backward needs: the activated gates, tanh(c) and the states.
Backpropagation through time is written out:

    LSTM, per step from the last:   dh = dh_out + dh_next    dc = dc_out + dc_next
        do = dh tanh(c)       dc += dh o (1 - tanh(c)^2)
        di = dc g   df = dc c_prev   dg = dc i   dc_next = dc f
        d_pre = (di i(1-i), df f(1-f), dg (1-g^2), do o(1-o))     dh_next = d_pre W_hh
    GRU:  h' = (1 - z) n + z h,  n = tanh(x_n + r h_n)
        dn = dh (1-z) (1-n^2)   dz = dh (h - n) z(1-z)   dr = dn h_n r(1-r)
        d_x = (dr, dz, dn)   d_h = (dr, dz, dn r)   dh_next = dh z + d_h W_hh
    RNN:  d_pre = dh (1 - h'^2) (tanh) or dh [h' > 0] (relu);   dh_next = d_pre W_hh

and after the loop each weight gradient is one GEMM over all steps, d_pre^T (T*B, G*H) @ the
previous states (T*B, H) for W_hh and @ x (T*B, F) for W_ih; the input's gradient is
d_pre @ W_ih, and each bias gradient a sum (one for both where they are the same: LSTM, RNN).
A sequence that has ended (a packed batch: `running[t, b]` false) keeps its state: its row has
no gate gradient, and dh and dc go straight through to the step before.

The rows of the batch never meet inside the loop, so both loops share them out over threads
(kernels.run_split_blas), each thread taking its rows through every step with BLAS held to one
thread: the per-step GEMMs (128 x 128 by 128 x 512 for an LSTM of 128) are too small for BLAS's
own two threads to pay, and between them the cell kernel leaves BLAS's workers to fall asleep,
so the two loops ran 1.2-1.3x faster this way on two cores. The GEMMs over all steps keep
BLAS's threads.

The output is the sequence of states, (T, 1, B, H) or, for the LSTM, (T, 2, B, H) holding h
then c (each step's state contiguous), so that the layer takes outputs, h_n and c_n from it
with ordinary (differentiable) slices.
"""

from __future__ import annotations

import numpy as np

from minigrad.autograd import Function
from minigrad.kernels import cpu as kernels
from minigrad.ops.recurrent import recurrence_formula

# ---------------------------------------------------------------------------------------------
# the NumPy twins of the compiled cell kernels: the same arguments, the same results


def _sigmoid(x):
    return 0.5 * np.tanh(0.5 * x) + 0.5  # exactly sigmoid, and stable both ways


def lstm_step(h_part, x_part, bias, c_prev, h_prev, running, gates, c_out, h_out, tanh_c):
    hidden = c_prev.shape[1]
    pre = h_part + x_part + bias
    gates[:, :2 * hidden] = _sigmoid(pre[:, :2 * hidden])
    gates[:, 2 * hidden:3 * hidden] = np.tanh(pre[:, 2 * hidden:3 * hidden])
    gates[:, 3 * hidden:] = _sigmoid(pre[:, 3 * hidden:])
    i, f, g, o = (gates[:, k * hidden:(k + 1) * hidden] for k in range(4))
    keep = ~running.astype(bool)[:, None]
    c = np.where(keep, c_prev, f * c_prev + i * g)
    t = np.where(keep, 0, np.tanh(c))
    c_out[...], tanh_c[...], h_out[...] = c, t, np.where(keep, h_prev, o * t)


def lstm_step_backward(dh, dc, gates, c_prev, tanh_c, running, d_pre, dc_prev, dh_direct):
    hidden = dc.shape[1]
    i, f, g, o = (gates[:, k * hidden:(k + 1) * hidden] for k in range(4))
    run = running.astype(bool)[:, None]
    d_c = dc + dh * o * (1 - tanh_c * tanh_c)
    d_pre[:, :hidden] = d_c * g * i * (1 - i)
    d_pre[:, hidden:2 * hidden] = d_c * c_prev * f * (1 - f)
    d_pre[:, 2 * hidden:3 * hidden] = d_c * i * (1 - g * g)
    d_pre[:, 3 * hidden:] = dh * tanh_c * o * (1 - o)
    d_pre *= run
    dc_prev[...] = np.where(run, d_c * f, dc)
    dh_direct[...] = np.where(run, 0, dh)


def gru_step(x_part, b_ih, h_part, b_hh, h_prev, running, saved, h_out):
    hidden = h_prev.shape[1]
    x_part, h_part = x_part + b_ih, h_part + b_hh
    r = _sigmoid(x_part[:, :hidden] + h_part[:, :hidden])
    z = _sigmoid(x_part[:, hidden:2 * hidden] + h_part[:, hidden:2 * hidden])
    hn = h_part[:, 2 * hidden:]
    n = np.tanh(x_part[:, 2 * hidden:] + r * hn)
    saved[...] = np.concatenate([r, z, n, hn], axis=1)
    h_out[...] = np.where(running.astype(bool)[:, None], (1 - z) * n + z * h_prev, h_prev)


def gru_step_backward(dh, saved, h_prev, running, d_x, d_h, dh_direct):
    hidden = dh.shape[1]
    r, z, n, hn = (saved[:, k * hidden:(k + 1) * hidden] for k in range(4))
    run = running.astype(bool)[:, None]
    d_n = dh * (1 - z) * (1 - n * n) * run
    d_r = d_n * hn * r * (1 - r)
    d_z = dh * (h_prev - n) * z * (1 - z) * run
    d_x[...] = np.concatenate([d_r, d_z, d_n], axis=1)
    d_h[...] = np.concatenate([d_r, d_z, d_n * r], axis=1)
    dh_direct[...] = np.where(run, dh * z, dh)


def rnn_step(h_part, x_part, bias, h_prev, running, relu, h_out):
    pre = h_part + x_part + bias
    new = np.where(pre <= 0, 0, pre) if relu else np.tanh(pre)
    h_out[...] = np.where(running.astype(bool)[:, None], new, h_prev)


def rnn_step_backward(dh, h, running, relu, d_pre, dh_direct):
    run = running.astype(bool)[:, None]
    slope = ~(h <= 0) if relu else 1 - h * h
    d_pre[...] = np.where(run, dh * slope, 0)
    dh_direct[...] = np.where(run, 0, dh)


class _NumPyCells:
    lstm_step, lstm_step_backward = staticmethod(lstm_step), staticmethod(lstm_step_backward)
    gru_step, gru_step_backward = staticmethod(gru_step), staticmethod(gru_step_backward)
    rnn_step, rnn_step_backward = staticmethod(rnn_step), staticmethod(rnn_step_backward)


def cells(dtype):
    """The cell arithmetic for this dtype: the compiled kernels for float32 where they run,
    else their NumPy twins."""
    return kernels if kernels.available() and dtype == np.float32 else _NumPyCells


# ---------------------------------------------------------------------------------------------


class RecurrenceCPU(Function):
    """One layer, one direction, over x (T, B, F), from h0 (and c0, for the LSTM; zeros
    otherwise) with PyTorch's w_ih (G*H, F), w_hh (G*H, H), b_ih and b_hh (G*H,)."""

    formula = staticmethod(recurrence_formula)  # the reference's cells, for a 2nd derivative

    @staticmethod
    def supports(mode=None, dtype=None, **_):
        return mode in ("LSTM", "GRU", "RNN_TANH", "RNN_RELU") and dtype in (np.float32,
                                                                              np.float64)

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, *, mode, reverse, running):
        steps, batch, features = x.shape
        hidden, gates_width = h0.shape[1], w_hh.shape[0]
        lstm, gru = mode == "LSTM", mode == "GRU"
        run = (np.ones((steps, batch), dtype=np.uint8) if running is None
               else np.ascontiguousarray(running, dtype=np.uint8))
        cell = cells(x.dtype)
        x2 = x.reshape(steps * batch, features)  # (a copy if x is a strided view)
        x_parts = (x2 @ w_ih.T).reshape(steps, batch, -1)  # every step's input part: one GEMM
        w_t = w_hh.T  # (H, G*H): BLAS reads the transpose in place
        # (T, 2, B, H) for the LSTM (h, then c), (T, 1, B, H) else: every state contiguous
        states = np.empty((steps, 2 if lstm else 1, batch, hidden), dtype=x.dtype)
        # what the backward needs: the LSTM's activated gates and tanh(c); the GRU's r, z, n, h_n
        saved = np.empty((steps, batch, 4 * hidden), dtype=x.dtype) if lstm or gru else None
        tanh_c = np.empty((steps, batch, hidden), dtype=x.dtype) if lstm else None
        bias = None if gru else b_ih + b_hh  # both add to every step's gates: once here
        order = range(steps - 1, -1, -1) if reverse else range(steps)

        def sweep(lo, hi):  # rows lo:hi of the batch through every step
            rows = slice(lo, hi)
            h, c = h0[rows], (c0[rows] if lstm else None)
            h_part = np.empty((hi - lo, gates_width), dtype=x.dtype)
            for t in order:
                np.matmul(h, w_t, out=h_part)  # the hidden part: one GEMM per step
                if lstm:
                    cell.lstm_step(h_part, x_parts[t, rows], bias, c, h, run[t, rows],
                                   saved[t, rows], states[t, 1, rows], states[t, 0, rows],
                                   tanh_c[t, rows])
                    c = states[t, 1, rows]
                elif gru:
                    cell.gru_step(x_parts[t, rows], b_ih, h_part, b_hh, h, run[t, rows],
                                  saved[t, rows], states[t, 0, rows])
                else:
                    cell.rnn_step(h_part, x_parts[t, rows], bias, h, run[t, rows],
                                  mode == "RNN_RELU", states[t, 0, rows])
                h = states[t, 0, rows]

        # the batch's rows are independent: shared out over threads, each with its own GEMMs
        kernels.run_split_blas(sweep, kernels.blas_parts(
            batch, work=steps * batch * hidden * gates_width))
        extra = (saved, tanh_c) if lstm else (saved,) if gru else ()
        ctx.save_for_backward(x2, states, h0, c0, w_ih, w_hh, run, *extra)
        ctx.mode, ctx.reverse = mode, reverse
        return states

    @staticmethod
    def backward(ctx, grad):
        x2, states, h0, c0, w_ih, w_hh, run, *extra = ctx.saved_tensors
        mode, reverse = ctx.mode, ctx.reverse
        steps, _, batch, hidden = states.shape
        lstm, gru = mode == "LSTM", mode == "GRU"
        cell = cells(states.dtype)
        previous = (lambda t: t + 1) if reverse else (lambda t: t - 1)
        first = steps - 1 if reverse else 0
        gates_width = w_hh.shape[0]
        d_h_part = np.empty((steps, batch, gates_width), dtype=states.dtype)  # of h W_hh^T
        d_x = np.empty_like(d_h_part) if gru else d_h_part  # of x W_ih^T
        grad_h0 = np.empty((batch, hidden), dtype=states.dtype)
        grad_c0 = np.zeros_like(grad_h0)

        def sweep(lo, hi):  # rows lo:hi of the batch back through every step
            rows = slice(lo, hi)
            dh_next = np.zeros((hi - lo, hidden), dtype=states.dtype)
            dc_next, dh, dc, dh_direct = (np.zeros_like(dh_next) for _ in range(4))
            for t in (range(steps) if reverse else range(steps - 1, -1, -1)):
                np.add(grad[t, 0, rows], dh_next, out=dh)
                if lstm:
                    c_prev = (c0 if t == first else states[previous(t), 1])[rows]
                    np.add(grad[t, 1, rows], dc_next, out=dc)
                    cell.lstm_step_backward(dh, dc, extra[0][t, rows], c_prev,
                                            extra[1][t, rows], run[t, rows], d_h_part[t, rows],
                                            dc_next, dh_direct)
                elif gru:
                    h_prev = (h0 if t == first else states[previous(t), 0])[rows]
                    cell.gru_step_backward(dh, extra[0][t, rows], h_prev, run[t, rows],
                                           d_x[t, rows], d_h_part[t, rows], dh_direct)
                else:
                    cell.rnn_step_backward(dh, states[t, 0, rows], run[t, rows],
                                           mode == "RNN_RELU", d_h_part[t, rows], dh_direct)
                np.matmul(d_h_part[t, rows], w_hh, out=dh_next)
                dh_next += dh_direct
            grad_h0[rows] = dh_next
            if lstm:
                grad_c0[rows] = dc_next

        kernels.run_split_blas(sweep, kernels.blas_parts(
            batch, work=steps * batch * hidden * gates_width))
        needs = ctx.needs_input_grad
        d_x2 = d_x.reshape(-1, gates_width)
        grad_x = grad_w_ih = grad_w_hh = None
        if needs[0]:
            grad_x = (d_x2 @ w_ih).reshape(steps, batch, -1)
        if needs[3]:
            grad_w_ih = d_x2.T @ x2
        if needs[4]:  # sum over steps of d_pre^T h_prev: one GEMM
            h_prev_all = np.empty((steps, batch, hidden), dtype=states.dtype)
            h_prev_all[first] = h0
            if reverse:
                h_prev_all[:-1] = states[1:, 0]
            else:
                h_prev_all[1:] = states[:-1, 0]
            grad_w_hh = d_h_part.reshape(-1, gates_width).T @ h_prev_all.reshape(-1, hidden)
        grad_b_ih = d_x2.sum(axis=0) if needs[5] else None
        grad_b_hh = None
        if needs[6]:
            grad_b_hh = grad_b_ih if d_x is d_h_part and grad_b_ih is not None else \
                d_h_part.reshape(-1, gates_width).sum(axis=0)
        return (grad_x, grad_h0 if needs[1] else None, grad_c0 if needs[2] else None,
                grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh)
