"""The CUDA kernels' NumPy twins against minigrad's reference ops, and the kernel machinery.

A twin does its kernel's index arithmetic for every index at once; these tests show that this
arithmetic gives the reference's result (exactly: same additions in the same order). On a GPU,
benchmarks/gpu_check.py then shows that each kernel gives its twin's result.
"""

import os
import types
from unittest import mock

import numpy as np
import pytest
from helpers import window_geometry
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad import kernels
from minigrad.kernels import TWINS, activation, im2col, norm
from minigrad.kernels import pool as pool_kernels
from minigrad.ops import conv


@st.composite
def geometry(draw):
    window = draw(window_geometry(max_extra=5))
    (h, w), kernel, stride, padding, dilation = (window[key] for key in (
        "size", "kernel", "stride", "padding", "dilation"))
    out = (conv.output_size(h, kernel[0], stride[0], padding[0] + padding[1], dilation[0]),
           conv.output_size(w, kernel[1], stride[1], padding[2] + padding[3], dilation[1]))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, h, w), kernel, stride, padding, dilation, out


def _twin_geometry(shape, kernel, stride, padding, dilation, out):
    return (*shape, *kernel, *out, *stride, padding[0], padding[2], *dilation)


@given(case=geometry(), seed=st.integers(0, 1000))
def test_im2col_twin_equals_the_reference_columns(case, seed):
    shape, kernel, stride, padding, dilation, out = case
    x = np.random.default_rng(seed).standard_normal(shape)
    windows = conv.im2col_view(conv.pad(x, padding), kernel, stride, dilation, out)
    expected = windows.transpose(1, 2, 3, 0, 4, 5).reshape(-1, shape[0] * out[0] * out[1])
    cols = np.full(expected.shape, np.nan)
    TWINS["minigrad_im2col"](x, *_twin_geometry(*case), cols)
    np.testing.assert_array_equal(cols, expected)


@given(case=geometry(), seed=st.integers(0, 1000))
def test_col2im_twin_gathers_what_the_reference_scatters(case, seed):
    shape, kernel, stride, padding, dilation, (oh, ow) = case
    n, c, h, w = shape
    grad_cols = np.random.default_rng(seed).standard_normal((c * kernel[0] * kernel[1],
                                                             n * oh * ow))
    padded = (n, c, h + padding[0] + padding[1], w + padding[2] + padding[3])
    by_offset = grad_cols.reshape(c, *kernel, n, oh, ow).transpose(1, 2, 3, 0, 4, 5)
    expected = conv.unpad(conv.col2im(by_offset, np.zeros(padded), kernel, stride, dilation,
                                      (oh, ow)), padding)
    grad_x = np.full(shape, np.nan)
    TWINS["minigrad_col2im"](grad_cols, *_twin_geometry(*case), grad_x)
    np.testing.assert_array_equal(grad_x, expected)


@given(n=st.integers(1, 3), oc=st.integers(1, 4), oh=st.integers(1, 4), ow=st.integers(1, 4),
       seed=st.integers(0, 1000))
def test_layout_twins_move_between_the_gemm_layout_and_nchw(n, oc, oh, ow, seed):
    """conv2d's forward writes W @ cols (OC, N*OH*OW) to NCHW with the bias added, and its
    backward reads an NCHW gradient back into the GEMM layout: transposes, written out."""
    rng = np.random.default_rng(seed)
    gemm, bias = rng.standard_normal((oc, n * oh * ow)), rng.standard_normal(oc)
    out = np.full((n, oc, oh, ow), np.nan)
    TWINS["minigrad_gemm_to_nchw"](gemm, bias, oc, oh * ow, n * oh * ow, out)
    expected = gemm.reshape(oc, n, oh, ow).transpose(1, 0, 2, 3) + bias[:, None, None]
    np.testing.assert_array_equal(out, expected)
    nchw = rng.standard_normal((n, oc, oh, ow))
    back = np.full((oc, n * oh * ow), np.nan)
    TWINS["minigrad_nchw_to_gemm"](nchw, oc, oh * ow, n * oh * ow, back)
    np.testing.assert_array_equal(back, nchw.transpose(1, 0, 2, 3).reshape(oc, -1))


