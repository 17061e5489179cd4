"""ReLU on CUDA: the reference's forward (ReLU in ops/activation.py); its backward is one
kernel instead of a comparison, a boolean temporary and a multiply."""

from __future__ import annotations

from minigrad.backend import get_array_module
from minigrad.kernels import activation as cuda_kernels
from minigrad.ops.activation import ReLU


class ReLUCUDA(ReLU):
    reference, saves_as_reference = ReLU, True

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        grad_x = get_array_module(grad).empty(out.shape, dtype=grad.dtype)
        return cuda_kernels.relu_backward(out, grad, grad_x)
