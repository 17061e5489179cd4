"""Every fast path of ops/fast/ against its reference Function (values and gradients), on the
device it is for, and the dispatch that chooses between them.

On a machine without a GPU the "cuda" device is the CuPy stand-in, which runs each CUDA
kernel's NumPy twin: these tests then check the CUDA path's layouts, chunking, GEMMs and
kernel arguments; on a GPU they check the kernels themselves.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from helpers import DEVICES, kernel_threads, rngs, sample, window_geometry
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.nn.functional as F
from minigrad.kernels import cpu as cpu_kernels
from minigrad.ops import activation, conv, fast, pool, upsample
from minigrad.ops import normalization as norm
from minigrad.ops.fast import (
    cpu_conv,
    cpu_conv_direct,
    cpu_conv_transpose,
    cpu_pool,
    cpu_winograd,
    cuda_activation,
    cuda_conv,
    cuda_norm,
    cuda_pool,
)
from minigrad.testing import assert_functions_agree

CUDA = pytest.mark.skipif("cuda" not in DEVICES, reason="no cuda device, real or stand-in")
needs_numba = pytest.mark.skipif(cpu_kernels.numba is None, reason="Numba is not installed")
FAST_CONV = {"cpu": cpu_conv.Conv2dCPU, "cuda": cuda_conv.Conv2dCUDA}


@st.composite
def conv_geometry(draw):
    rng, window = draw(rngs()), draw(window_geometry())
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c, oc = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))
    inputs = [sample(rng, (draw(st.integers(1, 3)), c, *window["size"])),
              sample(rng, (oc, c // groups, *window["kernel"]))]
    if draw(st.booleans()):
        inputs.append(sample(rng, (oc,)))
    requires_grad = [draw(st.booleans()), True] + [draw(st.booleans())] * (len(inputs) - 2)
    settings = dict(stride=window["stride"], padding=window["padding"],
                    dilation=window["dilation"], groups=groups)
    return inputs, requires_grad, settings


@pytest.mark.parametrize("device", DEVICES)
@given(case=conv_geometry())
def test_conv2d_fast_path_matches_the_reference(device, case):
    inputs, requires_grad, settings = case
    assert_functions_agree(FAST_CONV[device], conv.Conv2d, inputs, device=device,
                           requires_grad=requires_grad, **settings)


@needs_numba
@given(case=conv_geometry(), batch=st.sampled_from([1, 3, 33]), threads=st.sampled_from([1, 2, 3]))
def test_direct_conv2d_matches_the_reference_in_float32(case, batch, threads):
    """The compiled direct convolution (ops/fast/cpu_conv_direct.py) on every geometry it
    takes: stride and dilation down the columns, stride 1 and no dilation along the rows; its
    channels shared out over 1, 2 or 3 threads."""
    with kernel_threads(threads):
        _direct_conv2d_matches_the_reference(case, batch)


@needs_numba
@given(case=conv_geometry(), batch=st.sampled_from([1, 3, 33]), threads=st.sampled_from([1, 2]),
       chunk=st.sampled_from([0, 300, 4 * 2**20]))
def test_short_rows_conv2d_matches_the_reference_in_float32(case, batch, threads, chunk):
    """The direct forward with Conv2dCPU's backward, its columns rebuilt from the saved input in
    blocks of output rows (chunk 0: one row at a time)."""
    with kernel_threads(threads), mock.patch.object(cpu_conv_direct, "CHUNK_BYTES", chunk):
        _direct_conv2d_matches_the_reference(case, batch, cpu_conv_direct.Conv2dShortRowsCPU)


def _direct_conv2d_matches_the_reference(case, batch, function=cpu_conv_direct.Conv2dDirectCPU):
    inputs, requires_grad, settings = case
    if settings["groups"] != 1:  # the direct path takes one group: a weight over all channels
        inputs[1] = np.random.default_rng(0).standard_normal(
            (inputs[1].shape[0], inputs[0].shape[1], *inputs[1].shape[2:]))
        settings["groups"] = 1
    settings["stride"] = (settings["stride"][0], 1)
    settings["dilation"] = (settings["dilation"][0], 1)
    inputs[0] = np.resize(inputs[0], (batch, *inputs[0].shape[1:]))  # samples repeated
    assert_functions_agree(function, conv.Conv2d, inputs,
                           dtype=np.float32, requires_grad=requires_grad, atol=1e-5, rtol=1e-4,
                           **settings)


@needs_numba
@pytest.mark.parametrize("stride_h, dilation_h", [(1, 1), (1, 2), (2, 1)])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_direct_conv2d_3x3_sweeps_match_the_reference(stride_h, dilation_h, threads):
    """The 3x3 kernel's own sweeps (forward, the weight's gradient, and the input's as a full
    convolution where the stride is 1), odd channel counts, channels shared out over threads."""
    rng = np.random.default_rng(stride_h * 10 + dilation_h)
    inputs = [sample(rng, (5, 3, 9, 7)), sample(rng, (5, 3, 3, 3)), sample(rng, (5,))]
    with kernel_threads(threads):
        assert_functions_agree(cpu_conv_direct.Conv2dDirectCPU, conv.Conv2d, inputs,
                               dtype=np.float32, requires_grad=[True, True, True], atol=1e-5,
                               rtol=1e-4, stride=(stride_h, 1), padding=(1, 2, 1, 0),
                               dilation=(dilation_h, 1), groups=1)


@needs_numba
@given(rng=rngs(), batch=st.sampled_from([8, 9]), channels=st.integers(16, 18),
       out_channels=st.integers(1, 4), size=st.tuples(st.integers(1, 7), st.integers(1, 7)),
       padding=st.tuples(*[st.integers(0, 2)] * 4), bias=st.booleans(),
       needs=st.sampled_from([(True, True), (True, False), (False, True)]),
       threads=st.sampled_from([1, 2]), block=st.sampled_from([0, 4000, 10**9]))
def test_winograd_conv2d_matches_the_reference(rng, batch, channels, out_channels, size,
                                               padding, bias, needs, threads, block):
    """The CPU's Winograd F(2x2, 3x3) against the reference: odd and even output sizes (the
    tiles' last row or column cut off), asymmetric padding, each gradient alone, the
    transforms over 1 or 2 threads, and V and M in blocks of tile rows down to one."""
    top, bottom, left, right = padding
    size = (max(size[0], 3 - top - bottom), max(size[1], 3 - left - right))
    inputs = [sample(rng, (batch, channels, *size)), sample(rng, (out_channels, channels, 3, 3))]
    requires_grad = list(needs)
    if bias:
        inputs.append(sample(rng, (out_channels,)))
        requires_grad.append(True)
    with kernel_threads(threads), mock.patch.object(cpu_winograd, "BLOCK_BYTES", block):
        assert_functions_agree(cpu_winograd.Conv2dWinogradCPU, conv.Conv2d, inputs,
                               dtype=np.float32, requires_grad=requires_grad, atol=1e-5,
                               rtol=1e-4, stride=(1, 1), padding=padding, dilation=(1, 1),
                               groups=1)


window_sizes = st.tuples(st.integers(1, 4), st.integers(1, 4))


@st.composite
def conv_transpose_geometry(draw):
    rng = draw(rngs())
    groups = draw(st.sampled_from([1, 1, 2]))
    cin, cout_g = groups * draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    size = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    full = [(n - 1) * s + d * (k - 1) + op + 1 for n, s, d, k, op in
            zip(size, stride, dilation, kernel, output_padding)]
    padding = tuple(draw(st.integers(0, (f - 1) // 2)) for f in full)
    inputs = [sample(rng, (draw(st.integers(1, 3)), cin, *size)),
              sample(rng, (cin, cout_g, *kernel))]
    if draw(st.booleans()):
        inputs.append(sample(rng, (cout_g * groups,)))
    requires_grad = [draw(st.booleans()), True] + [True] * (len(inputs) - 2)
    return inputs, requires_grad, dict(stride=stride, padding=padding,
                                       output_padding=output_padding, dilation=dilation,
                                       groups=groups)


@given(case=conv_transpose_geometry())
def test_conv_transpose2d_fast_path_matches_the_reference(case):
    inputs, requires_grad, settings = case
    assert_functions_agree(cpu_conv_transpose.ConvTranspose2dCPU, upsample.ConvTranspose2d,
                           inputs, requires_grad=requires_grad, **settings)


@given(rng=rngs(), batch=st.integers(1, 3), channels=st.integers(1, 4), size=window_sizes,
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)), bias=st.booleans(),
       layout=st.sampled_from(["nchw", "batch-innermost", "columns-first"]),
       grad_batch_innermost=st.booleans())
def test_conv_transpose2d_with_disjoint_windows_matches_the_reference(rng, batch, channels,
                                                                      size, kernel, bias,
                                                                      layout,
                                                                      grad_batch_innermost):
    """stride = kernel (U-Net's upsampling): the one-pass path, on an input in each layout
    (batch innermost as the CPU conv hands it out), against the reference on NCHW; the
    gradient NCHW (a GEMM per sample) or batch innermost (im2col's path)."""
    arrays = [sample(rng, (batch, channels, *size)), sample(rng, (channels, 3, *kernel))]
    arrays += [sample(rng, (3,))] if bias else []
    upstream = rng.standard_normal((batch, 3, size[0] * kernel[0], size[1] * kernel[1]))
    upstream = (mg.tensor(np.ascontiguousarray(upstream.transpose(1, 2, 3, 0))).permute(
        3, 0, 1, 2) if grad_batch_innermost else mg.tensor(upstream))
    settings = dict(stride=kernel, padding=(0, 0), output_padding=(0, 0), dilation=(1, 1),
                    groups=1)
    results = []
    for function in (cpu_conv_transpose.ConvTranspose2dCPU, upsample.ConvTranspose2d):
        tensors = [mg.tensor(a, requires_grad=True) for a in arrays]
        x = tensors[0]
        if function is not upsample.ConvTranspose2d and layout == "batch-innermost":
            x = F.conv2d(x, mg.tensor(np.eye(channels).reshape(channels, channels, 1, 1)))
            assert x.array.transpose(1, 2, 3, 0).flags.c_contiguous
        elif function is not upsample.ConvTranspose2d and layout == "columns-first":
            x = x.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2)  # (N, C, W, H) memory
        with mock.patch.object(cpu_conv_transpose, "_disjoint_windows",
                               wraps=cpu_conv_transpose._disjoint_windows) as disjoint, \
                mock.patch.object(cpu_conv_transpose, "_disjoint_windows_backward",
                                  wraps=cpu_conv_transpose._disjoint_windows_backward) as back:
            out = function.apply(x, *tensors[1:], **settings)
            out.backward(upstream)
        results.append([out.numpy()] + [t.grad.numpy() for t in tensors])
        fast_path = function is cpu_conv_transpose.ConvTranspose2dCPU
        assert disjoint.called == fast_path
        # (a gradient with one sample, or one pixel, is both NCHW and batch innermost)
        inner = upstream.array.transpose(1, 2, 3, 0).flags.c_contiguous
        assert back.called == (fast_path and not inner)
        assert inner or not grad_batch_innermost
    for ours, reference in zip(*results):
        np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-12)