def test_a_kernel_compiles_once_per_set_of_constants_which_shadow_its_parameters(monkeypatch):
    made = []

    def elementwise_kernel(in_params, out_params, body, name):
        made.append(body)
        return lambda *args, **kwargs: (args, kwargs)

    monkeypatch.setattr(mg.backend, "_cupy", types.SimpleNamespace(
        ElementwiseKernel=elementwise_kernel))
    kernel = kernels.Kernel("minigrad_test_constants", "T x, int32 k", "T y", "y = x * k;",
                            lambda x, k, y: y)
    try:
        assert kernel(1, 3, 2, constants={"k": 3}) == ((1, 3, 2), {})
        kernel(1, 3, 2, constants={"k": 3})
        kernel(1, 5, 2, constants={"k": 5}, size=7)
        kernel(1, 5, 2)
    finally:
        TWINS.pop("minigrad_test_constants")
    assert made == ["    const int k = 3;\ny = x * k;", "    const int k = 5;\ny = x * k;",
                    "y = x * k;"]


def test_im2col_checks_that_its_threads_fit_32_bit_arithmetic(monkeypatch):
    monkeypatch.setattr(im2col, "_THREADS_LIMIT", 100)
    x, cols = mg.backend.array_module("cuda").zeros((2, 3, 4, 4)), None
    with pytest.raises(ValueError, match=r"im2col: 216 threads do not fit the kernel's 32-bit "
                                         r"index arithmetic.*COLS_BUDGET_BYTES"):
        im2col.im2col(x, cols, (3, 3), (1, 1), (1, 1), (1, 1), (6, 6))


