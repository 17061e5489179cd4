"""Bad input gets a clear error, raised where it enters, naming the op and what was wrong."""

import numpy as np
import pytest
from helpers import DEVICES, REAL_GPU

import minigrad as mg
from minigrad import autograd, backend


def test_matmul_of_mismatched_inner_dimensions_names_both_shapes():
    with pytest.raises(ValueError, match=r"matmul: cannot multiply shapes minigrad.Size\(\[2, "
                                         r"3\]\) and minigrad.Size\(\[4, 5\]\)"):
        mg.randn(2, 3) @ mg.randn(4, 5)


def test_matmul_with_batch_dimensions_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"matmul \(batch dimensions\): shapes \(2,\) and \(3,\)"):
        mg.randn(2, 4, 5) @ mg.randn(3, 5, 6)


def test_elementwise_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        mg.randn(2, 3) + mg.randn(4)
    with pytest.raises(ValueError, match=r"mul: shapes"):
        mg.randn(2, 3) * mg.randn(3, 2)


def test_tensors_on_two_devices_are_refused_naming_both(monkeypatch):
    # Without a GPU, pretend one array lives on cuda:0: the check reads devices from arrays
    # (one that is not a plain NumPy array, so that the all-CPU shortcut does not decide)
    class Elsewhere(np.ndarray):
        pass

    a, b = mg.randn(3), mg.randn(3)
    b.array = b.array.view(Elsewhere)
    real_device_of = autograd.device_of
    monkeypatch.setattr(
        autograd, "device_of",
        lambda array: backend.Device("cuda:0") if array is b.array else real_device_of(array),
    )
    with pytest.raises(RuntimeError, match="add: expected all tensors on one device, but found "
                                           "tensors on cpu and cuda:0"):
        a + b


@pytest.mark.skipif("cuda" not in DEVICES, reason="no cuda device, real or stand-in")
def test_tensors_on_cpu_and_gpu_are_refused():
    with pytest.raises(RuntimeError, match="cpu and cuda:0"):
        mg.randn(3) * mg.randn(3, device="cuda")


def test_backward_on_a_non_scalar_without_a_gradient():
    x = mg.randn(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"single-element output.*shape minigrad.Size\(\[2, "
                                           r"3\]\)"):
        (x * 2).backward()


def test_backward_with_a_gradient_of_the_wrong_shape_or_dtype():
    y = mg.randn(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"gradient has shape minigrad.Size\(\[3\]\)"):
        y.backward(mg.ones(3))
    with pytest.raises(RuntimeError, match="dtype float64"):
        y.backward(mg.ones(2, 3, dtype=mg.float64))


def test_backward_on_a_tensor_outside_the_graph():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mg.randn(1).backward()


def test_requires_grad_on_an_integer_tensor():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients.*int64"):
        mg.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError, match="int64"):
        mg.arange(3).requires_grad_()


@pytest.mark.parametrize(
    "key, message",
    [
        (5, r"index 5 is out of range for axis 0 of size 3"),
        (-4, r"index -4 is out of range for axis 0 of size 3"),
        ((0, 7), r"index 7 is out of range for axis 1 of size 4"),
        (np.array([0, 3]), r"index 3 is out of range for axis 0 of size 3"),
        (mg.tensor([[0], [-9]]), r"index -9 is out of range for axis 0"),
        ((slice(None), [1, 4]), r"index 4 is out of range for axis 1 of size 4"),
        ((0, 0, 0), r"too many indices \(3\) for a tensor of shape minigrad.Size\(\[3, 4\]\)"),
        (np.ones((2, 4), dtype=bool), r"bool mask of shape \(2, 4\) does not match"),
        (mg.tensor([0.5]), r"must be integer or bool, got float32"),
    ],
)
def test_indexing_out_of_range_names_the_index_the_axis_and_the_shape(key, message):
    x = mg.randn(3, 4)
    with pytest.raises(IndexError, match=message):
        x[key]


def test_reshape_to_a_different_number_of_elements():
    with pytest.raises(RuntimeError, match=r"reshape: cannot view a tensor of shape "
                                           r"minigrad.Size\(\[2, 3\]\)"):
        mg.randn(2, 3).reshape(4, -1)


def test_shape_ops_with_invalid_dims():
    x = mg.randn(2, 3)
    with pytest.raises(IndexError, match="softmax: dim 2 is out of range for a tensor of 2"):
        x.softmax(2)
    with pytest.raises(IndexError, match="sum: dim -3 is out of range"):
        x.sum(dim=-3)
    with pytest.raises(ValueError, match="permute:.*not a permutation"):
        x.permute(0, 0)
    with pytest.raises(ValueError, match=r"expand: cannot expand shape minigrad.Size\(\[2, 3\]\)"):
        x.expand(4, 3)


def test_cat_and_stack_of_mismatched_shapes():
    expected = (r"cat: tensor 1 has shape minigrad.Size\(\[2, 4\]\) but tensor 0 has shape "
                r"minigrad.Size\(\[2, 3\]\)")
    with pytest.raises(ValueError, match=expected):
        mg.cat([mg.randn(2, 3), mg.randn(2, 4)], dim=0)
    with pytest.raises(ValueError, match=r"stack: tensor 1 has shape minigrad.Size\(\[3\]\)"):
        mg.stack([mg.randn(2), mg.randn(3)])


def test_where_needs_a_bool_condition():
    with pytest.raises(TypeError, match="where: condition must be a bool tensor, got float32"):
        mg.where(mg.randn(3), mg.randn(3), mg.randn(3))


def test_clamp_needs_a_bound():
    with pytest.raises(ValueError, match="clamp: at least one of min and max"):
        mg.randn(3).clamp()


def test_unknown_devices_and_dtypes():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        mg.zeros(2, device="tpu")
    with pytest.raises(TypeError, match="expected a dtype"):
        mg.zeros(2, dtype="not-a-dtype")


def test_cuda_without_cupy_says_how_to_get_it(monkeypatch):
    if REAL_GPU:
        pytest.skip("this machine has CuPy and a GPU")
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setitem(__import__("sys").modules, "cupy", None)  # makes `import cupy` fail
    with pytest.raises(RuntimeError, match=r"needs CuPy.*pip install -e '\.\[gpu\]' for CUDA 12, "
                                         r"or pip install -e '\.\[gpu-cuda13\]' for CUDA 13"):
        mg.zeros(2, device="cuda")


def test_in_place_changes_to_a_leaf_that_records_gradients_are_refused():
    x = mg.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="zero_: a leaf Variable that requires grad is "
                                           "being used in an in-place operation"):
        x.zero_()
    with pytest.raises(RuntimeError, match="__setitem__"):
        x[0] = 1.0
    with mg.no_grad():
        x[0] = 1.0
        x.zero_()
    np.testing.assert_array_equal(x.numpy(), [0.0, 0.0, 0.0])


def test_item_of_a_tensor_with_several_elements():
    with pytest.raises(RuntimeError, match=r"item: only one-element tensors.*shape "
                                           r"minigrad.Size\(\[2\]\)"):
        mg.randn(2).item()
