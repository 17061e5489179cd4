"""In-place operations and version counters, against PyTorch's behaviour: `w -= lr * w.grad`
updates w, leaves that require grad refuse in-place changes while gradients are recorded,
in-place ops on tensors in the graph are differentiated, and a backward whose saved tensor was
changed in place refuses to run."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DEVICES, requires_torch, torch

import minigrad as mg
import minigrad.nn.functional as F


@requires_torch
def test_manual_sgd_with_in_place_updates_trains_step_for_step_as_pytorch():
    """The PyTorch tutorial's polynomial fit with autograd, only the import changed:
    `with torch.no_grad(): a -= learning_rate * a.grad` must update the parameters."""
    results = []
    grid = np.linspace(-np.pi, np.pi, 200)
    for library in (mg, torch()):
        x, y = library.tensor(grid), library.tensor(np.sin(grid))
        weights = [library.tensor(v, dtype=library.float64, requires_grad=True)
                   for v in (0.1, -0.2, 0.3, 0.05)]
        losses = []
        for _ in range(30):
            a, b, c, d = weights
            prediction = a + b * x + c * x**2 + d * x**3
            loss = ((prediction - y) ** 2).sum()
            losses.append(loss.item())
            loss.backward()
            with library.no_grad():
                for w in weights:
                    w -= 1e-6 * w.grad
                    w.grad = None
        results.append(losses)
    ours, theirs = results
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    assert ours[-1] < 0.75 * ours[0]  # it trains: with a rebinding `-=` the loss stays flat


@pytest.mark.parametrize("device", DEVICES)
def test_in_place_arithmetic_changes_the_tensor_itself(device):
    w = mg.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    view, before = w.detach(), mg.autograd.version(w.array)
    with mg.no_grad():
        w -= 0.5 * mg.ones(3, device=device)
        w *= 2
        w.add_(mg.ones(3, device=device), alpha=3)
        w /= 2
    assert w.requires_grad and w.is_leaf and mg.autograd.version(w.array) == before + 4
    np.testing.assert_allclose(w.numpy(), [2.0, 3.0, 4.0])
    np.testing.assert_allclose(view.numpy(), [2.0, 3.0, 4.0])  # the same memory


def test_a_leaf_that_requires_grad_refuses_in_place_changes_while_recording():
    w = mg.ones(3, requires_grad=True)
    for change in (lambda: w.__iadd__(1), lambda: w.mul_(2), lambda: w.fill_(0),
                   lambda: w.copy_(mg.zeros(3)), lambda: w.normal_(), lambda: w.clamp_(0, 1)):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used "
                                               "in an in-place operation"):
            change()
    np.testing.assert_array_equal(w.numpy(), [1.0, 1.0, 1.0])


@requires_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_in_place_ops_on_tensors_in_the_graph_are_differentiated_as_in_pytorch(dtype):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(4).astype(dtype)
    upstream = rng.standard_normal((3, 4)).astype(dtype)
    grads = []
    for library in (mg, torch()):
        x = library.tensor(a, requires_grad=True)
        y = library.tensor(b, requires_grad=True)
        h = x * 2
        h += y
        h.mul_(x)
        h.sub_(y, alpha=0.5)
        h /= 3
        h.clamp_(-1.0, 1.0)
        z = library.zeros(3, 4, dtype=h.dtype)
        z += h  # a tensor outside the graph joins it
        z.backward(library.tensor(upstream))
        grads.append((z.detach().numpy(), x.grad.numpy(), y.grad.numpy()))
    for ours, theirs in zip(*grads):
        assert ours.dtype == theirs.dtype
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


@requires_torch
def test_copy_and_fill_in_the_graph_send_the_gradient_to_the_source_only():
    grads = []
    for library in (mg, torch()):
        x = library.tensor([1.0, 2.0, 3.0], dtype=library.float64, requires_grad=True)
        s = library.tensor([4.0], dtype=library.float64, requires_grad=True)
        h = x * 1.0
        h.copy_(s * 2)  # broadcast
        (h * library.tensor([1.0, 2.0, 3.0], dtype=library.float64)).sum().backward()
        g = x * 1.0
        g.zero_()
        (g + x).sum().backward()
        grads.append((x.grad.numpy(), s.grad.numpy()))
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs)


@pytest.mark.parametrize("device", DEVICES)
def test_a_backward_whose_saved_tensor_was_changed_in_place_refuses_to_run(device):
    x = mg.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = x.exp()  # Exp saves its output, y's memory
    with mg.no_grad():
        y.mul_(2)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation: ExpBackward "
                                           r"saved an array of shape \(2,\) and dtype float32 "
                                           r"\(saved array 0\), which was changed in place 1 "
                                           r"time\(s\) since"):
        y.sum().backward()

    inputs = mg.tensor([[1.0, 2.0]], device=device)
    w = mg.ones(2, 3, device=device, requires_grad=True)
    out = inputs @ w  # saves inputs and w
    inputs[...] = 0  # a tensor outside the graph, changed by indexed assignment
    with pytest.raises(RuntimeError, match="MatMulBackward saved an array of shape"):
        out.sum().backward()


def test_an_optimizer_step_between_forward_and_backward_is_caught():
    model = mg.nn.Linear(3, 2)
    optimizer = mg.optim.SGD(model.parameters(), lr=0.1)
    x = mg.randn(4, 3, requires_grad=True)
    model(x).sum().backward()
    loss = model(x).sum()  # saves the weight for x's gradient
    optimizer.step()  # changes the weight in place
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_views_share_the_version_of_their_memory():
    x = mg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = x * 1.0
    flat = y.reshape(-1)  # a view of y's memory
    out = flat.exp().reshape(2, 2) * y  # Mul saves y, Exp saves its own output
    before = mg.autograd.version(y.array)
    with mg.no_grad():
        flat.add_(1.0)  # changes y through the view
    assert mg.autograd.version(y.array) == mg.autograd.version(flat.array) == before + 1
    with pytest.raises(RuntimeError, match="MulBackward saved an array of shape \\(2, 2\\)"):
        out.sum().backward()


def test_in_place_results_must_keep_the_shape_and_cast_to_the_dtype():
    counts = mg.tensor([1, 2, 3])
    with pytest.raises(RuntimeError, match="add_: result type float32 can't be cast to the "
                                           "desired output type int64"):
        counts += 1.5
    with pytest.raises(RuntimeError, match="div_: result type float32 can't be cast"):
        counts /= 2
    counts *= 2
    np.testing.assert_array_equal(counts.numpy(), [2, 4, 6])
    x = mg.zeros(3)
    with pytest.raises(RuntimeError, match=r"add_: output with shape minigrad.Size\(\[3\]\) "
                                           r"doesn't match the "
                                           r"broadcast shape \(2, 3\)"):
        x += mg.ones(2, 3)
    x += mg.ones(3, dtype=mg.float64)  # float64 into float32 is allowed, as in PyTorch
    assert x.dtype == mg.float32 and x.numpy().tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("device", DEVICES)
def test_fills_copies_and_random_fills_in_place(device):
    mg.manual_seed(0)
    x = mg.zeros(2, 1000, device=device)
    before = mg.autograd.version(x.array)
    x.normal_(3.0, 0.5)
    assert abs(float(x.mean()) - 3.0) < 0.05 and abs(float(x.std()) - 0.5) < 0.05
    x.uniform_(-2.0, -1.0)
    assert -2.0 <= float(x.min()) and float(x.max()) < -1.0
    x.fill_(7).clamp_(max=5.0)
    assert x.numpy().tolist() == [[5.0] * 1000] * 2
    x.copy_(mg.arange(1000, dtype=mg.float64))  # broadcast over rows, cast to float32
    assert x.dtype == mg.float32 and x.numpy()[1, 999] == 999.0
    x.zero_()
    assert not x.numpy().any() and mg.autograd.version(x.array) == before + 6


def test_relu_inplace_is_accepted_with_pytorch_s_result_and_repr():
    x = mg.tensor([-1.0, 2.0])
    np.testing.assert_array_equal(F.relu(x, inplace=True).numpy(), [0.0, 2.0])
    layer = mg.nn.ReLU(inplace=True)
    assert repr(layer) == "ReLU(inplace=True)" and repr(mg.nn.ReLU()) == "ReLU()"
    np.testing.assert_array_equal(layer(x).numpy(), [0.0, 2.0])
    y = mg.tensor([-1.0, 2.0])
    assert y.relu_() is y and y.numpy().tolist() == [0.0, 2.0]