def test_conv_transpose2d_keeps_the_cpu_convs_layout():
    x = F.conv2d(mg.tensor(np.ones((2, 3, 4, 4))), mg.ones(5, 3, 1, 1, dtype=mg.float64))
    out = F.conv_transpose2d(x, mg.ones(5, 2, 2, 2, dtype=mg.float64), stride=2)
    assert out.grad_fn is None and out.array.transpose(1, 2, 3, 0).flags.c_contiguous


@needs_numba
def test_direct_and_winograd_conv2d_are_chosen_where_they_pay():
    def chosen(x_shape, w_shape, stride=1, dilation=1):
        x = mg.zeros(*x_shape)
        facts = dict(kernel=w_shape[2:], dtype=np.float32, channels=x_shape[1],
                     out_channels=w_shape[0], batch=x_shape[0],
                     out_width=x_shape[3] - w_shape[3] + 1)
        return fast.select(conv.Conv2d, x, facts, stride=(stride, stride),
                           padding=(0, 0, 0, 0), dilation=(dilation, dilation), groups=1)

    assert chosen((128, 1, 28, 28), (6, 1, 5, 5)) is cpu_conv_direct.Conv2dDirectCPU
    assert chosen((64, 6, 14, 14), (16, 6, 5, 5)) is cpu_conv_direct.Conv2dDirectCPU
    assert chosen((8, 16, 64, 64), (16, 16, 3, 3)) is cpu_conv_direct.Conv2dDirectCPU  # U-Net
    assert chosen((2, 1, 28, 28), (6, 1, 5, 5)) is cpu_conv.Conv2dCPU  # rows too short
    # an RGB image's first layer with many output channels: the direct forward, GEMMs back
    assert chosen((8, 3, 64, 64), (64, 3, 3, 3)) is cpu_conv_direct.Conv2dShortRowsCPU
    assert chosen((2, 3, 226, 226), (64, 3, 3, 3)) is cpu_conv_direct.Conv2dShortRowsCPU
    assert chosen((8, 4, 64, 64), (64, 4, 3, 3)) is cpu_conv.Conv2dCPU  # rows of 36
    assert chosen((8, 3, 64, 64), (64, 3, 3, 3), stride=2) is cpu_conv.Conv2dCPU
    assert chosen((8, 16, 34, 34), (32, 16, 3, 3)) is cpu_conv_direct.Conv2dDirectCPU
    assert chosen((8, 64, 34, 34), (32, 64, 3, 3)) is cpu_conv_direct.Conv2dDirectCPU
    assert chosen((16, 128, 18, 18), (32, 128, 3, 3)) is cpu_winograd.Conv2dWinogradCPU  # weights
    assert chosen((8, 64, 64, 64), (64, 64, 3, 3)) is cpu_winograd.Conv2dWinogradCPU  # VGG's
    assert chosen((8, 256, 18, 18), (256, 256, 3, 3)) is cpu_winograd.Conv2dWinogradCPU
    assert chosen((4, 64, 64, 64), (64, 64, 3, 3)) is cpu_conv.Conv2dCPU  # batch too small
    assert chosen((8, 512, 6, 6), (512, 512, 3, 3)) is cpu_conv.Conv2dCPU  # rows too short
    assert chosen((8, 64, 64, 64), (64, 64, 3, 3), dilation=2) is cpu_conv.Conv2dCPU
    assert chosen((8, 64, 64, 64), (64, 64, 3, 3), stride=2) is cpu_conv.Conv2dCPU
    assert chosen((8, 64, 64, 64), (64, 64, 5, 5)) is cpu_conv.Conv2dCPU
    mg.kernels.cpu.enable(False)
    try:
        assert chosen((128, 1, 28, 28), (6, 1, 5, 5)) is cpu_conv.Conv2dCPU
    finally:
        mg.kernels.cpu.enable(True)


