"""The CUDA kernels' index arithmetic, checked on the CPU through their NumPy references
against the strided-view im2col and the scatter-add col2im of ops/conv.py."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.kernels import im2col as K
from minigrad.ops import conv


@st.composite
def geometry(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    hp, wp = (draw(st.integers(r, r + 5)) for r in reach)
    out = tuple(conv.output_size(s, k, st_, 0, d)
                for s, k, st_, d in zip((hp, wp), kernel, stride, dilation))
    c, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (c, hp, wp, n), kernel, stride, dilation, out


@given(shape=geometry(), seed=st.integers(0, 1000))
def test_im2col_kernel_arithmetic_equals_the_strided_view(shape, seed):
    (c, hp, wp, n), kernel, stride, dilation, out = shape
    x_chwn = np.random.default_rng(seed).standard_normal((c, hp, wp, n))
    x_pad = x_chwn.transpose(3, 0, 1, 2)  # the NCHW view the op works on
    expected = conv._im2col(x_pad, kernel, stride, dilation, out, groups=1)
    by_index = K.im2col_by_index(x_chwn, kernel, stride, dilation, out)
    np.testing.assert_array_equal(by_index.reshape(expected.shape), expected)


@given(shape=geometry(), seed=st.integers(0, 1000))
def test_col2im_kernel_gathering_equals_the_scatter_adds(shape, seed):
    (c, hp, wp, n), kernel, stride, dilation, out = shape
    grad_cols = np.random.default_rng(seed).standard_normal((c, *kernel, *out, n))
    expected = np.zeros((c, hp, wp, n)).transpose(0, 3, 1, 2)
    conv.col2im(grad_cols.transpose(1, 2, 0, 5, 3, 4), expected, kernel, stride, dilation, out)
    gathered = K.col2im_by_index(grad_cols, (c, hp, wp, n), kernel, stride, dilation, out)
    np.testing.assert_allclose(gathered, expected.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)


def test_kernels_are_off_by_default():
    assert not mg.kernels.enabled()


@st.composite
def pool_geometry(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    h, w = (draw(st.integers(max(1, k - 2 * p), 7)) for k, p in zip(kernel, padding))
    return (draw(st.integers(1, 3)), h, w, draw(st.integers(1, 3))), kernel, stride, padding


@given(geometry_=pool_geometry(), seed=st.integers(0, 1000), ties=st.booleans())
def test_max_pool_kernels_arithmetic_equals_the_max_pool_op(geometry_, seed, ties):
    from minigrad.kernels import pool as P
    from minigrad.ops.pool import MaxPool2d

    shape, kernel, stride, padding = geometry_
    x_chwn = np.random.default_rng(seed).standard_normal(shape)
    if ties:
        x_chwn = np.round(x_chwn)  # many equal values: the first maximum must win
    x = mg.tensor(x_chwn.transpose(3, 0, 1, 2), requires_grad=True)
    out = MaxPool2d.apply(x, kernel=kernel, stride=stride, padding=padding)
    upstream = np.random.default_rng(seed + 1).standard_normal(out.shape)
    out.backward(mg.tensor(upstream))
    out_size = out.shape[2:]
    best, argmax = P.max_pool_by_index(x_chwn, kernel, stride, padding, out_size)
    np.testing.assert_array_equal(best, out.numpy().transpose(1, 2, 3, 0))
    grad_x = P.max_pool_backward_by_index(upstream.transpose(1, 2, 3, 0), argmax, shape,
                                          kernel, stride, padding)
    np.testing.assert_allclose(grad_x, x.grad.numpy().transpose(1, 2, 3, 0), atol=1e-12)


@given(shape=st.sampled_from([(5, 3), (2, 3, 4, 2), (3, 1, 2, 5)]), seed=st.integers(0, 1000))
def test_batch_norm_kernels_arithmetic_equals_the_batch_norm_op(shape, seed):
    from minigrad.kernels import norm as N
    from minigrad.ops.norm import _channel_major, _from_channel_major

    rng = np.random.default_rng(seed)
    x, upstream = rng.standard_normal(shape), rng.standard_normal(shape)
    c = shape[1]
    weight, bias = rng.standard_normal(c), rng.standard_normal(c)
    xt = mg.tensor(x, requires_grad=True)
    wt, bt = mg.tensor(weight, requires_grad=True), mg.tensor(bias, requires_grad=True)
    out = mg.nn.functional.batch_norm(xt, None, None, wt, bt, training=True)
    out.backward(mg.tensor(upstream))

    x_cm = _channel_major(x)
    mean, inv_std = x_cm.mean(axis=1), 1 / np.sqrt(x_cm.var(axis=1) + 1e-5)
    y, x_hat = N.normalize_by_index(x_cm, mean, inv_std, weight, bias)
    np.testing.assert_allclose(_from_channel_major(y, shape), out.numpy(), rtol=1e-10)
    g = _channel_major(upstream)
    grad_x = N.normalize_backward_by_index(g, x_hat, weight * inv_std, g.sum(axis=1),
                                           (g * x_hat).sum(axis=1))
    np.testing.assert_allclose(_from_channel_major(grad_x, shape), xt.grad.numpy(), rtol=1e-8,
                               atol=1e-12)


def test_ops_without_a_kernel_ignore_the_kernel_switch():
    """Only conv2d, overlapping max-pool and batch norm dispatch to kernels: with the switch on,
    average pooling must still compute averages through plain array code."""
    import fake_cupy
    import pytest

    if not fake_cupy.installed:
        pytest.skip("the check needs the CuPy stand-in, whose cuda cannot run kernels")
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    expected = mg.nn.functional.avg_pool2d(mg.tensor(x), 3, 2, 1).numpy()
    mg.kernels.enable()
    try:
        got = mg.nn.functional.avg_pool2d(mg.tensor(x, device="cuda"), 3, 2, 1).numpy()
    finally:
        mg.kernels.enable(False)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
