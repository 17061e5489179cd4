"""Checking the `dim` arguments of reductions, softmax and shape ops."""

from __future__ import annotations

import numbers


def normalize_dim(op: str, dim, ndim: int) -> int:
    """`dim` as an axis in [0, ndim), negative dims counting from the end; an error naming
    the op when it is out of range (as for an index)."""
    if not isinstance(dim, numbers.Integral) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an integer, got {dim!r}")
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(
            f"{op}: dim {dim} is out of range for a tensor of {ndim} dimensions "
            f"(expected a value in [{-max(ndim, 1)}, {max(ndim, 1) - 1}])"
        )
    return dim % ndim if ndim else 0


def normalize_dims(op: str, dim, ndim: int) -> tuple:
    """`dim` (None for all, an int or a tuple) as a sorted tuple of distinct axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    axes = tuple(sorted(normalize_dim(op, d, ndim) for d in dims))
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: dim {dim} names an axis twice")
    return axes if ndim else ()
