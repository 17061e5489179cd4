"""Losses: cross_entropy (fused with log_softmax), nll_loss, binary_cross_entropy,
binary_cross_entropy_with_logits (stable for any logit) and mse_loss.

Every loss computes a per-sample loss and then reduces it: "none" keeps it, "sum" adds it up,
"mean" averages it (for class weights: divides by the sum of the targets' weights, as PyTorch).
Targets are constants: no gradient flows to them. A float16 loss is computed in float32 and
rounded to float16 (`in_float32`), as PyTorch's CPU float16 losses accumulate in float32.
"""

from __future__ import annotations

import math

import numpy as np

from minigrad import amp, backend
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.ops.activation import Sigmoid
from minigrad.ops.elementwise import where
from minigrad.ops.reduce import in_float32
from minigrad.tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


def _log_softmax(x, axis: int):
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def _soft_targets(logits, target, weight, label_smoothing, ignore_index):
    """Each sample's target distribution q (below), zero for an ignored sample; and which
    samples count, and their targets with 0 in place of ignore_index."""
    xp = get_array_module(logits)
    n, classes = logits.shape
    kept = target != ignore_index
    safe_target = xp.where(kept, target, 0)
    q = xp.zeros_like(logits)
    q[xp.arange(n), safe_target] = (1 - label_smoothing) * weight[safe_target]
    q += (label_smoothing / classes) * weight
    q *= kept[:, None]
    return q, kept, safe_target


class CrossEntropy(Function):
    """Class-index cross-entropy on logits (N, C), fused with log_softmax.

    With smoothing eps and class weights w, each sample's target distribution is
        q[c] = (1 - eps) * w[y] * [c == y] + eps / C * w[c]
    and its loss is -sum_c q[c] * log_softmax(x)[c]; the gradient with respect to the logits
    is the closed form  softmax(x) * sum_c q[c] - q.
    The loss is summed as PyTorch sums it, the target's term picked out and the smoothing term
    added only when eps > 0, so that a logit of -inf (a masked class) that no term points at
    gives no 0 * -inf = NaN; a masked target class, or smoothing over one, gives inf.
    Samples whose target is ignore_index get no loss and no gradient.
    """

    @staticmethod
    def formula(logits, target, weight, *, label_smoothing, reduction, ignore_index):
        """-sum_c q[c] log_softmax(x)[c], reduced: for a second derivative."""
        from minigrad.ops.activation import log_softmax

        q, kept, safe_target = _soft_targets(logits.array, target.array, weight.array,
                                             label_smoothing, ignore_index)
        losses = -(log_softmax(logits, 1) * q).sum(axis=1)
        if reduction == "none":
            return losses
        total = losses.sum()
        return total if reduction == "sum" else total / (weight.array[safe_target] * kept).sum()

    @staticmethod
    def forward(ctx, logits, target, weight, *, label_smoothing, reduction, ignore_index):
        xp = get_array_module(logits)
        n, classes = logits.shape
        log_probs = _log_softmax(logits, axis=1)
        q, kept, safe_target = _soft_targets(logits, target, weight, label_smoothing,
                                             ignore_index)
        rows = xp.arange(n)
        with np.errstate(invalid="ignore"):  # a zero weight on a -inf logit: NaN, as in torch
            losses = -(1 - label_smoothing) * weight[safe_target] * log_probs[rows, safe_target]
            if label_smoothing:
                losses -= (label_smoothing / classes) * (weight * log_probs).sum(axis=1)
        losses = xp.where(kept, losses, 0)  # an ignored sample's loss is 0, even where it is inf
        divisor = (weight[safe_target] * kept).sum() if reduction == "mean" else None
        ctx.save_for_backward(log_probs, q, divisor)
        ctx.reduction = reduction
        return _reduce(losses, reduction, divisor)

    @staticmethod
    def backward(ctx, grad):
        log_probs, q, divisor = ctx.saved_tensors
        xp = get_array_module(log_probs)
        grad_logits = xp.exp(log_probs) * q.sum(axis=1, keepdims=True) - q
        return _spread_loss_grad(grad_logits, grad, ctx.reduction, divisor), None, None


