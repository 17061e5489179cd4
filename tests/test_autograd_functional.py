"""mg.autograd.functional's vjp and jacobian against torch.autograd.functional's, on the same
functions and inputs (float64), shapes from hypothesis, every input/output structure (the
second-order functions are in test_double_backward.py)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import shapes, torch
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg

F = mg.autograd.functional


def _both(function):
    """function(lib, *tensors) as a function of minigrad's tensors and one of torch's."""
    t = torch()
    return (lambda *xs: function(mg, *xs)), (lambda *xs: function(t, *xs))


def _close(ours, theirs):
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _close(a, b)
        return
    assert isinstance(ours, mg.Tensor) and tuple(ours.shape) == tuple(theirs.shape)
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


def _layer(lib, x, w):  # a small network's layer: tanh(x @ w) summed over its columns' halves
    return lib.tanh(lib.matmul(x, w)) * 2.0


def _two_outputs(lib, x, w):
    y = lib.matmul(x, w)
    return lib.exp(y).sum(0), (y * y).mean()


@given(st.data())
def test_vjp_and_jacobian_match_torch_on_a_layer(data):
    n, k = data.draw(shapes(min_dims=2, max_dims=2))
    m = data.draw(st.integers(1, 4))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x, w, v = rng.standard_normal((n, k)), rng.standard_normal((k, m)), rng.standard_normal((n, m))
    t = torch()
    ours, theirs = _both(_layer)
    mg_in, t_in = (mg.tensor(x), mg.tensor(w)), (t.tensor(x), t.tensor(w))
    out, product = F.vjp(ours, mg_in, mg.tensor(v))
    t_out, t_product = t.autograd.functional.vjp(theirs, t_in, t.tensor(v))
    _close(out, t_out)
    _close(product, t_product)
    _close(F.jacobian(ours, mg_in), t.autograd.functional.jacobian(theirs, t_in))
    _close(F.jacobian(lambda a: ours(a, mg_in[1]), mg_in[0]),  # one input: a Tensor
           t.autograd.functional.jacobian(lambda a: theirs(a, t_in[1]), t_in[0]))


def test_tuple_outputs_scalar_outputs_and_unused_inputs_as_torch():
    t = torch()
    rng = np.random.default_rng(0)
    x, w, unused = rng.standard_normal((3, 2)), rng.standard_normal((2, 4)), rng.standard_normal(5)
    ours, theirs = _both(lambda lib, a, b, c: _two_outputs(lib, a, b))
    mg_in = tuple(mg.tensor(a) for a in (x, w, unused))
    t_in = tuple(t.tensor(a) for a in (x, w, unused))
    _close(F.jacobian(ours, mg_in), t.autograd.functional.jacobian(theirs, t_in))
    v = (rng.standard_normal(4), np.float64(rng.standard_normal()))
    _close(F.vjp(ours, mg_in, tuple(mg.tensor(a) for a in v)),
           t.autograd.functional.vjp(theirs, t_in, tuple(t.tensor(a) for a in v)))
    scalar, t_scalar = _both(lambda lib, a: (a * a).sum())
    _close(F.vjp(scalar, mg.tensor(x)), t.autograd.functional.vjp(t_scalar, t.tensor(x)))
    constant, t_constant = _both(lambda lib, a: lib.ones(2, dtype=lib.float64))
    _close(F.jacobian(constant, mg.tensor(x)), t.autograd.functional.jacobian(
        t_constant, t.tensor(x)))


def test_strict_mode_refuses_an_output_independent_of_an_input_as_torch():
    t = torch()
    ours, theirs = _both(lambda lib, a, b: a * 2.0)
    mg_in, t_in = (mg.ones(2, dtype=mg.float64),) * 2, (t.ones(2, dtype=t.float64),) * 2
    with pytest.raises(RuntimeError, match="independent of input 1"):
        t.autograd.functional.jacobian(theirs, t_in, strict=True)
    with pytest.raises(RuntimeError, match="independent of input 1. This is not allowed in "
                                           "strict mode"):
        F.jacobian(ours, mg_in, strict=True)
    with pytest.raises(RuntimeError, match="independent of input 1"):
        F.vjp(ours, mg_in, mg.ones(2, dtype=mg.float64), strict=True)


def test_the_inputs_graph_is_left_alone_and_the_outputs_come_back_detached():
    w = mg.tensor([1.0, 2.0], requires_grad=True)
    x = w * 3.0  # an input that is itself in a graph
    out, product = F.vjp(lambda a: a * a, x, mg.ones(2))
    assert out.grad_fn is None and not out.requires_grad
    np.testing.assert_allclose(product.numpy(), [6.0, 12.0])
    assert w.grad is None  # nothing flowed back past the input


def test_what_torch_refuses_is_refused():
    x = mg.ones(3)
    with pytest.raises(TypeError, match="must be either a Tensor or a tuple of Tensors"):
        F.vjp(lambda a: 3, x)
    with pytest.raises(TypeError, match="inputs given to jacobian must be"):
        F.jacobian(lambda a: a, [x, 2.0])
    with pytest.raises(RuntimeError, match="v can only be None if the user-provided function "
                                           "returns a single Tensor with a single element"):
        F.vjp(lambda a: a * 2.0, x)
    with pytest.raises(RuntimeError, match=r"v\[0\] has shape \(2,\) but output 0"):
        F.vjp(lambda a: a * 2.0, x, mg.ones(2))
    # with create_graph the results stay in a graph (x wants no gradient: a leaf stands for it)
    _, product = F.vjp(lambda a: (a * a).sum(), x, create_graph=True)
    assert product.requires_grad  # 2 x, of that leaf
    assert F.jacobian(lambda a: a * a, x, create_graph=True).requires_grad
    with pytest.raises(NotImplementedError, match="forward-mode"):
        F.jacobian(lambda a: a, x, strategy="forward-mode")
    with pytest.raises(ValueError, match="expected strategy"):
        F.jacobian(lambda a: a, x, strategy="sideways")
