"""PyTorch's precision switches (TF32 for convolutions and matmuls), as minigrad names them."""

import fake_cupy
import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F
from minigrad import backend

requires_standin = pytest.mark.skipif(not fake_cupy.installed,
                                      reason="counts the stand-in's GEMM precisions")


@pytest.fixture(autouse=True)
def _restore_switches():
    conv, matmul = backend.conv_tf32(), backend.get_float32_matmul_precision()
    yield
    backend.set_conv_tf32(conv)
    backend.set_float32_matmul_precision(matmul)


def test_the_defaults_are_pytorch_s():
    assert mg.backends.cudnn.allow_tf32 is True
    assert mg.backends.cuda.matmul.allow_tf32 is False
    assert mg.get_float32_matmul_precision() == "highest"
    assert mg.cuda.allow_tf32 is False


@pytest.mark.parametrize("precision, tf32", [("highest", False), ("high", True),
                                             ("medium", True)])
def test_matmul_precision_and_matmul_allow_tf32_are_one_switch(precision, tf32):
    mg.set_float32_matmul_precision(precision)
    assert mg.backends.cuda.matmul.allow_tf32 is tf32
    assert mg.cuda.allow_tf32 is tf32
    mg.backends.cuda.matmul.allow_tf32 = not tf32
    assert mg.get_float32_matmul_precision() == ("highest" if tf32 else "high")


def test_an_unknown_matmul_precision_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="'highest', 'high', 'medium'.*'fast'"):
        mg.set_float32_matmul_precision("fast")
    assert mg.get_float32_matmul_precision() == "highest"


def test_pytorch_s_other_cudnn_switches_are_accepted():
    mg.backends.cudnn.benchmark = True
    mg.backends.cudnn.deterministic = True
    assert mg.backends.cudnn.benchmark and not mg.backends.cudnn.is_available()
    mg.backends.cudnn.benchmark = mg.backends.cudnn.deterministic = False


def _conv_and_linear(device):
    rng = np.random.default_rng(0)
    x = mg.tensor(rng.standard_normal((2, 8, 6, 6)), dtype=mg.float32, device=device)
    w = mg.tensor(rng.standard_normal((4, 8, 3, 3)), dtype=mg.float32, device=device)
    lw = mg.tensor(rng.standard_normal((3, 144)), dtype=mg.float32, device=device)
    y = F.conv2d(x, w, padding=1)
    return y.numpy(), F.linear(y.flatten(1), lw).numpy()


@requires_standin
@pytest.mark.parametrize("conv_tf32, precision", [(True, "highest"), (False, "highest"),
                                                  (False, "high"), (True, "high")])
def test_convolutions_follow_cudnn_allow_tf32_and_linear_layers_the_matmul_precision(
        conv_tf32, precision):
    mg.backends.cudnn.allow_tf32 = conv_tf32
    mg.set_float32_matmul_precision(precision)
    fake_cupy.stats.reset()
    _conv_and_linear("cuda")
    used = [p for ndim, dtype, p in fake_cupy.stats.gemm_precisions if dtype == "float32"]
    conv_gemms, linear_gemms = used[:-1], used[-1:]
    assert conv_gemms and set(conv_gemms) == {"tf32" if conv_tf32 else "fp32"}
    assert linear_gemms == ["tf32" if precision != "highest" else "fp32"]
    # the conv's switch was set back for the products after it
    assert fake_cupy._routines_linalg.get_compute_type("float32") == (
        7 if precision != "highest" else 1)


@requires_standin
def test_tf32_products_differ_from_strict_ones_by_a_10_bit_mantissa_and_the_cpu_not_at_all():
    mg.backends.cudnn.allow_tf32 = False
    strict = _conv_and_linear("cuda")
    cpu_strict = _conv_and_linear("cpu")
    mg.backends.cudnn.allow_tf32 = True
    mg.set_float32_matmul_precision("high")
    tf32 = _conv_and_linear("cuda")
    cpu_tf32 = _conv_and_linear("cpu")
    for ours, reference in zip(tf32, strict):
        error = np.abs(ours - reference).max() / np.abs(reference).max()
        assert 1e-6 < error < 5e-3  # rounded to 10 bits, not to float32's 23
    for a, b in zip(cpu_strict, cpu_tf32):
        np.testing.assert_array_equal(a, b)


def test_tf32_rounding_keeps_ten_mantissa_bits_rounding_to_nearest():
    values = np.array([1 + 2**-11, 1 + 2**-10 + 2**-11, 1 + 2**-12, -3.0, np.inf],
                      dtype=np.float32)
    expected = np.array([1.0, 1 + 2**-9, 1.0, -3.0, np.inf], dtype=np.float32)
    np.testing.assert_array_equal(fake_cupy.tf32_round(values), expected)


def test_the_switches_change_nothing_on_the_cpu_and_need_no_gpu():
    mg.backends.cuda.matmul.allow_tf32 = True  # as in PyTorch: a flag, no GPU asked for
    assert "CPU" in mg.backends.precision_summary("cpu")
    assert mg.backends.precision_summary("cuda") == "convolutions TF32, matmuls TF32"


@requires_standin
def test_a_convolution_restores_the_compute_type_it_found_as_cupy_tf32_may_have_set_it():
    linalg = fake_cupy._routines_linalg
    linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32)  # CUPY_TF32=1, say
    try:
        mg.backends.cudnn.allow_tf32 = False
        fake_cupy.stats.reset()
        _conv_and_linear("cuda")
        used = [p for _, dtype, p in fake_cupy.stats.gemm_precisions if dtype == "float32"]
        assert set(used[:-1]) == {"fp32"} and used[-1] == "tf32"
        assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_TF32
    finally:
        linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_DEFAULT)