class NLLLoss(Function):
    """-w[y] * log_probs[y] for each sample; the gradient is -w[y] at the target's place."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, log_probs, target, weight, *, reduction, ignore_index):
        xp = get_array_module(log_probs)
        n = log_probs.shape[0]
        kept = target != ignore_index
        safe_target = xp.where(kept, target, 0)
        sample_weight = weight[safe_target] * kept
        with np.errstate(invalid="ignore"):  # a zero weight on a -inf logit: NaN, as in torch
            losses = -log_probs[xp.arange(n), safe_target] * weight[safe_target]
        losses = xp.where(kept, losses, 0)  # an ignored sample's loss is 0, even where it is inf
        divisor = sample_weight.sum() if reduction == "mean" else None
        # constants (no input's values), kept as they are: the backward is linear in grad
        ctx.safe_target, ctx.sample_weight, ctx.divisor = safe_target, sample_weight, divisor
        ctx.shape, ctx.reduction = log_probs.shape, reduction
        return _reduce(losses, reduction, divisor)

    @staticmethod
    def backward(ctx, grad):
        xp = get_array_module(ctx.sample_weight)
        grad_log_probs = xp.zeros(ctx.shape, dtype=ctx.sample_weight.dtype)
        grad_log_probs[xp.arange(ctx.shape[0]), ctx.safe_target] = -ctx.sample_weight
        return (_spread_loss_grad(grad_log_probs, grad, ctx.reduction, ctx.divisor), None,
                None)


class BinaryCrossEntropy(Function):
    """-w * (y log p + (1 - y) log(1 - p)); each log is clamped at -100, as in PyTorch, so
    that p = 0 or 1 gives a finite loss. d/dp = w * (p - y) / max(p (1 - p), 1e-12)."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, p, target, weight, *, reduction):
        xp = get_array_module(p)
        log_p = xp.maximum(xp.log(p), -100)
        log_1mp = xp.maximum(xp.log(1 - p), -100)
        losses = -weight * (target * log_p + (1 - target) * log_1mp)
        ctx.save_for_backward(p, target, weight)
        ctx.reduction = reduction
        return _reduce(losses, reduction, None)

    @staticmethod
    def backward(ctx, grad):
        p, target, weight = ctx.saved_tensors
        xp = get_array_module(p)
        grad_p = weight * (p - target) / xp.maximum(p * (1 - p), 1e-12)
        return _spread_loss_grad(grad_p, grad, ctx.reduction, None), None, None


class BinaryCrossEntropyWithLogits(Function):
    """BCE on logits x, computed without ever taking exp of a large number:
        loss = w * ((1 - y) x + (1 + (pw - 1) y) * softplus(-x))
        softplus(-x) = log(1 + e^-x) = max(-x, 0) + log(1 + e^-|x|)
    where pw (pos_weight) scales the positive term;
        d/dx = w * ((1 - y) - (1 + (pw - 1) y) * sigmoid(-x)).
    """

    twice_differentiable = True
    constant_saves = (3,)  # 1 + (pw - 1) y: pos_weight and the target get no gradient

    @staticmethod
    def forward(ctx, x, target, weight, pos_weight, *, reduction):
        xp = get_array_module(x)
        log_weight = 1 + (pos_weight - 1) * target
        softplus_neg = xp.maximum(-x, 0) + xp.log1p(xp.exp(-abs(x)))
        losses = weight * ((1 - target) * x + log_weight * softplus_neg)
        ctx.save_for_backward(x, target, weight, log_weight)
        ctx.reduction = reduction
        return _reduce(losses, reduction, None)

    @staticmethod
    def backward(ctx, grad):
        x, target, weight, log_weight = ctx.saved_tensors
        # sigmoid(-x) by the Function (stable; smooth at 0, for a second derivative)
        grad_x = weight * ((1 - target) - log_weight * Sigmoid.run(-x))
        return _spread_loss_grad(grad_x, grad, ctx.reduction, None), None, None, None


