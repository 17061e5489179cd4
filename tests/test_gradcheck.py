"""The checkers are a product too: they must pass correct ops and catch wrong ones, saying
where and by how much."""

import numpy as np
import pytest
from helpers import requires_torch

import minigrad as mg
from minigrad.autograd import Function
from minigrad.testing import assert_matches_torch


class SquareWithWrongGradient(Function):
    """x^2 whose backward forgets the factor 2."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x


class IdentityRightOnlyForOnes(Function):
    """An identity whose backward ignores the upstream gradient (returns ones): correct only
    when the upstream gradient is all ones, which is why gradcheck draws a random one."""

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        return np.ones_like(grad)


class DoubleThatScalesTheUpstreamInPlace(Function):
    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad):
        grad *= 2
        return grad


def test_gradcheck_passes_a_correct_op():
    x = mg.randn(3, 4, dtype=mg.float64, requires_grad=True)
    w = mg.randn(4, 2, dtype=mg.float64, requires_grad=True)
    assert mg.gradcheck(lambda x, w: (x @ w).tanh(), (x, w))
    assert mg.gradcheck(lambda x, w: (x @ w).tanh(), (x, w), fast_mode=True)


def test_gradcheck_names_the_input_the_worst_index_and_both_values():
    x = mg.tensor([[1.0, -2.0], [3.0, 0.5]], requires_grad=True)
    with pytest.raises(mg.GradcheckError) as error:
        mg.gradcheck(lambda x: SquareWithWrongGradient.apply(x), (x,))
    message = str(error.value)
    assert "input 0" in message and "shape (2, 2)" in message
    assert "index (1, 0)" in message  # the largest |x| has the largest error: x vs 2x
    assert "backward gives" in message and "central differences give" in message


def test_gradcheck_fast_mode_also_catches_a_wrong_gradient():
    x = mg.randn(50, 40, requires_grad=True)
    with pytest.raises(mg.GradcheckError, match="fast mode.*input 0"):
        mg.gradcheck(lambda x: SquareWithWrongGradient.apply(x), (x,), fast_mode=True)


def test_gradcheck_uses_a_random_upstream_gradient():
    x = mg.randn(4, requires_grad=True)
    with pytest.raises(mg.GradcheckError):
        mg.gradcheck(lambda x: IdentityRightOnlyForOnes.apply(x), (x,))


def test_gradcheck_catches_a_backward_that_changes_the_upstream_gradient():
    x = mg.randn(3, requires_grad=True)
    with pytest.raises(mg.GradcheckError, match="changed upstream gradient 0 in place"):
        mg.gradcheck(lambda x: DoubleThatScalesTheUpstreamInPlace.apply(x), (x,))


def test_gradcheck_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="no input tensor has requires_grad=True"):
        mg.gradcheck(lambda x: x * 2, (mg.randn(3),))


def test_gradcheck_passes_non_tensor_arguments_through():
    x = mg.randn(2, 3, requires_grad=True)
    assert mg.gradcheck(lambda x, dim: x.softmax(dim), (x, 1))


@requires_torch
def test_torch_comparison_catches_a_wrong_gradient():
    import torch

    with pytest.raises(AssertionError, match="gradient of input 0"):
        assert_matches_torch(lambda x: SquareWithWrongGradient.apply(x), [np.ones((2, 3)) * 3],
                             lambda x: x * x)
    assert torch  # the import is what this test needs; torch computes the reference


@requires_torch
def test_torch_comparison_catches_a_wrong_dtype_and_a_wrong_value():
    with pytest.raises(AssertionError, match="output 0: dtype float64, torch gives float32"):
        assert_matches_torch(lambda x: x.double(), [np.ones(3)], lambda x: x)
    with pytest.raises(AssertionError, match="output 0: 3 of 3 values differ"):
        assert_matches_torch(lambda x: x + 1, [np.ones(3)], lambda x: x)
    with pytest.raises(AssertionError, match="shape"):
        assert_matches_torch(lambda x: x.sum(0, keepdim=True), [np.ones((2, 3))],
                             lambda x: x.sum(0))


@requires_torch
def test_torch_comparison_catches_a_backward_that_changes_the_upstream_gradient():
    with pytest.raises(AssertionError, match="changed upstream gradient 0"):
        assert_matches_torch(lambda x: DoubleThatScalesTheUpstreamInPlace.apply(x), [np.ones(3)],
                             lambda x: 2 * x)


def test_gradcheck_perturbs_inputs_whose_memory_is_not_contiguous():
    """A transposed input: its float64 copy must be one the perturbation reaches (a reshape of
    a non-contiguous copy would be another copy, and every difference would be 0)."""
    x = mg.tensor(np.arange(6.0).reshape(2, 3).T, requires_grad=True)
    assert mg.gradcheck(lambda t: (t * t * t).sum(), [x], fast_mode=False)
