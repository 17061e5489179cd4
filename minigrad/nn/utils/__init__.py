"""`nn.utils`: clipping gradients, as torch.nn.utils does; `nn.utils.prune` (prune.py)."""

from __future__ import annotations

import math

import numpy as np

from minigrad.backend import get_array_module
from minigrad.tensor import Tensor


def _with_grads(parameters) -> list:
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale the gradients, in place, so that their norm together is at most max_norm; returns
    that total norm (before clipping). Computed where the gradients are: nothing is read back
    from a GPU unless error_if_nonfinite asks for the check."""
    params = _with_grads(parameters)
    if not params:
        return Tensor(0.0)
    xp = get_array_module(params[0].grad.array)
    grads = [p.grad.array for p in params]
    # float16 gradients are summed in float32 (as torch's norms accumulate): 70,000 squares
    # of 1 are inf in float16; the norm comes back in the gradients' dtype
    wide = [g.astype(np.float32) if g.dtype == np.float16 else g for g in grads]
    if norm_type == math.inf:
        total = xp.stack([xp.abs(g).max() for g in wide]).max()
    else:
        total = xp.stack([(xp.abs(g) ** norm_type).sum() for g in wide]).sum() ** (1 / norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                           f"gradients is non-finite ({float(total)}), so it cannot be clipped")
    scale = xp.minimum(max_norm / (total + 1e-6), 1.0)  # never scales gradients up
    for g in grads:
        g *= scale.astype(g.dtype)
    return Tensor(total.astype(grads[0].dtype) if grads[0].dtype == np.float16 else total)


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient element, in place, to [-clip_value, clip_value]."""
    for p in _with_grads(parameters):
        get_array_module(p.grad.array).clip(p.grad.array, -clip_value, clip_value,
                                            out=p.grad.array)


from minigrad.nn.utils import prune, rnn  # noqa: E402, F401  (nn.utils.prune, nn.utils.rnn)
