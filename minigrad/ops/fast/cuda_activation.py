"""ReLU on CUDA: the reference's forward (ReLU in ops/activation.py); its backward is one
kernel instead of a comparison, a boolean temporary and a multiply."""

from __future__ import annotations

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.kernels import activation as cuda_kernels


class ReLUCUDA(Function):
    @staticmethod
    def supports(**settings) -> bool:
        return True

    @staticmethod
    def forward(ctx, x):
        out = get_array_module(x).maximum(x, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        grad_x = get_array_module(grad).empty(out.shape, dtype=grad.dtype)
        return cuda_kernels.relu_backward(out, grad, grad_x)
