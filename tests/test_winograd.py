"""Winograd convolution on CUDA (ops/fast/cuda_winograd.py, kernels/winograd.py) and the cuBLAS
batched products it runs on (kernels/gemm.py), against the reference conv2d.

Without a GPU the "cuda" device is the CuPy stand-in: the kernels run as their NumPy twins and
cuBLAS's gemmStridedBatchedEx is emulated from the pointers, leading dimensions and strides it
is given, so the call's arithmetic is checked, not assumed.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from helpers import DEVICES, rngs
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.nn as nn
import minigrad.nn.functional as F
from minigrad.kernels import gemm, winograd
from minigrad.ops import conv
from minigrad.ops.fast import cuda_conv, cuda_winograd
from minigrad.testing import assert_functions_agree

pytestmark = pytest.mark.skipif("cuda" not in DEVICES, reason="no cuda device, real or stand-in")


@pytest.fixture(autouse=True)
def _restore():
    tiles, conv_tf32 = dict(cuda_winograd.TILE_FOR_PRECISION), mg.backends.cudnn.allow_tf32
    yield
    cuda_winograd.TILE_FOR_PRECISION.update(tiles)
    mg.backends.cudnn.allow_tf32 = conv_tf32
    cuda_winograd.enable(True)


@pytest.mark.parametrize("m", [2, 4])
def test_the_transforms_compute_a_correlation_exactly_in_rational_arithmetic(m):
    mats = winograd.MATRICES[m]
    rng = np.random.default_rng(m)
    for _ in range(5):
        d = [Fraction(int(v)) for v in rng.integers(-9, 9, mats.alpha)]
        g = [Fraction(int(v)) for v in rng.integers(-9, 9, 3)]
        gg = [sum(row[j] * g[j] for j in range(3)) for row in mats.G]
        dd = [sum(row[j] * d[j] for j in range(mats.alpha)) for row in mats.BT]
        y = [sum(row[j] * gg[j] * dd[j] for j in range(mats.alpha)) for row in mats.AT]
        assert y == [sum(d[i + j] * g[j] for j in range(3)) for i in range(m)]


@st.composite
def winograd_case(draw):
    rng = draw(rngs())
    n, c, k = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    if h + padding[0] + padding[1] < 3 or w + padding[2] + padding[3] < 3:
        padding = (1, 2, 2, 1)
    inputs = [rng.standard_normal((n, c, h, w)), rng.standard_normal((k, c, 3, 3))]
    if draw(st.booleans()):
        inputs.append(rng.standard_normal(k))
    requires_grad = [draw(st.booleans()), draw(st.booleans())] + [True] * (len(inputs) - 2)
    return inputs, requires_grad, padding, draw(st.sampled_from([2, 4]))


@given(case=winograd_case())
def test_winograd_matches_the_reference_values_and_gradients_in_float32(case):
    inputs, requires_grad, padding, m = case
    mg.backends.cudnn.allow_tf32 = False
    cuda_winograd.TILE_FOR_PRECISION["fp32"] = m
    assert_functions_agree(cuda_winograd.Conv2dWinogradCUDA, conv.Conv2d, inputs,
                           dtype=np.float32, device="cuda", requires_grad=requires_grad,
                           atol=2e-5 if m == 2 else 2e-4, rtol=1e-4, stride=(1, 1),
                           padding=padding, dilation=(1, 1), groups=1)


def _conv_errors(dtype, tf32: bool, m: int):
    """Winograd's output and gradients on cuda in `dtype`, as errors relative to the float64
    reference's range."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 32, 10, 10)), rng.standard_normal((16, 32, 3, 3)) / 17
    upstream = rng.standard_normal((2, 16, 10, 10))
    mg.backends.cudnn.allow_tf32 = tf32
    cuda_winograd.TILE_FOR_PRECISION["fp16" if dtype == np.float16 else
                                      "tf32" if tf32 else "fp32"] = m
    results = []
    for function, device, kind in ((conv.Conv2d, "cpu", np.float64),
                                   (cuda_winograd.Conv2dWinogradCUDA, "cuda", dtype)):
        xs, ws = (mg.tensor(a.astype(kind), device=device, requires_grad=True) for a in (x, w))
        out = function.apply(xs, ws, stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1),
                             groups=1)
        out.backward(mg.tensor(upstream.astype(kind), device=device))
        results.append([t.numpy().astype(np.float64) for t in (out, xs.grad, ws.grad)])
        assert all(t.dtype == kind for t in (out, xs.grad, ws.grad))
    return [np.abs(a - b).max() / np.abs(b).max() for a, b in zip(results[1], results[0])]


