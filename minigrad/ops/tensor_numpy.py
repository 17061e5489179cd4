"""The NumPy functions a backward calls, for Tensors: what `get_array_module(grad)` returns
when `grad` is a Tensor, in a recorded backward pass (create_graph=True, autograd/higher.py).

A twice-differentiable op's backward is written once, with operators, methods and
`xp = get_array_module(grad)` functions; on arrays `xp` is NumPy or CuPy, on Tensors it is a
`TensorNumPy` of the gradient's device, whose functions take NumPy's arguments (axis,
keepdims, a tuple of axes to transpose) and are minigrad's differentiable ops, so the same
lines build a graph. Only the functions some twice-differentiable backward uses are here: a
backward calling another fails loudly (AttributeError), never silently outside the graph.
"""

from __future__ import annotations

import functools

import numpy as np

from minigrad import backend
from minigrad.tensor import Tensor


class TensorNumPy:
    """NumPy's names on Tensors of one device; `for_device` gives the one of a device."""

    def __init__(self, device):
        self.device = device

    # elementwise math: minigrad's ops of the same name
    @staticmethod
    def exp(x):
        return x.exp()

    @staticmethod
    def log(x):
        return x.log()

    @staticmethod
    def log1p(x):
        return x.log1p()

    @staticmethod
    def sqrt(x):
        return x.sqrt()

    @staticmethod
    def sin(x):
        return x.sin()

    @staticmethod
    def cos(x):
        return x.cos()

    @staticmethod
    def tanh(x):
        return x.tanh()

    @staticmethod
    def abs(x):
        return x.abs()

    @staticmethod
    def sign(x):
        return x.sign()  # outside the graph: its derivative is 0 wherever it has one

    @staticmethod
    def isnan(x):
        return Tensor(backend.get_array_module(x.array).isnan(x.array))

    @staticmethod
    def where(condition, x, y):
        from minigrad.ops.elementwise import where

        return where(_tensor(condition), _tensor(x), _tensor(y))

    @staticmethod
    def maximum(a, b):
        from minigrad.ops.elementwise import maximum

        return maximum(a, b)

    @staticmethod
    def minimum(a, b):
        from minigrad.ops.elementwise import minimum

        return minimum(a, b)

    @staticmethod
    def asarray(x, dtype=None):
        from minigrad.ops.elementwise import cast

        x = _tensor(x)
        return x if dtype is None else cast(x, dtype)

    @staticmethod
    def matmul(a, b):
        return a @ b

    # shapes, with NumPy's arguments
    @staticmethod
    def expand_dims(x, axis):
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        shape = list(x.shape)
        for a in sorted(a % (x.ndim + len(axes)) for a in axes):
            shape.insert(a, 1)
        return x.reshape(shape)

    @staticmethod
    def broadcast_to(x, shape):
        return x.expand(*shape)

    @staticmethod
    def transpose(x, axes):
        return x.permute(*axes)

    @staticmethod
    def swapaxes(x, a, b):
        return x.transpose(a, b)

    @staticmethod
    def flip(x, axis):
        return x.flip(axis)

    @staticmethod
    def split(x, indices, axis):
        bounds = [0, *indices, x.shape[axis]]
        before = (slice(None),) * (axis % x.ndim)
        return [x[before + (slice(start, stop),)] for start, stop in zip(bounds, bounds[1:])]

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return x.sum(axis, keepdims)

    @staticmethod
    def cumsum(x, axis):
        return x.cumsum(axis)

    # constants made on this device
    def arange(self, n):
        from minigrad.tensor import arange

        return arange(n, device=self.device)

    def zeros(self, shape, dtype):
        from minigrad.tensor import zeros

        return zeros(*shape, dtype=dtype, device=self.device)

    @staticmethod
    def zeros_like(x):
        from minigrad.tensor import zeros_like

        return zeros_like(x)


def _tensor(value):
    """An array (a constant a backward kept) as a Tensor; anything else as it is."""
    if isinstance(value, np.generic):  # NumPy's 0-d results are scalars
        value = np.asarray(value)
    return Tensor(value) if backend.is_array(value) else value


@functools.cache
def for_device(device) -> TensorNumPy:
    return TensorNumPy(device)


def of(tensor: Tensor) -> TensorNumPy:
    return for_device(tensor.device)