@pytest.mark.parametrize("device", DEVICES)
@given(case=conv_geometry())
def test_conv2d_fast_path_matches_the_reference_in_float32(device, case):
    inputs, requires_grad, settings = case
    assert_functions_agree(FAST_CONV[device], conv.Conv2d, inputs, dtype=np.float32,
                           device=device, requires_grad=requires_grad, atol=1e-5, rtol=1e-4,
                           **settings)


@given(case=conv_geometry(), chunk=st.sampled_from([0, 300, 3000]))
def test_cpu_conv2d_in_blocks_of_rows_matches_the_reference(case, chunk):
    """Above CHUNK_BYTES the CPU conv goes through the output a block of rows at a time (down
    to one row; the blocks' input rows overlap by the kernel's reach), and the backward builds
    each block's columns again."""
    inputs, requires_grad, settings = case
    with mock.patch.object(cpu_conv, "CHUNK_BYTES", chunk):
        assert_functions_agree(cpu_conv.Conv2dCPU, conv.Conv2d, inputs,
                               requires_grad=requires_grad, **settings)


def test_cpu_conv2d_blocks_keep_the_columns_within_the_budget():
    x = np.zeros((2, 3, 9, 5))
    built = []
    original = cpu_conv._im2col

    def spy(*args):
        cols = original(*args)
        built.append(cols.nbytes)
        return cols

    with mock.patch.object(cpu_conv, "CHUNK_BYTES", 3 * 3 * 3 * 5 * 2 * 8 * 2), \
            mock.patch.object(cpu_conv, "_im2col", spy):
        out = F.conv2d(mg.tensor(x, requires_grad=True), mg.ones(4, 3, 3, 3, dtype=mg.float64,
                                                                 requires_grad=True), padding=1)
        out.sum().backward()
    assert len(built) == 5 * 2 and max(built) <= cpu_conv.CHUNK_BYTES  # 5 blocks, each way


