"""ReLU's backward as one CUDA kernel (ops/fast/cuda_activation.py): the reference's
`grad * ~(out <= 0)` is three passes and boolean temporaries; this is one pass, and gives 0
where the unit is off whatever the incoming gradient (inf or NaN included), and passes it on
where the output is NaN, as PyTorch does.
"""

from __future__ import annotations

import numpy as np

from minigrad.kernels import Kernel

_RELU_BACKWARD = "grad_x = out <= (T)0 ? (T)0 : g;"


def _relu_backward_twin(out, g, grad_x):
    np.copyto(grad_x, np.where(out <= 0, 0, g), casting="same_kind")
    return grad_x


_relu_backward = Kernel("minigrad_relu_backward", "T out, T g", "T grad_x", _RELU_BACKWARD,
                        _relu_backward_twin)


def relu_backward(out, g, grad_x):
    """Fill grad_x with g where out > 0, else 0."""
    return _relu_backward(out, g, grad_x)
