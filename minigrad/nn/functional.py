"""`minigrad.nn.functional`: the differentiable functions of `minigrad.ops` under PyTorch's
`torch.nn.functional` names. All gradient mathematics lives in `minigrad/ops/`."""

from minigrad.ops.activation import (
    elu,
    gelu,
    hardtanh,
    leaky_relu,
    log_softmax,
    prelu,
    relu,
    relu6,
    sigmoid,
    silu,
    softmax,
    softplus,
    tanh,
)
from minigrad.ops.conv import conv2d
from minigrad.ops.dropout import dropout, dropout2d
from minigrad.ops.linalg import linear
from minigrad.ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from minigrad.ops.normalization import batch_norm, group_norm, instance_norm, layer_norm
from minigrad.ops.one_d import (
    avg_pool1d,
    conv1d,
    max_pool1d,
    max_unpool1d,
    max_unpool2d,
)
from minigrad.ops.pool import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d
from minigrad.ops.reduce import normalize
from minigrad.ops.shape import flatten, one_hot, pad
from minigrad.ops.upsample import conv_transpose2d, embedding, interpolate

__all__ = [
    "conv_transpose2d", "embedding", "interpolate", "kl_div", "l1_loss", "smooth_l1_loss",
    "elu", "gelu", "group_norm", "layer_norm",
    "hardtanh", "prelu", "relu6", "silu", "softplus",
    "adaptive_avg_pool2d", "adaptive_max_pool2d", "avg_pool2d", "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "conv2d", "cross_entropy", "dropout", "dropout2d",
    "flatten", "leaky_relu", "linear", "log_softmax", "max_pool2d", "mse_loss", "nll_loss",
    "normalize", "one_hot", "pad", "relu", "sigmoid", "softmax", "tanh",
    "avg_pool1d", "conv1d", "instance_norm", "max_pool1d", "max_unpool1d", "max_unpool2d",
]