@CUDA
@given(case=conv_geometry(), budget=st.sampled_from([1, 200, 2000]))
def test_cuda_conv2d_in_chunks_of_the_batch_matches_the_reference(case, budget):
    """With a small column budget the batch goes through in chunks (down to one image)."""
    inputs, requires_grad, settings = case
    with mock.patch.object(cuda_conv, "COLS_BUDGET_BYTES", budget):
        assert_functions_agree(cuda_conv.Conv2dCUDA, conv.Conv2d, inputs, device="cuda",
                               requires_grad=requires_grad, **settings)


def test_cuda_conv2d_chunks_keep_the_columns_within_the_budget():
    with mock.patch.object(cuda_conv, "COLS_BUDGET_BYTES", 1000):
        assert cuda_conv.batch_chunks(10, 300) == [(0, 3), (3, 6), (6, 9), (9, 10)]
        assert cuda_conv.batch_chunks(3, 5000) == [(0, 1), (1, 2), (2, 3)]  # one image at least
        assert cuda_conv.batch_chunks(4, 10) == [(0, 4)]


@st.composite
def pool_geometry(draw, tiled=False):
    rng = draw(rngs())
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = kernel if tiled else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (0, 0) if tiled else tuple(draw(st.integers(0, k // 2)) for k in kernel)
    h, w = (draw(st.integers(max(1, k - 2 * p), 9)) for k, p in zip(kernel, padding))
    x = sample(rng, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w))
    if draw(st.booleans()):
        x = np.round(x)  # many ties: the first maximum of each window must get the gradient
    ceil_mode = False if tiled else draw(st.booleans())
    return [x], dict(kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)


@given(case=pool_geometry(tiled=True))
def test_cpu_tiled_max_pool_matches_the_reference(case):
    inputs, settings = case
    assert_functions_agree(cpu_pool.MaxPool2dTiledCPU, pool.MaxPool2d, inputs, **settings)


@given(rng=rngs(), batch=st.integers(1, 3), channels=st.integers(1, 4),
       size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
       out=st.tuples(st.integers(1, 5), st.integers(1, 5)),
       layout=st.sampled_from(["nchw", "batch-innermost", "columns-first"]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_cpu_adaptive_avg_pool_matches_the_reference(rng, batch, channels, size, out, layout,
                                                     dtype):
    """Bins that overlap (an output larger than the input) included, on an input in each
    layout; the gradient comes back in the layout the input had."""
    x_array = sample(rng, (batch, channels, *size)).astype(dtype)
    upstream = mg.tensor(rng.standard_normal((batch, channels, *out)).astype(dtype))
    results = []
    for function in (cpu_pool.AdaptiveAvgPool2dCPU, pool.AdaptiveAvgPool2d):
        leaf = mg.tensor(x_array, requires_grad=True)
        x = leaf
        if function is not pool.AdaptiveAvgPool2d and layout == "batch-innermost":
            x = leaf.permute(1, 2, 3, 0).contiguous().permute(3, 0, 1, 2)
        elif function is not pool.AdaptiveAvgPool2d and layout == "columns-first":
            x = leaf.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2)
        result = function.apply(x, output_size=out)
        assert result.shape == (batch, channels, *out) and result.dtype == dtype
        result.backward(upstream)
        results.append([result.numpy(), leaf.grad.numpy()])
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for ours, reference in zip(*results):
        np.testing.assert_allclose(ours, reference, **tol)


def test_cpu_adaptive_avg_pool_is_chosen_for_small_outputs_and_keeps_the_layout():
    x = F.conv2d(mg.randn(8, 3, 14, 14), mg.randn(16, 3, 1, 1))  # batch innermost
    assert x.array.transpose(1, 2, 3, 0).flags.c_contiguous
    x.requires_grad_(True)
    pooled = F.adaptive_avg_pool2d(x, 1)
    assert pooled.grad_fn.function is cpu_pool.AdaptiveAvgPool2dCPU
    pooled.sum().backward()
    assert x.grad.array.transpose(1, 2, 3, 0).flags.c_contiguous
    np.testing.assert_allclose(x.grad.numpy(), 1 / 196, rtol=1e-6)
    big = F.adaptive_avg_pool2d(mg.randn(1, 1, 64, 64, requires_grad=True), 32)  # A: 4M
    assert big.grad_fn.function is pool.AdaptiveAvgPool2d
    half = F.adaptive_avg_pool2d(mg.tensor(np.ones((1, 1, 4, 4), np.float16),
                                          requires_grad=True), 1)
    assert half.grad_fn.function is pool.AdaptiveAvgPool2d


@CUDA
@given(case=pool_geometry(), dtype=st.sampled_from([np.float32, np.float64]))
def test_cuda_max_pool_matches_the_reference(case, dtype):
    inputs, settings = case
    assert_functions_agree(cuda_pool.MaxPool2dCUDA, pool.MaxPool2d, inputs, dtype=dtype,
                           device="cuda", **settings)


@st.composite
def batch_norm_geometry(draw):
    rng = draw(rngs())
    c = draw(st.integers(1, 4))
    shape = draw(st.sampled_from([(draw(st.integers(2, 6)), c),
                                  (draw(st.integers(1, 3)), c, draw(st.integers(1, 4)),
                                   draw(st.integers(2, 4)))]))
    return rng, shape, [sample(rng, shape), sample(rng, (c,)), sample(rng, (c,))]


@CUDA
@given(case=batch_norm_geometry(), training=st.booleans(), momentum=st.sampled_from([0.1, 1.0]))
def test_cuda_batch_norm_matches_the_reference_and_updates_the_same_statistics(
        case, training, momentum):
    rng, shape, inputs = case
    c = shape[1]
    start = (sample(rng, (c,)), sample(rng, (c,), "positive"))
    stats = {}
    for name in ("fast", "reference"):
        stats[name] = [mg.tensor(a, device="cuda") for a in start]
    settings = dict(training=training, momentum=momentum, eps=1e-5)
    # each Function gets its own running statistics, updated in place; compared afterwards
    assert_functions_agree(
        _with_statistics(cuda_norm.BatchNormCUDA, stats["fast"]),
        _with_statistics(norm.BatchNorm, stats["reference"]), inputs, device="cuda",
        **settings)
    for fast_stat, reference_stat in zip(stats["fast"], stats["reference"]):
        np.testing.assert_allclose(fast_stat.numpy(), reference_stat.numpy(), rtol=1e-10)


def _with_statistics(function, statistics):
    """`function` with running_mean and running_var filled in, as batch_norm passes them."""
    running_mean, running_var = (t.array for t in statistics)

    class WithStatistics:
        __name__ = function.__name__

        @staticmethod
        def apply(*tensors, **settings):
            return function.apply(*tensors, running_mean=running_mean, running_var=running_var,
                                  **settings)

    return WithStatistics


@CUDA
@given(rng=rngs(), shape=st.sampled_from([(5,), (2, 3), (2, 3, 4, 5)]))
def test_cuda_relu_matches_the_reference(rng, shape):
    x = np.round(sample(rng, shape) * 2) / 2  # exact zeros too: the gradient there is 0
    assert_functions_agree(cuda_activation.ReLUCUDA, activation.ReLU, [x], device="cuda")


@CUDA
def test_cuda_relu_backward_is_zero_where_the_unit_is_off_even_for_inf_gradients():
    x = mg.tensor([-1.0, 2.0, 0.0], device="cuda", requires_grad=True)
    F.relu(x).backward(mg.tensor([np.inf, 3.0, np.nan], device="cuda"))
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 3.0, 0.0])


# ---------------------------------------------------------------------------------------------
# the dispatch


def _chosen(reference, device, **settings):
    return fast.select(reference, mg.zeros(1, device=device), **settings)


def test_select_picks_the_cpu_fast_paths_where_they_apply():
    assert _chosen(conv.Conv2d, "cpu") is cpu_conv.Conv2dCPU
    tiled = dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0))
    assert _chosen(pool.MaxPool2d, "cpu", **tiled) is cpu_pool.MaxPool2dTiledCPU
    overlapping = dict(kernel=(3, 3), stride=(2, 2), padding=(1, 1))
    assert _chosen(pool.MaxPool2d, "cpu", **overlapping) is pool.MaxPool2d
    assert _chosen(pool.MaxPool2d, "cpu", **tiled, ceil_mode=True) is pool.MaxPool2d
    assert _chosen(pool.MaxPool2d, "cpu", **tiled, dilation=(2, 1)) is pool.MaxPool2d
    # the compiled batch norm (tests/test_cpu_kernels.py) is for float32 only
    assert _chosen(norm.BatchNorm, "cpu", dtype=np.float64) is norm.BatchNorm
    assert _chosen(activation.ReLU, "cpu") is activation.ReLU