def _reduce(losses, reduction: str, divisor):
    if reduction == "none":
        return losses
    total = losses.sum()
    if reduction == "sum":
        return total
    with np.errstate(divide="ignore", invalid="ignore"):  # every target ignored: NaN, as torch
        return total / (losses.size if divisor is None else divisor)


def _spread_loss_grad(grad_per_element, grad, reduction: str, divisor):
    """Chain the upstream gradient of the reduced loss into the per-element gradient."""
    if reduction == "none":
        shape = grad.shape + (1,) * (grad_per_element.ndim - grad.ndim)
        return grad.reshape(shape) * grad_per_element  # (grad first: it may be a Tensor)
    if reduction == "mean":
        count = math.prod(grad_per_element.shape) if divisor is None else divisor
        xp = get_array_module(grad)
        # nothing counted (every target ignored): no gradient, as in PyTorch, not 0 * inf
        if isinstance(count, (int, np.integer)):  # known on the host
            grad = xp.zeros_like(grad) if count == 0 else grad / count
        else:  # a device count (the weights of the counted targets)
            with np.errstate(divide="ignore", invalid="ignore"):
                grad = xp.where(count == 0, 0, grad / count)
    return grad * grad_per_element


# ---------------------------------------------------------------------------------------------
# checked entry points


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _class_target(op: str, logits: Tensor, target: Tensor, ignore_index: int) -> None:
    if not isinstance(target, Tensor) or target.dtype.kind not in "iu":
        got = target.dtype if isinstance(target, Tensor) else type(target).__name__
        raise TypeError(
            f"{op}: target must be a tensor of integer class indices (int64), got {got}; "
            f"convert labels with .long()" + (" (or give class probabilities, floating, of the "
                                              "input's shape)" if op == "cross_entropy" else "")
        )
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"{op}: target of shape {target.shape} does not match input of shape "
            f"{logits.shape}; expected {logits.shape[:1] + logits.shape[2:]}"
        )
    # checked on the device, without making a GPU wait (see backend.check); the bad value is
    # looked up only on failure
    data, classes = target.array, logits.shape[1]
    outside = ((data < 0) | (data >= classes)) & (data != ignore_index)

    def message() -> str:
        bad = int(data[outside].reshape(-1)[0])
        return f"{op}: target {bad} is out of range for {classes} classes [0, {classes})"

    backend.check(outside.any(), IndexError, message)


def _class_weight(op: str, logits: Tensor, weight) -> Tensor:
    classes = logits.shape[1]
    if weight is None:
        xp = get_array_module(logits.array)
        return Tensor(xp.ones(classes, dtype=logits.dtype))
    if weight.shape != (classes,):
        raise ValueError(f"{op}: weight has shape {weight.shape}, expected ({classes},)")
    return weight.to(logits.dtype)


def _channels_last(x: Tensor, target: Tensor):
    """(N, C, d1, ...) logits and (N, d1, ...) targets as (M, C) and (M,)."""
    if x.ndim == 2:
        return x, target
    moved = x.permute(0, *range(2, x.ndim), 1)
    return moved.reshape(-1, x.shape[1]), target.reshape(-1)


