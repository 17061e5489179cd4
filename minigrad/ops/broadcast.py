"""Broadcasting, and the one helper that undoes it for gradients."""

from __future__ import annotations

import numpy as np


def broadcast_shape(op: str, *shapes: tuple) -> tuple:
    """The shape that `shapes` broadcast to (NumPy's rules), or an error naming the op."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        listed = " and ".join(str(tuple(s)) for s in shapes)
        raise ValueError(f"{op}: shapes {listed} cannot be broadcast together") from None


def unbroadcast(grad, shape: tuple):
    """Sum `grad` back to `shape`, the shape of an input that was broadcast.

    Broadcasting an input of `shape` to the output's shape added leading axes and stretched
    axes of length 1; the input's gradient is the output's gradient summed over exactly those.
    """
    if grad.shape == shape:
        return grad
    added = grad.ndim - len(shape)
    stretched = tuple(
        added + i for i, n in enumerate(shape) if n == 1 and grad.shape[added + i] != 1
    )
    grad = grad.sum(axis=tuple(range(added)) + stretched, keepdims=True)
    return grad.reshape(shape)