@CUDA
def test_select_picks_the_cuda_fast_paths_while_kernels_are_on():
    assert mg.kernels.enabled(), "the kernels are on by default"
    assert _chosen(conv.Conv2d, "cuda") is cuda_conv.Conv2dCUDA
    overlapping = dict(kernel=(3, 3), stride=(2, 2), padding=(1, 1))
    assert _chosen(pool.MaxPool2d, "cuda", **overlapping) is cuda_pool.MaxPool2dCUDA
    assert _chosen(pool.MaxPool2d, "cuda", **overlapping, ceil_mode=True) is \
        cuda_pool.MaxPool2dCUDA
    assert _chosen(pool.MaxPool2d, "cuda", **overlapping, dilation=(2, 2)) is pool.MaxPool2d
    assert _chosen(norm.BatchNorm, "cuda") is cuda_norm.BatchNormCUDA
    assert _chosen(activation.ReLU, "cuda") is cuda_activation.ReLUCUDA
    mg.kernels.enable(False)
    try:
        assert _chosen(conv.Conv2d, "cuda") is conv.Conv2d
        assert _chosen(activation.ReLU, "cuda") is activation.ReLU
        assert _chosen(conv.Conv2d, "cpu") is cpu_conv.Conv2dCPU  # the CPU does not use them
    finally:
        mg.kernels.enable(True)


