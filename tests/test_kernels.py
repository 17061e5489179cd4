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
