"""Dropout: zero each element with probability p during training, scaling the survivors by
1/(1-p) (inverted dropout) so that the expected activation is unchanged and eval needs nothing.
"""

from __future__ import annotations

from minigrad import backend
from minigrad.autograd import Function


class Dropout(Function):
    twice_differentiable = True
    constant_saves = (0,)  # the mask

    @staticmethod
    def forward(ctx, x, *, mask):
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask  # the mask is a constant: no gradient for it


def dropout(x, p: float = 0.5, training: bool = True, inplace: bool = False):
    """x with each element zeroed with probability p and the rest scaled by 1/(1-p).

    Identity in eval mode and for p=0; p=1 gives zeros (not NaN). The mask is drawn from the
    device's seeded generator (`minigrad.manual_seed`). `inplace=True` is accepted and gives
    the same result, computed out of place (as F.relu's: ops/activation.py).
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p}")
    if not training or p == 0:
        return x
    return Dropout.apply(x, mask=_mask(x, p, x.shape))


def _mask(x, p: float, shape: tuple):
    """0 with probability p, else 1 / (1 - p), of `shape` (broadcast over x)."""
    if p == 1:
        return backend.array_module(x.device).zeros(shape, dtype=x.dtype)
    with backend.device_context(x.device):
        keep = backend.generator(x.device).random(shape, dtype=backend.float32) >= p
    return keep.astype(x.dtype) * (1 / (1 - p))


def dropout2d(x, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Whole channels zeroed with probability p, the rest scaled by 1/(1-p): one draw per
    (sample, channel) of an (N, C, H, W) or (C, H, W) input, as torch's dropout2d."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout2d: p must be a probability in [0, 1], got {p}")
    if x.ndim not in (3, 4):
        raise ValueError(f"dropout2d: expected a 3-D or 4-D input, got shape {x.shape}")
    if not training or p == 0:
        return x
    return Dropout.apply(x, mask=_mask(x, p, x.shape[:-2] + (1, 1)))  # broadcast over H, W