@pytest.mark.parametrize("device", DEVICES)
def test_fast_enable_false_runs_the_references_everywhere(device):
    x = mg.tensor(np.random.default_rng(0).standard_normal((2, 3, 6, 6)), device=device)
    weight = mg.ones(4, 3, 3, 3, dtype=mg.float64, device=device)
    fast.enable(False)
    try:
        assert _chosen(conv.Conv2d, device) is conv.Conv2d
        assert _chosen(activation.ReLU, device) is activation.ReLU
        reference = F.max_pool2d(F.relu(F.conv2d(x, weight)), 2)
    finally:
        fast.enable(True)
    assert _chosen(conv.Conv2d, device) is not conv.Conv2d
    np.testing.assert_allclose(reference.numpy(),
                               F.max_pool2d(F.relu(F.conv2d(x, weight)), 2).numpy(), rtol=1e-12)


def test_public_functions_go_through_the_dispatch():
    """conv2d, max_pool2d, batch_norm and relu each call fast.select once, with their
    reference Function and their settings."""
    x = mg.ones(1, 1, 4, 4)
    calls = []
    real_select = fast.select

    def spy(reference, tensor, facts=None, **settings):
        calls.append((reference, settings))
        return real_select(reference, tensor, facts, **settings)

    with mock.patch.object(fast, "select", spy):
        F.conv2d(x, mg.ones(1, 1, 3, 3), padding=1)
        F.max_pool2d(x, 2)
        F.batch_norm(x, None, None, training=True)
        F.relu(x)
    assert [reference for reference, _ in calls] == [conv.Conv2d, pool.MaxPool2d,
                                                     norm.BatchNorm, activation.ReLU]
    assert calls[0][1]["padding"] == (1, 1, 1, 1) and calls[1][1]["stride"] == (2, 2)
