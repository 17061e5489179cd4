"""The 1-D layers' functions, and unpooling, built on the 2-D ops: a signal (N, C, L) is an
image (N, C, 1, L) one pixel high, so conv1d, max_pool1d and avg_pool1d are their 2-D twins
with a kernel of height 1 (their gradients and fast paths are those of the 2-D ops).

max_pool2d(return_indices=True) also gives, for each output, where its maximum was: the flat
position h * W + w in its input plane, as PyTorch numbers it; max_unpool2d puts each value back
at that position in zeros (a scatter, whose gradient reads those places again).
"""

from __future__ import annotations

from minigrad.ops import pool
from minigrad.ops.arrange import scatter
from minigrad.ops.conv import conv2d
from minigrad.tensor import Tensor


def _single(value, name: str, op: str) -> int:
    """A 1-D layer's kernel_size, stride, padding or dilation: an int or a 1-tuple."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{op}: {name} must be an int or a 1-tuple, got {value!r}")
        value = value[0]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    return value


def _as_image(op: str, x: Tensor) -> tuple:
    """(N, C, L) -> (N, C, 1, L); an unbatched (C, L) is a batch of one. Returns the image
    and whether to drop the batch dim again."""
    if x.ndim not in (2, 3):
        raise ValueError(f"{op}: expected a 2-D (C, L) or 3-D (N, C, L) input, got shape "
                         f"{tuple(x.shape)}")
    unbatched = x.ndim == 2
    return (x.unsqueeze(0) if unbatched else x).unsqueeze(2), unbatched


def _as_signal(y: Tensor, unbatched: bool) -> Tensor:
    y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """1-D convolution of x (N, C, L) with weight (OC, C/groups, K), as PyTorch's."""
    if weight.ndim != 3:
        raise ValueError(f"conv1d: expected a 3-D weight (OC, C/groups, K), got "
                         f"{tuple(weight.shape)}")
    image, unbatched = _as_image("conv1d", x)
    if not isinstance(padding, str):
        padding = (0, _single(padding, "padding", "conv1d"))
    out = conv2d(image, weight.unsqueeze(2), bias, (1, _single(stride, "stride", "conv1d")),
                 padding, (1, _single(dilation, "dilation", "conv1d")), groups)
    return _as_signal(out, unbatched)


def _pool_1d(op: str, kernel_size, stride, padding, dilation=1) -> tuple:
    kernel = _single(kernel_size, "kernel_size", op)
    stride = kernel if stride is None or stride == () else _single(stride, "stride", op)
    return ((1, kernel), (1, stride), (0, _single(padding, "padding", op)),
            (1, _single(dilation, "dilation", op)))


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """The maximum over each window of kernel_size along L, moved by stride (default:
    kernel_size); with return_indices, also the position in L of each maximum."""
    image, unbatched = _as_image("max_pool1d", x)
    kernel, stride, padding, dilation = _pool_1d("max_pool1d", kernel_size, stride, padding,
                                                 dilation)
    out = pool.max_pool2d(image, kernel, stride, padding, dilation, ceil_mode, return_indices)
    if return_indices:
        return _as_signal(out[0], unbatched), _as_signal(out[1], unbatched)
    return _as_signal(out, unbatched)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True):
    """The mean over each window of kernel_size along L, moved by stride."""
    image, unbatched = _as_image("avg_pool1d", x)
    kernel, stride, padding, _ = _pool_1d("avg_pool1d", kernel_size, stride, padding)
    return _as_signal(pool.avg_pool2d(image, kernel, stride, padding, ceil_mode,
                                      count_include_pad), unbatched)


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """max_pool2d undone: zeros of the pooled input's size with each value of x (N, C, H, W)
    put back at its position in `indices` (from max_pool2d(..., return_indices=True))."""
    from minigrad.tensor import zeros

    if not isinstance(indices, Tensor) or indices.dtype.kind not in "iu":
        raise TypeError("max_unpool2d: indices must be the integer tensor that "
                        "max_pool2d(return_indices=True) returned")
    unbatched = x.ndim == 3
    if unbatched:
        x, indices = x.unsqueeze(0), indices.unsqueeze(0)
    if x.ndim != 4 or indices.shape != x.shape:
        raise ValueError(f"max_unpool2d: expected a 4-D input (N, C, H, W) and indices of its "
                         f"shape, got {tuple(x.shape)} and {tuple(indices.shape)}")
    kernel = pool.pair(kernel_size, "kernel_size", "max_unpool2d")
    stride = kernel if stride is None else pool.pair(stride, "stride", "max_unpool2d")
    padding = pool.pair(padding, "padding", "max_unpool2d")
    size = tuple((n - 1) * s - 2 * p + k for n, s, p, k in zip(x.shape[2:], stride, padding,
                                                                  kernel))
    if output_size is not None:
        wanted = tuple(output_size)[-2:]
        if any(not (d - s < w < d + s) for d, s, w in zip(size, stride, wanted)):
            raise ValueError(f"max_unpool2d: output_size {tuple(output_size)} must be within "
                             f"a stride of the default {size} (stride {stride})")
        size = wanted
    n, c = x.shape[:2]
    plane = size[0] * size[1]
    if indices.numel() and (int(indices.array.min()) < 0 or int(indices.array.max()) >= plane):
        raise IndexError(f"max_unpool2d: an index {int(indices.array.max())} is out of range "
                         f"for an output of size {size} ({plane} positions per plane)")
    out = zeros(n, c, plane, dtype=x.dtype, device=x.device)
    out = scatter(out, 2, indices.reshape(n, c, -1), x.reshape(n, c, -1))
    out = out.reshape(n, c, *size)
    return out.squeeze(0) if unbatched else out


def max_unpool1d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """max_pool1d undone: each value of x (N, C, L) put back at its position in `indices`."""
    kernel, stride, padding, _ = _pool_1d("max_unpool1d", kernel_size, stride, padding)
    image, unbatched = _as_image("max_unpool1d", x)
    index_image, _ = _as_image("max_unpool1d", indices)
    if output_size is not None:
        output_size = (1, tuple(output_size)[-1])
    out = max_unpool2d(image, index_image, kernel, stride, padding, output_size)
    return _as_signal(out, unbatched)