def _restore_shape(loss: Tensor, x: Tensor, reduction: str) -> Tensor:
    return loss.reshape(x.shape[:1] + x.shape[2:]) if reduction == "none" else loss


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,  # noqa: A002
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits (N, C) or (N, C, d1, ...) and class indices (N) or (N, d1, ...)."""
    input, target, weight = amp.full_precision(input, target, weight)  # float32 in autocast
    if input.dtype == backend.float16:
        return in_float32(cross_entropy, input, target, weight, ignore_index, reduction,
                          label_smoothing)
    _check_reduction("cross_entropy", reduction)
    if input.ndim < 2:
        raise ValueError(f"cross_entropy: expected logits (N, C, ...), got shape {input.shape}")
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if (isinstance(target, Tensor) and backend.is_floating(target.dtype)
            and target.shape == input.shape):  # class probabilities, not indices
        return _cross_entropy_with_probabilities(input, target, weight, reduction,
                                                 label_smoothing)
    _class_target("cross_entropy", input, target, ignore_index)
    weight = _class_weight("cross_entropy", input, weight)
    logits, flat_target = _channels_last(input, target)
    loss = CrossEntropy.apply(logits, flat_target, weight, label_smoothing=label_smoothing,
                              reduction=reduction, ignore_index=ignore_index)
    return _restore_shape(loss, input, reduction)


def _cross_entropy_with_probabilities(logits, target, weight, reduction, label_smoothing):
    """-sum_c w_c t_c log softmax(x)_c per sample, for targets that are class probabilities
    (N, C, ...) as PyTorch takes them (mixup, distillation); mean is over the samples."""
    from minigrad.ops.activation import log_softmax

    classes = logits.shape[1]
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / classes
    terms = log_softmax(logits, dim=1) * target.to(logits.dtype)
    if weight is not None:
        terms = terms * _class_weight("cross_entropy", logits, weight).reshape(
            (1, classes) + (1,) * (logits.ndim - 2))
    losses = -terms.sum(dim=1)
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,  # noqa: A002
             ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities (N, C, ...) at class indices (N, ...)."""
    input, target, weight = amp.full_precision(input, target, weight)  # float32 in autocast
    if input.dtype == backend.float16:
        return in_float32(nll_loss, input, target, weight, ignore_index, reduction)
    _check_reduction("nll_loss", reduction)
    if input.ndim < 2:
        raise ValueError(f"nll_loss: expected log-probabilities (N, C, ...), got {input.shape}")
    _class_target("nll_loss", input, target, ignore_index)
    weight = _class_weight("nll_loss", input, weight)
    log_probs, flat_target = _channels_last(input, target)
    loss = NLLLoss.apply(log_probs, flat_target, weight, reduction=reduction,
                         ignore_index=ignore_index)
    return _restore_shape(loss, input, reduction)