@pytest.mark.parametrize("dtype, tf32, m, bound", [
    (np.float32, False, 2, 2e-6), (np.float32, False, 4, 4e-5),
    (np.float32, True, 2, 3e-3), (np.float16, False, 2, 3e-3)])
def test_winograd_in_each_precision_stays_within_its_rounding(dtype, tf32, m, bound):
    errors = _conv_errors(dtype, tf32, m)
    assert max(errors) < bound, errors
    if tf32 or dtype == np.float16:
        assert min(errors) > 1e-5  # the products really were rounded to 10 bits


def test_tf32_reaches_winograd_s_batched_gemms_only_while_cudnn_allows_it():
    import fake_cupy

    if not fake_cupy.installed:
        pytest.skip("counts the stand-in's GEMMs")
    for allowed, expected in ((True, "tf32"), (False, "fp32")):
        mg.backends.cudnn.allow_tf32 = allowed
        fake_cupy.stats.reset()
        x = mg.randn(1, 16, 6, 6, device="cuda", requires_grad=True)
        F.conv2d(x, mg.randn(16, 16, 3, 3, device="cuda", requires_grad=True), padding=1) \
            .sum().backward()
        batched = {p for ndim, _, p in fake_cupy.stats.gemm_precisions if ndim == 3}
        assert batched == {expected}
        assert cuda_winograd.precision(np.float32) == expected


def test_conv2d_takes_winograd_for_3x3_stride_1_and_im2col_otherwise():
    def chosen(c=16, kernel=3, stride=1, dilation=1, groups=1, dtype=mg.float32):
        x = mg.zeros(1, c, 8, 8, dtype=dtype, device="cuda")
        w = mg.zeros(4 * groups, c // groups, kernel, kernel, dtype=dtype, device="cuda")
        out = F.conv2d(x, w, stride=stride, padding=1, dilation=dilation, groups=groups)
        return out.grad_fn, type(out).__name__  # no grad: no node; check the path differently

    calls = []
    real = {f: f.forward for f in (cuda_winograd.Conv2dWinogradCUDA, cuda_conv.Conv2dCUDA)}
    try:
        for function in real:
            function.forward = staticmethod(
                lambda ctx, *a, _f=function, **s: calls.append(_f) or real[_f](ctx, *a, **s))
        for settings, expected in [({}, cuda_winograd.Conv2dWinogradCUDA),
                                   (dict(c=8), cuda_conv.Conv2dCUDA),
                                   (dict(stride=2), cuda_conv.Conv2dCUDA),
                                   (dict(dilation=2), cuda_conv.Conv2dCUDA),
                                   (dict(groups=2), cuda_conv.Conv2dCUDA),
                                   (dict(kernel=5), cuda_conv.Conv2dCUDA),
                                   (dict(dtype=mg.float64), cuda_conv.Conv2dCUDA),
                                   (dict(dtype=mg.float16), cuda_winograd.Conv2dWinogradCUDA)]:
            calls.clear()
            chosen(**settings)
            assert calls == [expected], settings
        cuda_winograd.enable(False)
        calls.clear()
        chosen()
        assert calls == [cuda_conv.Conv2dCUDA]
    finally:
        for function, forward in real.items():
            function.forward = staticmethod(forward)


def test_winograd_gives_the_same_results_in_one_chunk_or_many(monkeypatch):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((5, 16, 6, 7)), rng.standard_normal((8, 16, 3, 3)),
              rng.standard_normal(8)]
    results = []
    for budget in (cuda_winograd.BUDGET_BYTES, 1):  # 1 byte: one image a chunk
        monkeypatch.setattr(cuda_winograd, "BUDGET_BYTES", budget)
        tensors = [mg.tensor(a, dtype=mg.float32, device="cuda", requires_grad=True)
                   for a in arrays]
        out = cuda_winograd.Conv2dWinogradCUDA.apply(*tensors, stride=(1, 1),
                                                     padding=(1, 1, 1, 1), dilation=(1, 1),
                                                     groups=1)
        out.backward(mg.ones_like(out))
        results.append([out.numpy()] + [t.grad.numpy() for t in tensors])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("dtype, out_dtype", [(np.float32, np.float32), (np.float16, np.float32),
                                              (np.float64, np.float64),
                                              (np.float16, np.float16)])
