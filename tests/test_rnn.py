"""RNN, LSTM and GRU against PyTorch's with the same state_dict: outputs, final states and
every gradient, for layers, directions, batch_first, biases and variable lengths; and
central differences through the time steps. Each runs three ways (`path`): the CPU's fused
recurrence (ops/fast/cpu_rnn.py) with its compiled cells, the same with their NumPy twins
(the kernels off), and the reference's unrolled graph (the fast paths off)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from helpers import DEVICES, kernel_threads, requires_torch, torch
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.nn as nn
from minigrad.kernels import cpu as cpu_kernels
from minigrad.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from minigrad.ops import fast
from minigrad.ops.fast import cpu_rnn

PATHS = ["fused", "fused-numpy", "unrolled"]


@contextlib.contextmanager
def recurrence(path: str):
    """Run the layers inside by one of the three paths."""
    if path == "unrolled":
        fast.enable(False)
    elif path == "fused-numpy":
        cpu_kernels.enable(False)
    try:
        yield
    finally:
        fast.enable(True)
        cpu_kernels.enable(True)

KINDS = {"rnn_tanh": ("RNN", dict(nonlinearity="tanh")),
         "rnn_relu": ("RNN", dict(nonlinearity="relu")),
         "lstm": ("LSTM", {}), "gru": ("GRU", {})}


@st.composite
def configs(draw):
    return dict(num_layers=draw(st.integers(1, 2)), bidirectional=draw(st.booleans()),
                batch_first=draw(st.booleans()), bias=draw(st.booleans()))


def _pair(kind, config, dtype, device="cpu"):
    name, extra = KINDS[kind]
    theirs = getattr(torch().nn, name)(3, 4, **config, **extra).to(
        torch().float64 if dtype == np.float64 else torch().float32)
    ours = getattr(nn, name)(3, 4, **config, **extra)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    ours.to(device)
    if dtype == np.float64:
        ours.double()
    return ours, theirs


def _states(state):
    return list(state) if isinstance(state, tuple) else [state]


# the fused recurrence is a CPU fast path; CUDA runs the unrolled graph
DEVICE_PATHS = [("cpu", path) for path in PATHS] + [(d, "unrolled") for d in DEVICES[1:]]


@requires_torch
@pytest.mark.parametrize("device, path", DEVICE_PATHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("kind", list(KINDS))
@given(config=configs(), seed=st.integers(0, 1000), given_state=st.booleans())
def test_outputs_states_and_gradients_match_torch(kind, dtype, device, path, config, seed,
                                                  given_state):
    with recurrence(path):
        _outputs_states_and_gradients_match_torch(kind, dtype, device, config, seed,
                                                  given_state)


def _outputs_states_and_gradients_match_torch(kind, dtype, device, config, seed, given_state):
    t = torch()
    ours, theirs = _pair(kind, config, dtype, device)
    rng = np.random.default_rng(seed)
    steps, batch = 5, 2
    shape = (batch, steps, 3) if config["batch_first"] else (steps, batch, 3)
    x = rng.standard_normal(shape).astype(dtype)
    layers = config["num_layers"] * (2 if config["bidirectional"] else 1)
    states = [rng.standard_normal((layers, batch, 4)).astype(dtype)
              for _ in range(2 if kind == "lstm" else 1)]
    x_ours = mg.tensor(x, requires_grad=True, device=device)
    x_theirs = t.tensor(x, requires_grad=True)
    h_ours = [mg.tensor(s, requires_grad=True, device=device) for s in states]
    h_theirs = [t.tensor(s, requires_grad=True) for s in states]
    wrap = tuple if kind == "lstm" else (lambda hs: hs[0])
    out, state = ours(x_ours, wrap(h_ours) if given_state else None)
    out_t, state_t = theirs(x_theirs, wrap(h_theirs) if given_state else None)
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.numpy(), out_t.detach().numpy(), **tol)
    for a, b in zip(_states(state), _states(state_t)):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), **tol)
    upstream = [rng.standard_normal(o.shape).astype(dtype) for o in [out_t, *_states(state_t)]]
    mg.autograd.backward([out, *_states(state)], [mg.tensor(u, device=device) for u in upstream])
    t.autograd.backward([out_t, *_states(state_t)], [t.tensor(u) for u in upstream])
    np.testing.assert_allclose(x_ours.grad.numpy(), x_theirs.grad.numpy(), **tol)
    if given_state:
        for a, b in zip(h_ours, h_theirs):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **tol)
    theirs_grads = dict(theirs.named_parameters())
    for name, parameter in ours.named_parameters():
        np.testing.assert_allclose(parameter.grad.numpy(), theirs_grads[name].grad.numpy(),
                                   err_msg=name, **tol)


@requires_torch
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", list(KINDS))
@given(config=configs(), seed=st.integers(0, 1000), sort=st.booleans())
def test_packed_sequences_of_different_lengths_match_torch(kind, path, config, seed, sort):
    with recurrence(path):
        _packed_sequences_match_torch(kind, config, seed, sort)


def _packed_sequences_match_torch(kind, config, seed, sort):
    t = torch()
    ours, theirs = _pair(kind, config, np.float64)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 6, 3)
    if sort:
        lengths = np.sort(lengths)[::-1].copy()
    lengths[0] = 5
    shape = (3, 5, 3) if config["batch_first"] else (5, 3, 3)
    x = rng.standard_normal(shape)
    x_ours = mg.tensor(x, requires_grad=True)
    x_theirs = t.tensor(x, requires_grad=True)
    packed = pack_padded_sequence(x_ours, lengths, config["batch_first"], enforce_sorted=sort)
    packed_t = t.nn.utils.rnn.pack_padded_sequence(x_theirs, t.tensor(lengths),
                                                   config["batch_first"], enforce_sorted=sort)
    out, state = ours(packed)
    out_t, state_t = theirs(packed_t)
    padded, got_lengths = pad_packed_sequence(out, config["batch_first"])
    padded_t, _ = t.nn.utils.rnn.pad_packed_sequence(out_t, config["batch_first"])
    assert got_lengths.tolist() == lengths.tolist()
    np.testing.assert_allclose(padded.numpy(), padded_t.detach().numpy(), rtol=1e-9, atol=1e-10)
    for a, b in zip(_states(state), _states(state_t)):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-9, atol=1e-10)
    upstream = [rng.standard_normal(o.shape) for o in [padded_t, *_states(state_t)]]
    mg.autograd.backward([padded, *_states(state)], [mg.tensor(u) for u in upstream])
    t.autograd.backward([padded_t, *_states(state_t)], [t.tensor(u) for u in upstream])
    np.testing.assert_allclose(x_ours.grad.numpy(), x_theirs.grad.numpy(), rtol=1e-9,
                               atol=1e-10)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_gradients_through_time_match_central_differences(kind, path):
    with recurrence(path):
        _gradients_through_time_match_central_differences(kind)


def _gradients_through_time_match_central_differences(kind):
    name, extra = KINDS[kind]
    mg.manual_seed(0)
    layer = getattr(nn, name)(2, 3, num_layers=2, bidirectional=True, **extra).double()
    x = mg.tensor(np.random.default_rng(0).standard_normal((4, 2, 2)), requires_grad=True)

    def loss(x):
        out, _ = layer(x)
        return (out * out).sum()

    assert mg.gradcheck(loss, [x])
    # and a recurrent weight, entry by entry: central differences against backward
    layer.zero_grad()
    loss(x).backward()
    weight = layer.weight_hh_l0_reverse
    for index in [(0, 0), (2, 1), (weight.shape[0] - 1, 2)]:
        with mg.no_grad():
            weight[index] += 1e-6
            above = loss(x).item()
            weight[index] -= 2e-6
            below = loss(x).item()
            weight[index] += 1e-6
        assert weight.grad.numpy()[index] == pytest.approx((above - below) / 2e-6, rel=1e-5,
                                                           abs=1e-8)


def _run_layer(layer, x, lengths, hx, upstream_seed, path):
    """Outputs, states and every gradient of one forward and backward by `path`."""
    layer.zero_grad()
    with recurrence(path):
        mg.manual_seed(7)  # the same dropout masks both ways
        x_t = mg.tensor(x, requires_grad=True)
        hx_t = [mg.tensor(h, requires_grad=True) for h in hx] if hx else None
        given = None if hx_t is None else (tuple(hx_t) if len(hx_t) == 2 else hx_t[0])
        batch_first = layer.batch_first
        inputs = x_t if lengths is None else pack_padded_sequence(x_t, lengths, batch_first,
                                                                  enforce_sorted=False)
        out, state = layer(inputs, given)
        if lengths is not None:
            out, _ = pad_packed_sequence(out, batch_first)
        outputs = [out, *_states(state)]
        rng = np.random.default_rng(upstream_seed)
        upstream = [mg.tensor(rng.standard_normal(o.shape).astype(x.dtype)) for o in outputs]
        mg.autograd.backward(outputs, upstream)
        grads = [x_t.grad] + [h.grad for h in hx_t or []] + [p.grad for p in layer.parameters()]
        return [o.numpy() for o in outputs] + [g.numpy() for g in grads]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("path", ["fused", "fused-numpy"])
@given(config=configs(), seed=st.integers(0, 1000), packed=st.booleans(),
       given_state=st.booleans(), dropout=st.sampled_from([0.0, 0.5]),
       dtype=st.sampled_from([np.float32, np.float64]), threads=st.sampled_from([1, 2, 3]))
def test_the_fused_recurrence_matches_the_unrolled_reference(kind, path, config, seed, packed,
                                                             given_state, dropout, dtype,
                                                             threads):
    """...on 1-3 threads, each taking its rows of the batch through every step."""
    name, extra = KINDS[kind]
    rng = np.random.default_rng(seed)
    mg.manual_seed(seed)
    layer = getattr(nn, name)(3, 5, dropout=dropout, **config, **extra)
    if dtype == np.float64:
        layer.double()
    steps, batch = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    x = rng.standard_normal((batch, steps, 3) if config["batch_first"] else
                            (steps, batch, 3)).astype(dtype)
    lengths = rng.integers(1, steps + 1, batch) if packed else None
    layers = config["num_layers"] * (2 if config["bidirectional"] else 1)
    hx = ([rng.standard_normal((layers, batch, 5)).astype(dtype)
           for _ in range(2 if kind == "lstm" else 1)] if given_state else None)
    with kernel_threads(threads):
        ours = _run_layer(layer, x, lengths, hx, seed, path)
    reference = _run_layer(layer, x, lengths, hx, seed, "unrolled")
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    assert len(ours) == len(reference)
    for k, (a, b) in enumerate(zip(ours, reference)):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a, b, err_msg=f"result {k}", **tol)


def test_the_fused_recurrence_is_one_node_per_layer_and_direction():
    layer = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    x = mg.tensor(np.ones((6, 2, 3), dtype=np.float32), requires_grad=True)
    calls = []
    original = cpu_rnn.RecurrenceCPU.forward

    def counting(ctx, *arrays, **settings):
        calls.append(settings["reverse"])
        return original(ctx, *arrays, **settings)

    cpu_rnn.RecurrenceCPU.forward = staticmethod(counting)
    try:
        out, _ = layer(x)
    finally:
        cpu_rnn.RecurrenceCPU.forward = staticmethod(original)
    assert calls == [False, True, False, True]  # 2 layers x 2 directions, no step-by-step ops
    out.sum().backward()
    assert x.grad is not None and np.isfinite(x.grad.numpy()).all()


def test_wrong_inputs_are_named():
    lstm = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"expected input of size 3 in its last dim"):
        lstm(mg.randn(5, 2, 7))
    with pytest.raises(ValueError, match=r"expected an initial state of shape \(2, 2, 4\)"):
        lstm(mg.randn(5, 2, 3), (mg.zeros(1, 2, 4), mg.zeros(1, 2, 4)))
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        pack_padded_sequence(mg.randn(4, 2, 3), [2, 4])
    with pytest.raises(ValueError, match="every length must be >= 1"):
        pack_padded_sequence(mg.randn(4, 2, 3), [4, 0])
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    out, state = nn.GRU(3, 4)(mg.randn(5, 3))  # unbatched (T, F)
    assert out.shape == (5, 4) and state.shape == (1, 4)
