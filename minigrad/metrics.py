"""Evaluation metrics: accuracy, confusion matrix, average precision and mAP.

Inputs may be NumPy arrays, Tensors (on any device) or lists; results are Python floats or
NumPy arrays.

Average precision ranks the samples by score and summarises the precision/recall curve:
- "area" (default, the VOC devkit since VOC2010, `VOCap`): make precision monotonically
  non-increasing from the right (each point takes the best precision at any higher recall),
  then sum that envelope over every step in recall.
- "11point" (VOC2007): the mean of the envelope's precision at recall 0, 0.1, ..., 1.
- "raw": sum over thresholds of (R_n - R_(n-1)) * P_n, no envelope, samples with equal
  scores taken together, as `sklearn.metrics.average_precision_score`.
"""

from __future__ import annotations

import numpy as np

from minigrad.tensor import Tensor

AP_MODES = ("area", "11point", "raw")


def _array(values, name: str) -> np.ndarray:
    if isinstance(values, Tensor):
        return values.numpy()
    array = np.asarray(values)
    if array.dtype == object:
        raise TypeError(f"{name}: expected numbers, got {type(values).__name__}")
    return array


def accuracy(output, target, topk: int = 1) -> float:
    """The fraction of samples whose target is among the `topk` highest scores.

    output: scores (N, C), or predicted labels (N,) for topk=1; target: labels (N,).
    """
    output, target = _array(output, "accuracy"), _array(target, "accuracy")
    if target.ndim != 1 or len(output) != len(target):
        raise ValueError(f"accuracy: output of shape {output.shape} and target of shape "
                         f"{target.shape} do not describe the same N samples")
    if output.ndim == 1:
        if topk != 1:
            raise ValueError("accuracy: top-k needs scores of shape (N, C), not labels")
        return float((output == target).mean()) if len(target) else 0.0
    if not 1 <= topk <= output.shape[1]:
        raise ValueError(f"accuracy: topk={topk} for {output.shape[1]} classes")
    best = np.argpartition(-output, topk - 1, axis=1)[:, :topk]
    return float((best == target[:, None]).any(axis=1).mean()) if len(target) else 0.0


def confusion_matrix(target, prediction, num_classes: int | None = None) -> np.ndarray:
    """(C, C) int64 counts: row = true class, column = predicted class (scikit-learn's order)."""
    target, prediction = _array(target, "confusion_matrix"), _array(prediction, "confusion_matrix")
    if target.shape != prediction.shape or target.ndim != 1:
        raise ValueError(f"confusion_matrix: target {target.shape} and prediction "
                         f"{prediction.shape} must be two label vectors of one length")
    if target.size and (target.dtype.kind not in "iu" or prediction.dtype.kind not in "iu"):
        raise TypeError("confusion_matrix: labels must be integers")
    if num_classes is None:
        num_classes = int(max(target.max(initial=-1), prediction.max(initial=-1))) + 1
    if target.size and (min(target.min(), prediction.min()) < 0
                        or max(target.max(), prediction.max()) >= num_classes):
        raise ValueError(f"confusion_matrix: labels must lie in [0, {num_classes})")
    counts = np.bincount(target * num_classes + prediction, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _ap_one(scores: np.ndarray, targets: np.ndarray, mode: str) -> float:
    positives = int(targets.sum())
    if positives == 0:
        return float("nan")  # undefined without a positive sample
    if mode == "raw":
        order = np.argsort(-scores, kind="stable")
        scores, targets = scores[order], targets[order]
        last_of_tie = np.r_[np.diff(scores) != 0, True]  # thresholds at distinct scores
        tp = np.cumsum(targets)[last_of_tie]
        seen = np.arange(1, len(scores) + 1)[last_of_tie]
        recall, precision = tp / positives, tp / seen
        return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(targets[order])
    recall = tp / positives
    precision = tp / np.arange(1, len(scores) + 1)
    if mode == "11point":
        return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                              for t in np.linspace(0, 1, 11)]))
    recall = np.r_[0.0, recall, 1.0]
    envelope = np.r_[0.0, precision, 0.0]
    envelope = np.maximum.accumulate(envelope[::-1])[::-1]  # non-increasing from the right
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * envelope[steps + 1]))


def average_precision(scores, targets, mode: str = "area"):
    """AP of scores against 0/1 targets: a float for (N,), an array of C for (N, C) (one per
    class; nan for a class without positive samples)."""
    if mode not in AP_MODES:
        raise ValueError(f"average_precision: mode must be one of {AP_MODES}, got {mode!r}")
    scores = _array(scores, "average_precision").astype(np.float64)
    targets = _array(targets, "average_precision")
    if scores.shape != targets.shape or scores.ndim not in (1, 2):
        raise ValueError(f"average_precision: scores {scores.shape} and targets "
                         f"{targets.shape} must have one shape, (N,) or (N, C)")
    if not np.isin(targets, (0, 1)).all():
        raise ValueError("average_precision: targets must be 0 or 1")
    targets = targets.astype(np.float64)
    if scores.ndim == 1:
        return _ap_one(scores, targets, mode)
    return np.array([_ap_one(scores[:, c], targets[:, c], mode) for c in range(scores.shape[1])])


def mean_average_precision(scores, targets, mode: str = "area") -> float:
    """The mean of the per-class APs of (N, C) scores and targets, over the classes that have
    at least one positive sample."""
    per_class = average_precision(scores, targets, mode)
    per_class = np.atleast_1d(per_class)
    if np.isnan(per_class).all():
        raise ValueError("mean_average_precision: no class has a positive sample")
    return float(np.nanmean(per_class))


# ---------------------------------------------------------------------------------------------
# segmentation: a confusion matrix over pixels, and IoU from it


def segmentation_confusion(target, prediction, num_classes: int,
                           ignore_index: int | None = 255) -> np.ndarray:
    """(C, C) int64 pixel counts (row: true class, column: predicted) over label maps of any
    shape; pixels whose target is ignore_index (VOC's void border) are not counted.
    `prediction` may also be scores (N, C, H, W) for targets (N, H, W): the argmax is taken."""
    target = _array(target, "segmentation_confusion")
    prediction = _array(prediction, "segmentation_confusion")
    if prediction.ndim == target.ndim + 1 and prediction.shape[1] == num_classes:
        prediction = prediction.argmax(axis=1)
    if target.shape != prediction.shape:
        raise ValueError(f"segmentation_confusion: target {target.shape} and prediction "
                         f"{prediction.shape} must be label maps of one shape (or scores "
                         f"(N, {num_classes}, ...))")
    keep = target != ignore_index if ignore_index is not None else np.ones(target.shape, bool)
    target, prediction = target[keep].astype(np.int64), prediction[keep].astype(np.int64)
    if target.size and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"segmentation_confusion: target labels must lie in [0, "
                         f"{num_classes}) or be {ignore_index}, found {target.min()} to "
                         f"{target.max()}")
    return confusion_matrix(target, prediction, num_classes)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """Intersection over union of each class: TP / (TP + FP + FN); NaN for a class that is
    neither present nor predicted."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, true_positive / union, np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """The mean IoU over the classes that are present or predicted (VOC's mIoU)."""
    ious = iou_per_class(confusion)
    return float(np.nanmean(ious)) if np.isfinite(ious).any() else float("nan")


def pixel_accuracy(confusion: np.ndarray) -> float:
    """The fraction of (counted) pixels labelled right."""
    confusion = np.asarray(confusion)
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else float("nan")
