"""No silent differences from PyTorch (issue 11, part 6), checked against torch itself. Most
cases here gave another value, dtype, shape or error than PyTorch before they were fixed; the
others guard the branches of the rules that already agreed (the wider of two 0-d dtypes)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import requires_torch, torch

import minigrad as mg


def _both(fn):
    """fn(library) for minigrad and torch."""
    return fn(mg), fn(torch())


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


@requires_torch
@pytest.mark.parametrize("case", [
    lambda L: L.ones(3) + L.tensor(2.0, dtype=L.float64),  # 0-d does not widen: float32
    lambda L: L.ones(3, dtype=L.int64) + L.tensor(2.5, dtype=L.float64),  # higher category
    lambda L: L.tensor([1, 2], dtype=L.uint8) + L.tensor(300),  # 0-d int64 into uint8
    lambda L: L.tensor(1.0, dtype=L.float64) + L.tensor(2.0),  # two 0-d: the wider
    lambda L: L.ones(2, dtype=L.float64) * L.ones(2),  # dimensioned: the wider
    lambda L: L.tensor(np.array([200, 100], dtype=np.uint8)).sum(),  # int64, no overflow
    lambda L: L.tensor([True, True, False]).sum(),
    lambda L: L.tensor([1, 2], dtype=L.int32).sum(),
], ids=["f32+0d-f64", "i64+0d-f64", "u8+0d-i64", "0d+0d", "f64*f32", "sum-u8", "sum-bool",
        "sum-i32"])
def test_result_dtypes_follow_pytorch_s_promotion(case):
    ours, theirs = _both(case)
    assert str(ours.dtype) == _dtype_name(theirs.dtype)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy())


@requires_torch
def test_argmax_over_everything_with_keepdim_keeps_every_dim():
    values = np.random.default_rng(0).standard_normal((2, 3))
    for name in ("argmax", "argmin"):
        ours, theirs = _both(lambda L, name=name: getattr(L.tensor(values), name)(keepdim=True))
        assert ours.shape == tuple(theirs.shape) == (1, 1)
        assert ours.item() == theirs.item()


def test_long_of_a_tensor_that_requires_grad_is_a_detached_integer_tensor():
    x = mg.tensor([1.7, -2.2], requires_grad=True)
    index = x.long()
    assert index.dtype == mg.int64 and not index.requires_grad and index.grad_fn is None
    assert index.tolist() == [1, -2]
    assert (x * 2).float().requires_grad  # a floating cast stays in the graph


@requires_torch
def test_where_with_two_numbers():
    condition = np.array([True, False, True])
    for x, y in ((1.0, 0.0), (1, 0), (1, 0.5)):
        ours, theirs = _both(lambda L, x=x, y=y: L.where(L.tensor(condition), x, y))
        assert str(ours.dtype) == _dtype_name(theirs.dtype)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@requires_torch
def test_gradients_at_the_edges_are_pytorch_s():
    def power(L):
        x = L.tensor([0.0, 2.0], dtype=L.float64, requires_grad=True)
        (x ** 0 + x ** 0.0).sum().backward()
        return x.grad

    def constant_std(L):
        x = L.tensor([[3.0, 3.0, 3.0], [1.0, 2.0, 4.0]], dtype=L.float64, requires_grad=True)
        (x.std(1).sum() + x[0].std()).backward()
        return x.grad

    def all_ignored(L):
        x = L.tensor([[1.0, 2.0], [0.5, 0.1]], requires_grad=True)
        loss = L.nn.functional.cross_entropy(x, L.tensor([-100, -100]))
        loss.backward()
        return x.grad

    for case in (power, constant_std, all_ignored):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # and no RuntimeWarning on the way
            ours, theirs = _both(case)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), err_msg=case.__name__)


@requires_torch
def test_matrix_products_refuse_mixed_dtypes_as_pytorch_does():
    with pytest.raises(RuntimeError):
        torch().ones(2, 2) @ torch().ones(2, 2, dtype=torch().float64)
    with pytest.raises(RuntimeError, match="matmul: expected all operands to have the same "
                                           "dtype, but got float32 and float64"):
        mg.ones(2, 2) @ mg.ones(2, 2, dtype=mg.float64)
    with pytest.raises(RuntimeError, match="linear: expected all operands to have the same "
                                           "dtype, but got float64 and float32"):
        mg.nn.Linear(2, 3)(mg.ones(4, 2, dtype=mg.float64))
    with pytest.raises(RuntimeError):
        torch().nn.Conv2d(1, 1, 3)(torch().ones(1, 1, 4, 4, dtype=torch().float64))
    with pytest.raises(RuntimeError, match="conv2d: expected the input, weight and bias to have "
                                           "one dtype, got float64 and float32 and float32"):
        mg.nn.Conv2d(1, 1, 3)(mg.ones(1, 1, 4, 4, dtype=mg.float64))


def test_a_layer_given_a_numpy_array_or_a_list_says_so_in_one_line():
    for value, name in ((np.ones((1, 3)), "numpy.ndarray"), ([[1.0, 2.0, 3.0]], "list")):
        with pytest.raises(TypeError, match=f"^Linear: expected a minigrad Tensor, got {name}; "
                                            r"wrap it with minigrad.tensor\(...\)$"):
            mg.nn.Linear(3, 2)(value)


@requires_torch
def test_a_batch_norm_checkpoint_without_num_batches_tracked_loads_strictly():
    """Checkpoints written before BatchNorm counted batches lack the key; PyTorch loads them."""
    layer = mg.nn.BatchNorm2d(3)
    state = layer.state_dict()
    state.pop("num_batches_tracked")
    state["running_mean"] = np.arange(3.0)
    layer.load_state_dict(state)
    assert layer.running_mean.tolist() == [0.0, 1.0, 2.0]
    assert int(layer.num_batches_tracked.item()) == 0
    reference = torch().nn.BatchNorm2d(3)
    reference.load_state_dict({k: torch().tensor(v) for k, v in state.items()})
    with pytest.raises(RuntimeError, match="Missing key"):
        layer.load_state_dict({"running_mean": np.zeros(3)})  # other keys are still required


@requires_torch
@pytest.mark.parametrize("case", [
    lambda L: L.tensor([-2.5, 0.0, 3.0]).sign(),
    lambda L: L.tensor([7, -7, 5]) // 2,
    lambda L: L.tensor([7.5, -7.5]) // L.tensor([2.0, 2.0]),
    lambda L: L.tensor([True, False, True]) & L.tensor([True, True, False]),
    lambda L: L.tensor([True, False, True]) | L.tensor([False, False, True]),
    lambda L: L.tensor([True, False]) ^ L.tensor([True, True]),
    lambda L: ~L.tensor([True, False]),
    lambda L: ~L.tensor([5, 0]),
    lambda L: L.linspace(-1.0, 2.0, 7),
    lambda L: L.ones(2, 3).new_zeros(4, 1),
    lambda L: L.arange(6).view_as(L.ones(2, 3)),
    lambda L: L.arange(3).type_as(L.ones(1, dtype=L.float64)),
    lambda L: L.tensor([[1.0, 2.0], [3.0, 4.0]]).t(),
], ids=["sign", "floordiv-int", "floordiv-float", "and", "or", "xor", "not-bool", "not-int",
        "linspace", "new_zeros", "view_as", "type_as", "t"])
def test_everyday_methods_give_pytorch_s_values_and_dtypes(case):
    ours, theirs = _both(case)
    assert ours.shape == tuple(theirs.shape) and str(ours.dtype) == _dtype_name(theirs.dtype)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


@requires_torch
def test_maximum_and_minimum_split_the_gradient_of_ties_as_pytorch():
    def run(L, op):
        a = L.tensor([1.0, 2.0, 3.0], requires_grad=True)
        b = L.tensor([1.0, 5.0, 3.0], requires_grad=True)
        getattr(L, op)(a, b).backward(L.tensor([1.0, 2.0, 4.0]))
        return a.grad.numpy(), b.grad.numpy()

    for op in ("maximum", "minimum"):
        for ours, theirs in zip(run(mg, op), run(torch(), op)):
            np.testing.assert_array_equal(ours, theirs)


def test_from_numpy_and_as_tensor_share_memory_where_pytorch_does():
    array = np.arange(3.0)
    shared = mg.from_numpy(array)
    array[0] = 9.0
    assert shared.dtype == mg.float64 and shared.tolist() == [9.0, 1.0, 2.0]
    assert mg.as_tensor(array).array is array
    assert mg.as_tensor(shared) is shared
    assert mg.as_tensor(array, dtype=mg.float32).dtype == mg.float32  # a cast copies
    assert mg.as_tensor([1, 2]).dtype == mg.int64
    with pytest.raises(TypeError, match="from_numpy: expected a numpy.ndarray, got list"):
        mg.from_numpy([1.0])
    like = mg.randn_like(mg.zeros(2, 3, dtype=mg.float64))
    assert like.shape == (2, 3) and like.dtype == mg.float64


@requires_torch
@pytest.mark.parametrize("case", [
    lambda L, x: x.max(), lambda L, x: x.min(), lambda L, x: L.relu(x).sum(),
], ids=["max", "min", "relu"])  # (torch's amax gives NaN gradients there; minigrad's max's)
def test_gradients_through_nan_follow_pytorch(case):
    values = np.array([1.0, np.nan, 3.0, np.nan, -2.0])
    grads = []
    for library in (mg, torch()):
        x = library.tensor(values, requires_grad=True)
        with np.errstate(invalid="ignore"):
            case(library, x).backward()
        grads.append(x.grad.numpy())
    np.testing.assert_array_equal(*grads)