def _binary_arguments(op: str, input: Tensor, target: Tensor, **weights):  # noqa: A002
    if not isinstance(target, Tensor) or target.shape != input.shape:
        got = target.shape if isinstance(target, Tensor) else type(target).__name__
        raise ValueError(f"{op}: target of shape {got} must have the input's shape {input.shape}")
    if not backend.is_floating(target.dtype):
        raise TypeError(f"{op}: target must be floating (0./1. or probabilities), got "
                        f"{target.dtype}; convert it with .float()")
    if target.requires_grad:
        raise ValueError(f"{op}: gradients with respect to the target are not supported")
    xp = get_array_module(input.array)
    result = [target.to(input.dtype)]
    for name, w in weights.items():
        if w is None:
            result.append(Tensor(xp.ones((), dtype=input.dtype)))
            continue
        try:
            np.broadcast_shapes(w.shape, input.shape)
        except ValueError:
            raise ValueError(f"{op}: {name} of shape {w.shape} does not broadcast to the input "
                             f"{input.shape}") from None
        result.append(w.detach().to(input.dtype))
    return result


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,  # noqa: A002
                         reduction: str = "mean") -> Tensor:
    """BCE of probabilities in [0, 1] against targets of the same shape."""
    input, target, weight = amp.full_precision(input, target, weight)  # float32 in autocast
    if input.dtype == backend.float16:
        return in_float32(binary_cross_entropy, input, target, weight, reduction)
    _check_reduction("binary_cross_entropy", reduction)
    target, weight = _binary_arguments("binary_cross_entropy", input, target, weight=weight)
    probabilities = input.array

    def message() -> str:
        low, high = float(probabilities.min()), float(probabilities.max())
        return (f"binary_cross_entropy: input must be probabilities in [0, 1], found values in "
                f"[{low}, {high}]; for logits use binary_cross_entropy_with_logits")

    backend.check(((probabilities < 0) | (probabilities > 1)).any(), ValueError, message)
    return BinaryCrossEntropy.apply(input, target, weight, reduction=reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor,  # noqa: A002
                                     weight: Tensor | None = None, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """BCE of sigmoid(input) against targets, fused and stable for any logit."""
    input, target, weight, pos_weight = amp.full_precision(input, target, weight, pos_weight)
    if input.dtype == backend.float16:
        return in_float32(binary_cross_entropy_with_logits, input, target, weight, reduction,
                          pos_weight)
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    target, weight, pos_weight = _binary_arguments(
        "binary_cross_entropy_with_logits", input, target, weight=weight, pos_weight=pos_weight
    )
    return BinaryCrossEntropyWithLogits.apply(input, target, weight, pos_weight,
                                              reduction=reduction)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean squared error; input and target must have the same shape (no silent broadcast)."""
    input, target = amp.full_precision(input, target)  # float32 in autocast
    if input.dtype == backend.float16:
        return in_float32(mse_loss, input, target, reduction)
    _check_reduction("mse_loss", reduction)
    if not isinstance(target, Tensor) or target.shape != input.shape:
        got = target.shape if isinstance(target, Tensor) else type(target).__name__
        raise ValueError(f"mse_loss: target of shape {got} must have the input's shape "
                         f"{input.shape}")
    squared = (input - target) ** 2
    if reduction == "none":
        return squared
    return squared.sum() if reduction == "sum" else squared.mean()


def _same_shape(op: str, input: Tensor, target) -> None:  # noqa: A002
    if not isinstance(target, Tensor) or target.shape != input.shape:
        got = target.shape if isinstance(target, Tensor) else type(target).__name__
        raise ValueError(f"{op}: target of shape {got} must have the input's shape "
                         f"{input.shape}")


def _reduce_elementwise(losses: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean absolute error (the gradient at a zero difference is 0, as in PyTorch)."""
    input, target = amp.full_precision(input, target)  # float32 in autocast
    if input.dtype == backend.float16:
        return in_float32(l1_loss, input, target, reduction)
    _check_reduction("l1_loss", reduction)
    _same_shape("l1_loss", input, target)
    return _reduce_elementwise((input - target).abs(), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean",  # noqa: A002
                   beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target): quadratic
    near zero, linear far away, so an outlier pulls with a bounded force."""
    input, target = amp.full_precision(input, target)  # float32 in autocast
    if input.dtype == backend.float16:
        return in_float32(smooth_l1_loss, input, target, reduction, beta)
    _check_reduction("smooth_l1_loss", reduction)
    _same_shape("smooth_l1_loss", input, target)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    d = (input - target).abs()
    if beta == 0:
        return _reduce_elementwise(d, reduction)
    return _reduce_elementwise(where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta), reduction)


def kl_div(input: Tensor, target: Tensor, reduction: str = "mean",  # noqa: A002
           log_target: bool = False) -> Tensor:
    """KL(target || q) for log-probabilities `input` = log q: target * (log target - input),
    0 where target is 0 (log_target=True: target holds log-probabilities). reduction
    "batchmean" divides the sum by the batch size, the true KL divergence per sample."""
    input, target = amp.full_precision(input, target)  # float32 in autocast
    if input.dtype == backend.float16:
        return in_float32(kl_div, input, target, reduction, log_target)
    if reduction not in ("mean", "sum", "none", "batchmean"):
        raise ValueError(f"kl_div: reduction must be 'mean', 'sum', 'none' or 'batchmean', got "
                         f"{reduction!r}")
    _same_shape("kl_div", input, target)
    if log_target:
        losses = target.exp() * (target - input)
    else:
        positive = target > 0
        log_t = where(positive, target, 1.0).log()  # log 1 = 0 where target is 0
        losses = target * (log_t - input)
    if reduction == "batchmean":
        return losses.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce_elementwise(losses, reduction)
