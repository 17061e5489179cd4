"""`minigrad.nn.functional`: the differentiable functions of `minigrad.ops` under PyTorch's
`torch.nn.functional` names. All gradient mathematics lives in `minigrad/ops/`."""

from minigrad.ops.activation import leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from minigrad.ops.conv import conv2d
from minigrad.ops.dropout import dropout
from minigrad.ops.linalg import linear
from minigrad.ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
    nll_loss,
)
from minigrad.ops.norm import batch_norm
from minigrad.ops.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from minigrad.ops.shape import flatten

__all__ = [
    "adaptive_avg_pool2d", "avg_pool2d", "batch_norm", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "conv2d", "cross_entropy", "dropout", "flatten",
    "leaky_relu", "linear", "log_softmax", "max_pool2d", "mse_loss", "nll_loss", "relu",
    "sigmoid", "softmax", "tanh",
]