def test_batched_matmul_through_cublas_matches_numpy(trans_a, trans_b, dtype, out_dtype):
    xp = mg.backend.cupy_module()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 5, 4) if trans_a else (3, 4, 5)).astype(dtype)
    b = rng.standard_normal((3, 6, 5) if trans_b else (3, 5, 6)).astype(dtype)
    start = rng.standard_normal((3, 4, 6)).astype(out_dtype)
    expected = ((a.swapaxes(1, 2) if trans_a else a).astype(np.float64)
                @ (b.swapaxes(1, 2) if trans_b else b).astype(np.float64))
    for accumulate in (False, True):
        out = xp.asarray(start)
        gemm.batched_matmul(xp.asarray(a), xp.asarray(b), out, trans_a=trans_a,
                            trans_b=trans_b, accumulate=accumulate)
        tolerance = 1e-2 if out_dtype == np.float16 else 1e-5
        np.testing.assert_allclose(out.get(), expected + (start if accumulate else 0),
                                   rtol=tolerance, atol=tolerance)
        assert out.dtype == out_dtype


def test_batched_matmul_refuses_mixed_dtypes_and_mismatched_shapes():
    xp = mg.backend.cupy_module()
    a32, b32 = xp.zeros((2, 3, 4), dtype=np.float32), xp.zeros((2, 4, 5), dtype=np.float32)
    with pytest.raises(TypeError, match="float32 and float16"):
        gemm.batched_matmul(a32, b32.astype(np.float16), xp.zeros((2, 3, 5), np.float32))
    with pytest.raises(ValueError, match=r"\(2, 3, 4\) @ \(2, 4, 5\) -> \(2, 3, 4\)"):
        gemm.batched_matmul(a32, b32, xp.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        gemm.batched_matmul(a32, b32, xp.zeros((2, 5, 3), np.float32).transpose(0, 2, 1))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_a_vgg16_at_an_eighth_of_its_width_trains_the_same_with_winograd_as_with_im2col(
        tmp_path, monkeypatch, batch_norm):
    """The example's recipe (synthetic VOC tree, its transforms, BCE on 20 classes, SGD with
    momentum, fit) for two epochs with every 3x3 layer by Winograd (its channel threshold
    lowered) and then every one by im2col: the training curves agree to float32's rounding."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    from vgg16_voc import pipelines

    from minigrad.data import DataLoader, VOCClassification, make_synthetic_voc
    from minigrad.training import fit

    monkeypatch.setattr(cuda_winograd, "MIN_CHANNELS", 1)
    mg.backends.cudnn.allow_tf32 = False
    make_synthetic_voc(tmp_path / "voc", 16, image_size=48, seed=0)
    train_tf, val_tf = pipelines(32)
    calls, forward = [], cuda_winograd.Conv2dWinogradCUDA.forward
    monkeypatch.setattr(cuda_winograd.Conv2dWinogradCUDA, "forward", staticmethod(
        lambda ctx, *args, **kwargs: calls.append(1) or forward(ctx, *args, **kwargs)))
    curves = []
    for on in (True, False):
        cuda_winograd.enable(on)
        mg.manual_seed(0)
        model = mg.models.vgg16(num_classes=20, width_mult=0.125, batch_norm=batch_norm,
                                dropout=0.0).to("cuda")
        optimizer = mg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        voc = tmp_path / "voc"
        train = DataLoader(VOCClassification(voc, image_set="train", transform=train_tf), 4,
                           shuffle=True, seed=0, device="cuda")
        val = DataLoader(VOCClassification(voc, image_set="val", transform=val_tf), 8,
                         device="cuda")
        history = fit(model, optimizer, nn.BCEWithLogitsLoss(), train, val, epochs=2,
                      device="cuda", progress=False)
        curves.append([(r["train_loss"], r["val_loss"]) for r in history])
        assert (len(calls) > 0) == on  # every 3x3 layer by Winograd, then none
        calls.clear()
    np.testing.assert_allclose(curves[0], curves[1], rtol=2e-4)