@st.composite
def pool_geometry(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    h, w = (draw(st.integers(max(1, k - 2 * p), 7)) for k, p in zip(kernel, padding))
    return (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w), kernel, stride, padding


@given(case=pool_geometry(), seed=st.integers(0, 1000), ties=st.booleans())
def test_max_pool_twins_equal_the_reference_max_pool(case, seed, ties):
    from minigrad.ops.pool import MaxPool2d

    shape, kernel, stride, padding = case
    x = np.random.default_rng(seed).standard_normal(shape)
    if ties:
        x = np.round(x)  # many equal values: the first maximum must win
    xt = mg.tensor(x, requires_grad=True)
    expected = MaxPool2d.apply(xt, kernel=kernel, stride=stride, padding=padding)
    upstream = np.random.default_rng(seed + 1).standard_normal(expected.shape)
    expected.backward(mg.tensor(upstream))

    out = np.full(expected.shape, np.nan)
    argmax = np.full(expected.shape, -1, dtype=pool_kernels.argmax_dtype(kernel))
    geometry_ = (*shape[2:], *kernel, *expected.shape[2:], *stride, *padding)
    TWINS["minigrad_max_pool"](x, *geometry_, out, argmax)
    np.testing.assert_array_equal(out, expected.numpy())
    grad_x = np.full(shape, np.nan)
    TWINS["minigrad_max_pool_backward"](upstream, argmax, *geometry_, grad_x)
    np.testing.assert_array_equal(grad_x, xt.grad.numpy())


@given(shape=st.sampled_from([(5, 3), (2, 3, 4, 2), (3, 1, 2, 5)]), seed=st.integers(0, 1000))
def test_batch_norm_twins_equal_the_reference_batch_norm(shape, seed):
    rng = np.random.default_rng(seed)
    x, upstream = rng.standard_normal(shape), rng.standard_normal(shape)
    c = shape[1]
    weight, bias = rng.standard_normal(c), rng.standard_normal(c)
    xt = mg.tensor(x, requires_grad=True)
    expected = mg.ops.normalization.BatchNorm.apply(
        xt, mg.tensor(weight), mg.tensor(bias), running_mean=None, running_var=None,
        training=True, momentum=0.1, eps=1e-5)
    expected.backward(mg.tensor(upstream))

    axes = (0,) if len(shape) == 2 else (0, 2, 3)
    hw = 1 if len(shape) == 2 else shape[2] * shape[3]
    mean, inv_std = x.mean(axis=axes), 1 / np.sqrt(x.var(axis=axes) + 1e-5)
    y, x_hat = np.empty(shape), np.empty(shape)
    TWINS["minigrad_batch_norm"](x, mean, inv_std, weight, bias, hw, c, y, x_hat)
    np.testing.assert_allclose(y, expected.numpy(), rtol=1e-12, atol=1e-14)
    grad_x = np.empty(shape)
    TWINS["minigrad_batch_norm_backward"](
        upstream, x_hat, weight * inv_std, upstream.sum(axis=axes),
        (upstream * x_hat).sum(axis=axes), hw, c, x.size // c, grad_x)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(os.environ.get("MINIGRAD_KERNELS") == "0", reason="switched off by env")
def test_kernels_are_on_by_default_and_can_be_switched_off():
    assert kernels.enabled()
    kernels.enable(False)
    try:
        assert not kernels.enabled()
    finally:
        kernels.enable(True)


def test_a_kernel_that_does_not_compile_names_itself_and_the_switch(monkeypatch):
    class CompileException(Exception):
        pass

    def compiled(*args):
        raise CompileException("error: identifier 'CUDART_INF_F' is undefined")

    fake_cupy = types.SimpleNamespace(ElementwiseKernel=lambda *a: compiled)
    monkeypatch.setattr(mg.backend, "_cupy", fake_cupy)
    kernel = kernels.Kernel("minigrad_test_kernel", "T x", "T y", "y = x;", lambda x, y: y)
    with pytest.raises(RuntimeError, match="minigrad_test_kernel did not compile.*"
                                           "MINIGRAD_KERNELS=0"):
        kernel(1, 2)
    TWINS.pop("minigrad_test_kernel")


def test_no_kernel_needs_toolkit_headers():
    """NVRTC finds no CUDA toolkit headers on a machine with only the CuPy wheel: a kernel
    that includes one (math_constants.h, for CUDART_INF_F) fails to compile there."""
    for module in (activation, im2col, norm, pool_kernels):
        for value in vars(module).values():
            if isinstance(value, kernels.Kernel):
                assert "#include" not in value.body and "CUDART_" not in value.body, value.name


def _copy_twin(x, n, y):
    y[...] = x * n
    return y


@pytest.mark.skipif(mg.cuda.is_available() and not hasattr(mg.backend._cupy, "stats"),
                    reason="checks the CuPy stand-in's ElementwiseKernel")
def test_the_stand_in_runs_twins_and_refuses_kernel_calls_that_cupy_would_refuse():
    import fake_cupy as fcp

    with mock.patch.dict(TWINS, {"minigrad_test_scale": _copy_twin}):
        scale = fcp.ElementwiseKernel("raw T x, int32 n", "T y", "y = x[i] * n;",
                                      "minigrad_test_scale")
    x, y = fcp.asarray(np.arange(3.0)), fcp.zeros(3)
    np.testing.assert_array_equal(fcp.asnumpy(scale(x, 2, y)), [0.0, 2.0, 4.0])
    with pytest.raises(TypeError, match="takes 3 arguments, got 2"):
        scale(x, y)
    with pytest.raises(TypeError, match="x must be a device array, got ndarray"):
        scale(np.zeros(3), 1, y)
    with pytest.raises(TypeError, match="n must be a number"):
        scale(x, x, y)
    with pytest.raises(TypeError, match="y is int64, but type T is float64"):
        scale(x, 1, fcp.zeros(3, dtype=np.int64))
    with pytest.raises(NotImplementedError, match="no NumPy twin"):
        fcp.ElementwiseKernel("T x", "T y", "y = x;", "not_a_minigrad_kernel")
    with mock.patch.dict(TWINS, {"minigrad_test_scale": _copy_twin}):
        all_raw = fcp.ElementwiseKernel("raw T x, int32 n", "raw T y", "y[i] = x[i] * n;",
                                        "minigrad_test_scale")
    with pytest.raises(ValueError, match="loop size is undecided"):
        all_raw(x, 2, y)
    np.testing.assert_array_equal(fcp.asnumpy(all_raw(x, 2, y, size=3)), [0.0, 2.0, 4.0])
