"""The numerics torch gets right (issue 20): gradients of norms at zero, cross-entropy on logits
masked with -inf, and float16 reductions and losses that accumulate in float32.

Every case runs minigrad and torch on the same inputs and compares the value, the gradient of
each input that takes one, and their dtypes; an inf or NaN must be where torch has it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import requires_torch, torch

import minigrad as mg
import minigrad.nn.functional as F

pytestmark = requires_torch
INF = math.inf


def _tF():
    return torch().nn.functional


def _run(library, fn, arrays, grad_of, upstream):
    """fn on tensors of `library` (minigrad or torch); returns (output, gradients, tensors)."""
    tensors = [library.tensor(a, requires_grad=i in grad_of) for i, a in enumerate(arrays)]
    out = fn(*tensors)
    out.backward(library.tensor(upstream))
    return out, [tensors[i].grad for i in grad_of]


def _assert_close(ours: np.ndarray, theirs: np.ndarray, rtol: float, what: str) -> None:
    """Close relative to the largest finite value (and to a few of the dtype's subnormal steps,
    where a float16 gradient is as small as 1e-7), with inf and NaN at the same places."""
    tiniest = float(np.finfo(ours.dtype).smallest_subnormal)
    ours, theirs = ours.astype(np.float64), theirs.astype(np.float64)
    finite = theirs[np.isfinite(theirs)]
    scale = float(np.abs(finite).max()) if finite.size else 1.0
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale + 4 * tiniest,
                               equal_nan=True, err_msg=what)


def assert_matches_torch(fn, torch_fn, *arrays, grad_of=(0,), rtol=1e-5, reference=None):
    """fn(*tensors) and its gradients against torch_fn on the same arrays, under one random
    upstream gradient. `reference` (a NumPy dtype) runs torch in that dtype instead, on the same
    values, and rounds its results to the inputs' dtype: torch's float16 where it accumulated
    in float32, for the cases where its own float16 kernel overflows."""
    t = torch()
    dtype = arrays[0].dtype
    shape = tuple(torch_fn(*[t.tensor(a) for a in arrays]).shape)
    upstream = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    theirs_in = [a.astype(reference) if reference and a.dtype.kind == "f" else a for a in arrays]
    out, grads = _run(mg, fn, arrays, grad_of, upstream)
    t_out, t_grads = _run(t, torch_fn, theirs_in, grad_of, upstream.astype(theirs_in[0].dtype))
    assert out.dtype == dtype
    _assert_close(out.numpy(), t_out.detach().numpy().astype(dtype), rtol, "value")
    for i, grad, t_grad in zip(grad_of, grads, t_grads):
        assert grad.dtype == arrays[i].dtype
        _assert_close(grad.numpy(), t_grad.numpy().astype(arrays[i].dtype), rtol,
                      f"gradient of input {i}")


# ---------------------------------------------------------------------------------------------
# 1. norms at zero: the zero subgradient, not 0 / 0

ROWS_WITH_ZEROS = np.array([[0, 0, 0, 0], [1, -2, 3, 0.5], [0, 1.5, 0, -2], [0, 0, 0, 0]],
                           np.float32)


@pytest.mark.parametrize("p", [2, 2.0, 1, 3, 1.5, 0.5, -1, INF, -INF])
@pytest.mark.parametrize("dim, keepdim", [(None, False), (1, False), (1, True), ((0, 1), True)])
def test_norm_gradient_at_zero_is_zero_as_in_torch(p, dim, keepdim):
    assert_matches_torch(lambda x: mg.norm(x, p, dim, keepdim),
                         lambda x: torch().norm(x, p, dim, keepdim), ROWS_WITH_ZEROS)


@pytest.mark.parametrize("p", [2, 3, 0.5])
def test_norm_of_all_zeros_has_zero_gradient(p):
    assert_matches_torch(lambda x: x.norm(p), lambda x: x.norm(p), np.zeros((3, 4), np.float32))


def test_norm_with_p_0_counts_the_nonzero_elements():
    ours = mg.tensor(ROWS_WITH_ZEROS).norm(0, dim=1)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours.numpy(), torch().tensor(ROWS_WITH_ZEROS).norm(0, dim=1))


@pytest.mark.parametrize("p, dim", [(2.0, 1), (2.0, 0), (1.0, 1), (3.0, 1)])
@pytest.mark.parametrize("scale", [1.0, 1e-14])  # below eps, the norm is clamped
def test_normalize_gradient_at_a_zero_row_matches_torch(p, dim, scale):
    assert_matches_torch(lambda x: F.normalize(x, p, dim), lambda x: _tF().normalize(x, p, dim),
                         ROWS_WITH_ZEROS * np.float32(scale))


# ---------------------------------------------------------------------------------------------
# 2. cross-entropy on logits masked with -inf

MASKED_LOGITS = np.array([[0, -INF, 1], [2, 0.5, -INF], [-INF, -INF, 3], [1, 2, 3]], np.float32)
CLASS_WEIGHT = np.array([1, 2, 0.5], np.float32)
TARGETS = {
    "unmasked": np.array([0, 1, 2, 2]),
    "one_masked": np.array([1, 1, 2, 2]),  # sample 0 points at its -inf logit: torch gives inf
    "ignored": np.array([0, -100, 2, 1]),
    "ignored_masked_row": np.array([0, 1, -100, 2]),
}
PROBABILITIES = {  # torch gives NaN where a probability of 0 meets -inf, inf where one > 0 does
    "zero_at_masked": np.array([[.3, 0, .7], [.5, .5, 0], [0, 0, 1], [.2, .3, .5]], np.float32),
    "mass_at_masked": np.array([[.3, .1, .6], [.5, .5, 0], [0, 0, 1], [.2, .3, .5]], np.float32),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("target", list(TARGETS))
def test_cross_entropy_on_masked_logits_matches_torch(reduction, label_smoothing, weighted,
                                                       target):
    def loss(library, functional):
        weight = library.tensor(CLASS_WEIGHT) if weighted else None
        return lambda x, y: functional.cross_entropy(x, y, weight=weight, reduction=reduction,
                                                     label_smoothing=label_smoothing)

    assert_matches_torch(loss(mg, F), loss(torch(), _tF()), MASKED_LOGITS, TARGETS[target])


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("target", list(PROBABILITIES))
def test_cross_entropy_with_probabilities_on_masked_logits_matches_torch(
        reduction, label_smoothing, weighted, target):
    def loss(library, functional):
        weight = library.tensor(CLASS_WEIGHT) if weighted else None
        return lambda x, y: functional.cross_entropy(x, y, weight=weight, reduction=reduction,
                                                     label_smoothing=label_smoothing)

    assert_matches_torch(loss(mg, F), loss(torch(), _tF()), MASKED_LOGITS, PROBABILITIES[target])


@pytest.mark.parametrize("weight", [[1, 0, 1], [0, 1, 1]])  # a zero weight on a -inf logit
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
def test_cross_entropy_zero_weight_on_a_masked_class_matches_torch(weight, label_smoothing):
    weight = np.array(weight, np.float32)
    assert_matches_torch(
        lambda x, y: F.cross_entropy(x, y, mg.tensor(weight), label_smoothing=label_smoothing),
        lambda x, y: _tF().cross_entropy(x, y, torch().tensor(weight),
                                         label_smoothing=label_smoothing),
        MASKED_LOGITS[:2], np.array([1, 0]))


def test_cross_entropy_on_masked_logits_of_an_image_matches_torch():
    logits = np.ascontiguousarray(MASKED_LOGITS.T.reshape(1, 3, 2, 2))
    target = np.array([[[0, 1], [2, -100]]])
    assert_matches_torch(lambda x, y: F.cross_entropy(x, y, label_smoothing=0.1),
                         lambda x, y: _tF().cross_entropy(x, y, label_smoothing=0.1),
                         logits, target)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("target", list(TARGETS))
def test_nll_loss_of_log_softmax_on_masked_logits_matches_torch(reduction, target):
    weight = CLASS_WEIGHT
    assert_matches_torch(
        lambda x, y: F.nll_loss(F.log_softmax(x, 1), y, mg.tensor(weight), reduction=reduction),
        lambda x, y: _tF().nll_loss(_tF().log_softmax(x, 1), y, torch().tensor(weight),
                                    reduction=reduction),
        MASKED_LOGITS, TARGETS[target])


# ---------------------------------------------------------------------------------------------
# 3. float16: reductions and losses accumulate in float32, the results stay float16

HALF_RTOL = 4e-3  # a few float16 roundings (eps = 2^-10)
_rng = np.random.default_rng(20)
LONG = _rng.standard_normal(70_000).astype(np.float16)  # more elements than float16's max
LONG_ROWS = _rng.standard_normal((7, 10_000)).astype(np.float16)
EXTREME = np.array([6e4, -6e4, 3e4, -3e4, 100, -100, 0.5, 0], np.float16)
LOGITS = _rng.standard_normal((70_000, 3)).astype(np.float16)
LABELS = _rng.integers(0, 3, 70_000)
PROBABILITY = (_rng.random(70_000) * 0.98 + 0.01).astype(np.float16)
BINARY = (_rng.random(70_000) > 0.5).astype(np.float16)


def test_float16_mean_of_more_than_65504_elements_has_torchs_gradient():
    assert_matches_torch(lambda x: x.mean(), lambda x: x.mean(), LONG, rtol=HALF_RTOL)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_float16_bce_with_logits_at_6e4_is_finite_as_in_torch(reduction):
    targets = np.array([0, 1, 0, 1, 0, 1, 0, 1], np.float16)
    assert_matches_torch(
        lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction=reduction),
        lambda x, y: _tF().binary_cross_entropy_with_logits(x, y, reduction=reduction),
        EXTREME, targets, rtol=HALF_RTOL)


def _functional(name, **kwargs):
    return (lambda *t: getattr(F, name)(*t, **kwargs),
            lambda *t: getattr(_tF(), name)(*t, **kwargs))


def _method(name, *args, **kwargs):
    return (lambda x: getattr(x, name)(*args, **kwargs),
            lambda x: getattr(x, name)(*args, **kwargs))


# (name, (minigrad fn, torch fn), inputs, reference): reference float32 where torch's float16
# kernel itself overflows (its sum of 70,000 values, its count of 70,000, exp sums past 65504)
FLOAT16_CASES = [
    ("sum", _method("sum"), [LONG], None),
    ("sum_past_the_range_midway", _method("sum"), [np.array([6e4, 1e4, -1e4], np.float16)],
     None),
    ("sum_dim_0", _method("sum", 0), [np.ones((3000, 2), np.float16)], None),  # 2048 + 1 = 2048
    ("mean_dim", _method("mean", 1), [LONG_ROWS], None),
    ("mean_dim_0", _method("mean", 0), [np.abs(LONG_ROWS.T)], None),
    ("mean_shifted", _method("mean"), [LONG + np.float16(3)], None),
    ("var", _method("var"), [LONG], None),
    ("var_shifted", _method("var"), [LONG + np.float16(100)], None),
    ("var_extreme", _method("var"), [EXTREME], None),
    ("std", _method("std"), [LONG], None),
    ("std_correction_0_dim", _method("std", 1, correction=0), [LONG_ROWS], None),
    ("std_extreme", _method("std"), [EXTREME], np.float32),
    ("norm", _method("norm"), [LONG], None),
    ("norm_p1", _method("norm", 1), [LONG], None),
    ("norm_p3_dim", _method("norm", 3, 1), [LONG_ROWS], None),
    ("cumsum", _method("cumsum", 0), [LONG], None),
    ("logsumexp", (lambda x: mg.logsumexp(x, 0), lambda x: torch().logsumexp(x, 0)), [LONG],
     None),
    ("logsumexp_of_zeros", (lambda x: mg.logsumexp(x, 0), lambda x: torch().logsumexp(x, 0)),
     [np.zeros(70_000, np.float16)], np.float32),
    ("softmax", _functional("softmax", dim=0), [LONG], None),
    ("softmax_of_zeros", _functional("softmax", dim=0), [np.zeros(70_000, np.float16)], None),
    ("log_softmax", _functional("log_softmax", dim=0), [LONG], None),
    ("log_softmax_extreme", _functional("log_softmax", dim=0), [EXTREME], None),
    ("log_softmax_of_zeros", _functional("log_softmax", dim=0),
     [np.zeros(70_000, np.float16)], np.float32),
    ("cross_entropy", _functional("cross_entropy"), [LOGITS, LABELS], np.float32),
    ("cross_entropy_smoothed", _functional("cross_entropy", label_smoothing=0.1),
     [LOGITS, LABELS], np.float32),
    ("cross_entropy_sum_rows", _functional("cross_entropy", reduction="sum"),
     [LOGITS[:1000], LABELS[:1000]], None),
    ("cross_entropy_extreme", _functional("cross_entropy"),
     [np.array([[6e4, -6e4, 0], [-6e4, 6e4, 100]], np.float16), np.array([1, 0])], None),
    ("cross_entropy_probabilities", _functional("cross_entropy"),
     [LOGITS, np.full((70_000, 3), 1 / 3, np.float16)], np.float32),
    ("nll_loss", _functional("nll_loss"), [LOGITS, LABELS], np.float32),
    ("mse_loss", _functional("mse_loss"), [LONG, LONG[::-1].copy()], None),
    ("mse_loss_extreme", _functional("mse_loss"), [EXTREME, np.zeros(8, np.float16)], None),
    ("l1_loss", _functional("l1_loss"), [LONG, np.zeros_like(LONG)], None),
    ("smooth_l1_loss", _functional("smooth_l1_loss"), [LONG, np.zeros_like(LONG)], None),
    ("kl_div_batchmean", _functional("kl_div", reduction="batchmean"),
     [-PROBABILITY, PROBABILITY], None),
    ("binary_cross_entropy", _functional("binary_cross_entropy"), [PROBABILITY, BINARY], None),
    ("binary_cross_entropy_with_logits", _functional("binary_cross_entropy_with_logits"),
     [LONG, BINARY], None),
    ("binary_cross_entropy_with_logits_pos_weight",
     (lambda x, y, w: F.binary_cross_entropy_with_logits(x, y, pos_weight=w),
      lambda x, y, w: _tF().binary_cross_entropy_with_logits(x, y, pos_weight=w)),
     [EXTREME, np.tile(np.float16([0, 1]), 4), np.full(8, 3, np.float16)], np.float32),
    ("layer_norm_shifted", _functional("layer_norm", normalized_shape=(35_000,)),
     [(LONG.reshape(2, 35_000) + np.float16(100))], None),
    ("group_norm", (lambda x: F.group_norm(x, 2), lambda x: _tF().group_norm(x, 2)),
     [LONG.reshape(2, 4, 8750) + np.float16(100)], None),
    ("batch_norm_shifted", (lambda x: F.batch_norm(x, None, None, training=True),
                            lambda x: _tF().batch_norm(x, None, None, training=True)),
     [LONG.reshape(35_000, 2) + np.float16(100)], None),
]


@pytest.mark.parametrize("name, fns, inputs, reference", FLOAT16_CASES,
                         ids=[case[0] for case in FLOAT16_CASES])
def test_float16_reductions_and_losses_match_torch(name, fns, inputs, reference):
    grad_of = tuple(i for i, a in enumerate(inputs) if a.dtype == np.float16
                    and not (name.startswith(("cross_entropy_prob", "kl_div", "binary_cross",
                                              "mse", "l1", "smooth")) and i > 0))
    assert_matches_torch(*fns, *inputs, grad_of=grad_of, rtol=HALF_RTOL, reference=reference)


def test_float16_layer_norm_with_weight_and_bias_keeps_float16_gradients():
    x = LONG.reshape(2, 35_000)
    weight, bias = LONG[:35_000].copy(), LONG[35_000:].copy()
    assert_matches_torch(lambda *t: F.layer_norm(t[0], (35_000,), t[1], t[2]),
                         lambda *t: _tF().layer_norm(t[0], (35_000,), t[1], t[2]),
                         x, weight, bias, grad_of=(0, 1, 2), rtol=HALF_RTOL)


def test_float16_batch_norm_updates_its_float16_running_statistics_as_torch():
    x = LONG.reshape(7, 2, 50, 100)
    ours = [mg.zeros(2, dtype=mg.float16), mg.ones(2, dtype=mg.float16)]
    theirs = [torch().zeros(2, dtype=torch().float16), torch().ones(2, dtype=torch().float16)]
    out = F.batch_norm(mg.tensor(x), *ours, training=True)
    t_out = _tF().batch_norm(torch().tensor(x), *theirs, training=True)
    assert out.dtype == ours[0].dtype == ours[1].dtype == np.float16
    _assert_close(out.numpy(), t_out.numpy(), HALF_RTOL, "value")
    for statistic, t_statistic in zip(ours, theirs):
        _assert_close(statistic.numpy(), t_statistic.numpy(), HALF_RTOL, "running statistic")
