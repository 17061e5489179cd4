"""Making tensors, converting them, and the behaviours of ops that a table of cases cannot show
(ties, saturation, infinities, comparisons)."""

import numpy as np
import pytest
from helpers import DEVICES, requires_torch

import minigrad as mg


def test_python_numbers_become_float32_or_int64_and_arrays_keep_their_dtype():
    assert mg.tensor([1.5, 2.0]).dtype == mg.float32
    assert mg.tensor([1, 2]).dtype == mg.int64
    assert mg.tensor([True, False]).dtype == mg.bool
    assert mg.tensor(np.zeros(2)).dtype == mg.float64
    assert mg.tensor(np.zeros(2, dtype=np.uint8)).dtype == mg.uint8
    assert mg.tensor([1, 2], dtype=mg.float64).dtype == mg.float64


def test_tensor_copies_its_data():
    values = np.zeros(3, dtype=np.float32)
    t = mg.tensor(values)
    values[0] = 1
    assert t.numpy()[0] == 0
    host = t.numpy()
    host[1] = 5
    assert t.numpy()[1] == 0


@pytest.mark.parametrize("device", DEVICES)
def test_factories_make_the_asked_shape_dtype_and_device(device):
    assert mg.zeros(2, 3, device=device).shape == (2, 3)
    assert mg.ones((2, 3), dtype=mg.float64, device=device).dtype == mg.float64
    assert mg.full((2,), 7, device=device).tolist() == [7, 7]
    assert mg.full((2,), 0.5, device=device).dtype == mg.float32
    assert mg.arange(5, device=device).tolist() == [0, 1, 2, 3, 4]
    assert mg.arange(0, 1, 0.25).tolist() == [0.0, 0.25, 0.5, 0.75]
    assert mg.eye(3, device=device).numpy().trace() == 3
    assert mg.zeros_like(mg.ones(2, dtype=mg.int32)).dtype == mg.int32
    r = mg.randn(1000, device=device)
    assert r.dtype == mg.float32 and r.device == device
    assert abs(r.numpy().mean()) < 0.2 and 0.8 < r.numpy().std() < 1.2
    u = mg.rand(1000, device=device).numpy()
    assert u.min() >= 0 and u.max() < 1
    k = mg.randint(3, 7, (1000,), device=device)
    assert k.dtype == mg.int64 and set(k.numpy().tolist()) == {3, 4, 5, 6}


@pytest.mark.parametrize("device", DEVICES)
def test_manual_seed_makes_random_tensors_reproducible(device):
    mg.manual_seed(123)
    first = mg.randn(5, device=device).numpy(), mg.rand(3, device=device).numpy()
    mg.manual_seed(123)
    second = mg.randn(5, device=device).numpy(), mg.rand(3, device=device).numpy()
    mg.manual_seed(124)
    other = mg.randn(5, device=device).numpy()
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other)


def test_conversions():
    t = mg.tensor([[1.0, 2.0]])
    assert t.tolist() == [[1.0, 2.0]]
    assert mg.tensor(2.5).item() == 2.5
    assert float(mg.tensor([3.0])) == 3.0
    assert t.to("cpu") is t and t.to(mg.float32) is t
    assert t.double().dtype == mg.float64 and t.long().dtype == mg.int64
    assert t.to(mg.zeros(1, dtype=mg.float64)).dtype == mg.float64
    assert np.asarray(t).shape == (1, 2)
    assert len(mg.zeros(4, 2)) == 4 and [row.shape for row in mg.zeros(2, 3)] == [(3,), (3,)]


def test_repr_reads_like_pytorch():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x) == "tensor([1., 2.], requires_grad=True)"
    assert "grad_fn=<MulBackward>" in repr(x * 2)
    assert repr(mg.tensor([1, 2])) == "tensor([1, 2])"
    assert "dtype=minigrad.float64" in repr(mg.zeros(2, dtype=mg.float64))


def test_comparisons_give_bool_tensors_outside_the_graph():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    result = x > 1.5
    assert result.dtype == mg.bool and not result.requires_grad
    assert result.tolist() == [False, True, True]
    assert (x == mg.tensor([1.0, 0.0, 3.0])).tolist() == [True, False, True]
    assert (x <= 2).tolist() == [True, True, False]


def test_integer_arithmetic_follows_pytorch():
    i = mg.tensor([1, 2, 3])
    assert (i + 1).dtype == mg.int64
    assert (i * 2.5).dtype == mg.float32
    assert (i / 2).dtype == mg.float32
    assert (i / 2).tolist() == [0.5, 1.0, 1.5]
    assert i.exp().dtype == mg.float32
    assert (mg.tensor([1.0], dtype=mg.float64) + mg.tensor([1.0])).dtype == mg.float64
    assert (i.sum()).item() == 6 and mg.tensor([True, True, False]).sum().item() == 2


