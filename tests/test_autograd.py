"""The backward pass: depth, reuse, accumulation, freeing, grad mode and aliasing."""

import gc
import weakref

import numpy as np
import pytest
from helpers import DEVICES, requires_torch

import minigrad as mg
from minigrad import autograd


def test_backward_through_a_chain_of_20000_ops_needs_no_recursion():
    x = mg.tensor(1.0, dtype=mg.float64, requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001**20_000, rel=1e-9)


def test_gradient_of_a_tensor_used_twice_is_the_sum_of_both_paths():
    # a = x*x; b = a + a; c = b*b = 4 x^4, so dc/dx = 16 x^3
    values = np.array([0.5, -1.5, 2.0])
    x = mg.tensor(values, requires_grad=True)
    a = x * x
    b = a + a
    c = b * b
    c.backward(mg.ones_like(c))
    np.testing.assert_allclose(x.grad.numpy(), 16 * values**3)


@requires_torch
def test_gradient_of_reused_tensors_matches_torch():
    import torch

    values = np.random.default_rng(1).standard_normal((3, 4))
    upstream = np.random.default_rng(2).standard_normal((3, 4))

    def graph(x):
        a = x * x
        b = a + a
        return b * b + a.exp() * x

    x = mg.tensor(values, requires_grad=True)
    graph(x).backward(mg.tensor(upstream))
    tx = torch.tensor(values, requires_grad=True)
    graph(tx).backward(torch.tensor(upstream))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_leaf_gradients_accumulate_over_backward_calls():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])


def test_saved_arrays_are_freed_after_backward_and_a_second_backward_is_refused():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_the_graph_keeps_only_the_arrays_a_backward_saved_and_frees_them_after_it():
    """A node links to the nodes of its inputs, not to the input Tensors: an intermediate
    result that no backward needs (the input of exp) is freed as soon as the program drops it;
    one that a backward saved (exp's output) lives until its gradient has passed."""
    x = mg.randn(100, 100, dtype=mg.float64, requires_grad=True)
    doubled = x * 2
    hidden = doubled.exp()
    loss = hidden.sum()
    doubled_array, hidden_array = weakref.ref(doubled.array), weakref.ref(hidden.array)
    del doubled, hidden
    gc.collect()
    assert doubled_array() is None  # no backward needs it
    assert hidden_array() is not None  # exp's backward does
    loss.backward()
    gc.collect()
    assert hidden_array() is None
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(2 * x.numpy()))


def test_no_grad_records_nothing_and_restores_the_mode():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with mg.no_grad():
        y = x * 2
        assert not mg.is_grad_enabled()
        with mg.enable_grad():
            z = x * 2
    assert mg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None


def test_no_grad_as_a_decorator_and_after_an_exception():
    @mg.no_grad()
    def double(t):
        return t * 2

    x = mg.tensor([1.0], requires_grad=True)
    assert not double(x).requires_grad
    with pytest.raises(ZeroDivisionError), mg.no_grad():
        raise ZeroDivisionError
    assert mg.is_grad_enabled()
    with mg.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad


def test_only_inputs_that_require_grad_get_one():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    w = mg.tensor([3.0, 4.0])
    (x * w).sum().backward()
    assert w.grad is None
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])


def test_non_leaf_gradients_are_kept_only_when_asked():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    hidden = x * 2
    kept = x * 3
    kept.retain_grad()
    (hidden * kept).sum().backward()
    assert hidden.grad is None
    np.testing.assert_allclose(kept.grad.numpy(), [2.0, 4.0])


def test_backward_of_several_outputs_at_once():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    autograd.backward([x * 2, x * x], [mg.tensor([1.0, 1.0]), mg.tensor([0.5, 0.5])])
    np.testing.assert_allclose(x.grad.numpy(), [2 + 1, 2 + 2])


def test_leaf_gradients_do_not_alias_the_seed_or_each_other():
    a = mg.tensor([1.0, 2.0], requires_grad=True)
    b = mg.tensor([3.0, 4.0], requires_grad=True)
    seed = mg.tensor([5.0, 6.0])
    (a + b).backward(seed)
    a.grad.zero_()
    np.testing.assert_array_equal(b.grad.numpy(), [5.0, 6.0])
    np.testing.assert_array_equal(seed.numpy(), [5.0, 6.0])


def test_detach_shares_data_but_leaves_the_graph():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    assert np.shares_memory(d.array, x.array)


