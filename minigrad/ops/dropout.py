"""Dropout: zero each element with probability p during training, scaling the survivors by
1/(1-p) (inverted dropout) so that the expected activation is unchanged and eval needs nothing.
"""

from __future__ import annotations

from minigrad import backend
from minigrad.autograd import Function


class Dropout(Function):
    @staticmethod
    def forward(ctx, x, *, mask):
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask  # the mask is a constant: no gradient for it


def dropout(x, p: float = 0.5, training: bool = True):
    """x with each element zeroed with probability p and the rest scaled by 1/(1-p).

    Identity in eval mode and for p=0; p=1 gives zeros (not NaN). The mask is drawn from the
    device's seeded generator (`minigrad.manual_seed`).
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p}")
    if not training or p == 0:
        return x
    if p == 1:
        mask = backend.array_module(x.device).zeros(x.shape, dtype=x.dtype)
    else:
        with backend.device_context(x.device):
            keep = backend.generator(x.device).random(x.shape, dtype=backend.float32) >= p
        mask = keep.astype(x.dtype) * (1 / (1 - p))
    return Dropout.apply(x, mask=mask)