@requires_torch
@pytest.mark.parametrize("method", ["max", "min"])
def test_ties_share_the_gradient_for_a_full_reduction_and_go_to_one_index_along_a_dim(method):
    import torch

    values = np.array([[3.0, 1.0, 3.0], [2.0, 2.0, 2.0]]) * (1 if method == "max" else -1)
    for reduce in (lambda t: getattr(t, method)(), lambda t: getattr(t, method)(dim=1).values):
        x = mg.tensor(values, requires_grad=True)
        reduce(x).sum().backward()
        tx = torch.tensor(values, requires_grad=True)
        reduce(tx).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


def test_full_max_shares_the_gradient_among_ties():
    x = mg.tensor([1.0, 3.0, 3.0], requires_grad=True)
    x.max().backward()
    assert x.grad.tolist() == [0.0, 0.5, 0.5]


@pytest.mark.parametrize("device", DEVICES)
def test_softmax_sigmoid_and_logsumexp_stay_finite_at_extreme_inputs(device):
    big = mg.tensor([[1000.0, 0.0, -1000.0]], device=device, requires_grad=True)
    softmax = big.softmax(1)
    np.testing.assert_allclose(softmax.numpy(), [[1.0, 0.0, 0.0]])
    log_softmax = big.log_softmax(1)
    np.testing.assert_allclose(log_softmax.numpy(), [[0.0, -1000.0, -2000.0]])
    sigmoid = big.sigmoid()
    np.testing.assert_allclose(sigmoid.numpy(), [[1.0, 0.5, 0.0]])
    (softmax.sum() + log_softmax.sum() + sigmoid.sum()).backward()
    assert np.isfinite(big.grad.numpy()).all()
    minus_inf = mg.tensor([[-np.inf, -np.inf], [0.0, -np.inf]], device=device)
    np.testing.assert_array_equal(minus_inf.logsumexp(1).numpy(), [-np.inf, 0.0])


def test_setitem_outside_the_graph_writes_in_place():
    target = mg.zeros(2, 3)
    target[0, 1] = 5.0
    target[1] = mg.tensor([1.0, 2.0, 3.0])
    assert target.tolist() == [[0.0, 5.0, 0.0], [1.0, 2.0, 3.0]]


def test_indexing_with_repeated_indices_adds_their_gradients():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 1.0]


@requires_torch
@pytest.mark.parametrize("call", [
    lambda t: t.var(1, False), lambda t: t.std(0, True, True), lambda t: t.var(False),
    lambda t: t.std(True), lambda t: t.var(dim=1, correction=0, keepdim=True),
    lambda t: t.std((0, 1), unbiased=False), lambda t: t.var(),
])
def test_var_and_std_bind_positional_arguments_as_pytorch_does(call):
    """var(dim, unbiased, keepdim): x.var(1, False) is the biased variance along dim 1."""
    import torch

    x = np.random.default_rng(0).standard_normal((3, 4))
    ours, theirs = call(mg.tensor(x)), call(torch.tensor(x))
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)


def test_var_refuses_unbiased_together_with_correction():
    with pytest.raises(TypeError, match="var: give unbiased or correction, not both"):
        mg.ones(3).var(0, True, correction=0)


def test_data_is_a_tensor_outside_the_graph_sharing_the_memory_as_in_pytorch():
    layer = mg.nn.Linear(3, 2)
    mg.manual_seed(0)
    layer.weight.data.normal_(0.0, 0.02)  # the DCGAN-style initialisation
    assert 0 < float(layer.weight.abs().max()) < 0.1
    layer.bias.data.copy_(mg.tensor([1.0, 2.0]))
    assert layer.bias.numpy().tolist() == [1.0, 2.0]
    data = layer.weight.data
    assert isinstance(data, mg.Tensor) and not data.requires_grad and data.grad_fn is None
    assert np.shares_memory(data.array, layer.weight.array)

    w = mg.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    w.data -= 0.5 * w.grad.data  # no no_grad needed: .data is outside the graph
    assert w.numpy().tolist() == [0.0, 0.0] and w.requires_grad and w.is_leaf
    w.data = mg.tensor([5.0, 6.0, 7.0])  # as in PyTorch, .data may take other values
    assert w.shape == (3,) and w.requires_grad
    with pytest.raises(TypeError, match="Tensor.data: expected a Tensor, got ndarray"):
        w.data = np.zeros(3)
    assert isinstance(w.array, np.ndarray)  # the backend array itself


def test_an_op_becomes_a_tensor_method_with_one_decorator():
    from minigrad.ops.registry import METHODS, tensor_method

    assert METHODS["sum"] is mg.ops.reduce.sum and mg.Tensor.sum is METHODS["sum"]
    assert METHODS["view"] is METHODS["reshape"]

    @tensor_method("double_it_for_the_test")
    def double(x):
        return x * 2

    try:
        assert mg.tensor([1.0, 2.0]).double_it_for_the_test().tolist() == [2.0, 4.0]
        with pytest.raises(RuntimeError, match="Tensor.double_it_for_the_test is registered "
                                               "twice"):
            tensor_method("double_it_for_the_test")(lambda x: x)
    finally:
        del METHODS["double_it_for_the_test"]
        delattr(mg.Tensor, "double_it_for_the_test")