@pytest.mark.parametrize("device", DEVICES)
def test_float32_stays_float32_through_scalars_and_gradients(device):
    x = mg.randn(3, 4, device=device, requires_grad=True)
    y = ((x * 0.5 + np.float64(2.0)) / 3 - 1) ** 2
    y = y * mg.tensor(3, device=device)  # an integer tensor never promotes to float64
    assert y.dtype == mg.float32
    y.sum().backward()
    assert x.grad.dtype == mg.float32 and x.grad.device == device


def test_cast_passes_the_gradient_back_in_the_input_dtype():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = x.double() * 3
    assert y.dtype == mg.float64
    y.sum().backward()
    assert x.grad.dtype == mg.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_an_op_whose_backward_returns_a_wrong_shape_is_caught():
    class Broken(mg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            return grad.sum()

    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Broken.backward returned a gradient of shape \(\)"):
        Broken.apply(x).sum().backward()


def test_grad_mode_is_per_thread():
    """One thread's no_grad block leaves another thread recording (PyTorch keeps grad mode
    per thread); each thread starts with gradients on."""
    import threading

    inside, release = threading.Event(), threading.Event()
    seen = {}

    def evaluate():
        with mg.no_grad():
            inside.set()
            release.wait(5)
            seen["evaluating thread"] = mg.is_grad_enabled()

    worker = threading.Thread(target=evaluate)
    worker.start()
    assert inside.wait(5)
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()  # the main thread still records while the other is in no_grad
    release.set()
    worker.join(5)
    assert mg.is_grad_enabled() and y.requires_grad and seen["evaluating thread"] is False
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])

    started_with = []
    with mg.no_grad():
        fresh = threading.Thread(target=lambda: started_with.append(mg.is_grad_enabled()))
        fresh.start()
        fresh.join(5)
    assert started_with == [True]


def test_inference_mode_records_nothing_and_restores_the_mode():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with mg.inference_mode():
        assert not (x * 2).requires_grad and not mg.is_grad_enabled()
        with mg.inference_mode(False):
            assert (x * 2).requires_grad
    assert mg.is_grad_enabled()

    @mg.inference_mode()
    def predict(t):
        return t * 3

    assert not predict(x).requires_grad


@requires_torch
def test_autograd_grad_returns_gradients_without_touching_dot_grad_as_pytorch():
    import torch

    results = []
    for library in (mg, torch):
        x = library.tensor([1.0, 2.0, 3.0], dtype=library.float64, requires_grad=True)
        w = library.tensor([0.5, -1.0, 2.0], dtype=library.float64, requires_grad=True)
        unused = library.tensor([1.0], dtype=library.float64, requires_grad=True)
        h = (x * w).exp()
        outputs = [(h * h).sum(), h]
        upstream = [library.tensor(1.5, dtype=library.float64),
                    library.tensor([1.0, -2.0, 0.5], dtype=library.float64)]
        gx, gh, gu = library.autograd.grad(outputs, [x, h, unused], upstream, allow_unused=True)
        assert gu is None and x.grad is None and w.grad is None
        results.append((gx.numpy(), gh.numpy()))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_autograd_grad_says_what_it_cannot_do():
    x = mg.tensor([1.0], requires_grad=True)
    y = mg.tensor([2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="grad: input 0 was not used to compute the outputs"):
        mg.autograd.grad((x * 2).sum(), [y])
    with pytest.raises(RuntimeError, match="grad: input 0 does not require grad"):
        mg.autograd.grad((x * 2).sum(), mg.tensor([1.0]))


@pytest.mark.parametrize("op, kept", [
    (lambda a, c: a * 2.0, False),
    (lambda a, c: 2.0 * a, False),
    (lambda a, c: a / 3.0, False),
    (lambda a, c: a * c, False),  # a's gradient reads c, not a
    (lambda a, c: a @ c.reshape(4, 3), False),
    (lambda a, c: a ** 2.0, True),  # the gradient of a**2 reads a
    (lambda a, c: mg.maximum(a, c), False),  # a one-byte share, not a
    (lambda a, c: a.sin(), True),
    (lambda a, c: a * a.detach().requires_grad_(), True),  # the leaf's gradient reads a
])
def test_a_node_keeps_only_the_arrays_its_backward_reads(op, kept):
    """An intermediate that no backward reads is freed as soon as no Python name holds it,
    however long the graph behind it lives (issue 12: a chain of 20,000 x * 1.0001 once kept
    every intermediate)."""
    x = mg.randn(3, 4, requires_grad=True)
    c = mg.randn(3, 4)
    a = x * 1.5  # the intermediate whose fate is watched
    watched = weakref.ref(a.array)
    out = op(a, c)
    del a
    gc.collect()
    assert (watched() is not None) == kept
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == (3, 4)
