"""Metrics against hand-worked examples, and the raw AP against scikit-learn where installed."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.metrics import (
    accuracy,
    average_precision,
    confusion_matrix,
    mean_average_precision,
)


def test_top1_and_topk_accuracy():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])
    target = np.array([1, 1, 2, 2])
    assert accuracy(scores, target) == 0.5  # samples 0 and 2
    assert accuracy(scores, target, topk=2) == 1.0  # 1 is second in row 1, 2 second in row 3
    assert accuracy(mg.tensor(scores), mg.tensor(target)) == 0.5
    assert accuracy(np.array([1, 0, 2, 2]), target) == 0.75
    with pytest.raises(ValueError, match="same N samples"):
        accuracy(scores, target[:3])


def test_confusion_matrix_rows_are_true_columns_predicted():
    matrix = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2])
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert confusion_matrix([0], [0], num_classes=3).shape == (3, 3)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        confusion_matrix([0, 2], [0, 1], num_classes=2)


# Hand-worked: scores ranked 0.9, 0.8, 0.7, 0.6 with labels 1, 0, 1, 0.
#   precision 1, 1/2, 2/3, 1/2 at recall 1/2, 1/2, 1, 1
#   raw: 1/2 * 1 + 1/2 * 2/3 = 5/6; envelope: 1 up to recall 1/2, then 2/3: also 5/6
#   11-point: recall 0, .1, ..., .5 -> 1 (six points); .6 ... 1 -> 2/3 (five) = (6 + 10/3) / 11
# Ranked labels 0, 1, 1: precision 0, 1/2, 2/3 at recall 0, 1/2, 1
#   raw: 1/2 * 1/2 + 1/2 * 2/3 = 7/12; the envelope lifts the first half to 2/3: area 2/3
#   11-point: every recall level reaches 2/3 -> 2/3
@pytest.mark.parametrize("labels, area, eleven, raw", [
    ([1, 0, 1, 0], 5 / 6, (6 + 10 / 3) / 11, 5 / 6),
    ([0, 1, 1], 2 / 3, 2 / 3, 7 / 12),
    ([1, 1, 0], 1.0, 1.0, 1.0),
])
def test_average_precision_hand_worked(labels, area, eleven, raw):
    scores = np.linspace(0.9, 0.1, len(labels))
    assert average_precision(scores, labels) == pytest.approx(area)
    assert average_precision(scores, labels, mode="11point") == pytest.approx(eleven)
    assert average_precision(scores, labels, mode="raw") == pytest.approx(raw)


def test_average_precision_per_class_and_map():
    scores = np.array([[0.9, 0.1], [0.8, 0.9], [0.7, 0.2]])
    targets = np.array([[0, 1], [1, 0], [1, 0]])
    per_class = average_precision(scores, targets)
    # class 0 ranks 0, 1, 1: 2/3; class 1 ranks its only positive last of three: 1/3
    np.testing.assert_allclose(per_class, [2 / 3, 1 / 3])
    assert mean_average_precision(scores, targets) == pytest.approx((2 / 3 + 1 / 3) / 2)
    no_positive = np.array([[0.5, 0.2], [0.4, 0.3]]), np.array([[1, 0], [0, 0]])
    assert np.isnan(average_precision(*no_positive)[1])
    assert mean_average_precision(*no_positive) == 1.0  # classes without positives are left out
    with pytest.raises(ValueError, match="mode must be one of"):
        average_precision(scores, targets, mode="bad")
    with pytest.raises(ValueError, match="targets must be 0 or 1"):
        average_precision(scores, targets * 2)


@given(seed=st.integers(0, 10_000), n=st.integers(2, 60), levels=st.integers(2, 20))
def test_raw_average_precision_matches_scikit_learn_ties_included(seed, n, levels):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, n) / levels
    labels = rng.integers(0, 2, n)
    labels[0] = 1
    assert average_precision(scores, labels, mode="raw") == pytest.approx(
        metrics.average_precision_score(labels, scores))
