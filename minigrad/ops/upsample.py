"""Making feature maps larger: transposed convolution, interpolation, and embedding lookup.

conv_transpose2d is the adjoint of conv2d: where conv2d gathers a window into one output, the
transposed convolution spreads each input pixel, weighted by the kernel, over a window of
the output. So its forward is conv2d's backward for the input (W^T @ x, then col2im) and its
backward is conv2d's forward (im2col, then W @ cols), with the same helpers of ops/conv.py:

    x: (N, Cin, H, W) -> x2 (G, Cin/G, N*H*W)
    cols = W^T (G, Cout/G*KH*KW, Cin/G) @ x2                -> col2im -> (N, Cout, Hp, Wp)
    crop `padding` off each side: Hout = (H-1)*s - 2p + d*(KH-1) + output_padding + 1

interpolate resizes with two small matrices: out = R (OH, H) @ x @ C^T (W, OW), where each row
of R and C holds the weights one output row or column takes from the input's (one 1 for
nearest, two weights summing to 1 for bilinear). The backward is R^T @ g @ C: the same two
matrices, transposed.
"""

from __future__ import annotations

import math

import numpy as np

from minigrad import amp, backend
from minigrad.autograd import Function
from minigrad.backend import get_array_module, matmul
from minigrad.ops import fast
from minigrad.ops.conv import WindowsAdd, col2im, im2col_view, pad, pair, unpad
from minigrad.ops.shape import IndexAdd
from minigrad.tensor import Tensor


def conv_transpose2d_formula(x, weight, bias=None, *, stride, padding, output_padding, dilation,
                             groups):
    """ConvTranspose2d's forward again, in twice-differentiable ops on Tensors (a matrix
    product, WindowsAdd, a crop): what a second derivative differentiates."""
    (n, cin, h, w), (_, cout_g, kh, kw) = x.shape, weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    hp = (h - 1) * sh + dh * (kh - 1) + 1 + output_padding[0]
    wp = (w - 1) * sw + dw * (kw - 1) + 1 + output_padding[1]
    x2 = x.permute(1, 0, 2, 3).reshape(groups, cin // groups, n * h * w)
    w3 = weight.reshape(groups, cin // groups, cout_g * kh * kw)
    cols = (w3.transpose(1, 2) @ x2).reshape(cout_g * groups, kh, kw, n, h, w)
    out = WindowsAdd.apply(cols.permute(1, 2, 3, 0, 4, 5), shape=(n, cout_g * groups, hp, wp),
                           kernel=(kh, kw), stride=stride, dilation=dilation, out_size=(h, w))
    out = out[:, :, ph : hp - ph, pw : wp - pw]
    return out if bias is None else out + bias.reshape(1, -1, 1, 1)


class ConvTranspose2d(Function):
    formula = staticmethod(conv_transpose2d_formula)

    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride, padding, output_padding, dilation,
                groups):
        (n, cin, h, w), (_, cout_g, kh, kw) = x.shape, weight.shape
        (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
        hp = (h - 1) * sh + dh * (kh - 1) + 1 + output_padding[0]
        wp = (w - 1) * sw + dw * (kw - 1) + 1 + output_padding[1]
        x2 = x.transpose(1, 0, 2, 3).reshape(groups, cin // groups, n * h * w)
        w3 = weight.reshape(groups, cin // groups, cout_g * kh * kw)
        cols = matmul(w3.swapaxes(1, 2), x2)  # (G, Cout/G*KH*KW, N*H*W)
        cols = cols.reshape(cout_g * groups, kh, kw, n, h, w).transpose(1, 2, 3, 0, 4, 5)
        out_pad = get_array_module(x).zeros((n, cout_g * groups, hp, wp), dtype=x.dtype)
        out = unpad(col2im(cols, out_pad, (kh, kw), stride, dilation, (h, w)), (ph, ph, pw, pw))
        if bias is not None:
            out = out + bias.reshape(1, -1, 1, 1)
        needs_x, needs_w = ctx.needs_input_grad[:2]
        ctx.save_for_backward(x2 if needs_w else None, weight if needs_x else None)
        ctx.x_shape, ctx.weight_shape, ctx.groups = x.shape, weight.shape, groups
        ctx.geometry = ((kh, kw), stride, (ph, pw), dilation)
        return out

    @staticmethod
    def backward(ctx, grad):
        x2, weight = ctx.saved_tensors
        (n, cin, h, w), (_, cout_g, kh, kw), groups = ctx.x_shape, ctx.weight_shape, ctx.groups
        kernel, stride, (ph, pw), dilation = ctx.geometry
        # the cropped border had no output, so no gradient: pad it back with zeros, then
        # gather each input pixel's window as conv2d does
        g_pad = pad(grad, (ph, ph, pw, pw))
        windows = im2col_view(g_pad, kernel, stride, dilation, (h, w))  # (N, Cout, KH, KW, H, W)
        cols = windows.transpose(1, 2, 3, 0, 4, 5).reshape(groups, cout_g * kh * kw, n * h * w)
        grad_x = grad_w = grad_bias = None
        if ctx.needs_input_grad[0]:
            w3 = weight.reshape(groups, cin // groups, cout_g * kh * kw)
            grad_x = matmul(w3, cols).reshape(cin, n, h, w).transpose(1, 0, 2, 3)
        if ctx.needs_input_grad[1]:
            grad_w = matmul(x2, cols.swapaxes(1, 2)).reshape(ctx.weight_shape)
        if len(ctx.needs_input_grad) == 3 and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(axis=(0, 2, 3))
        return (grad_x, grad_w) if len(ctx.needs_input_grad) == 2 else (grad_x, grad_w, grad_bias)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 2-D convolution of x (N, Cin, H, W) with weight (Cin, Cout/groups, KH, KW),
    as torch.nn.functional.conv_transpose2d (the arguments in its order)."""
    x, weight, bias = amp.lower_precision(x, weight, bias)  # float16 inside mg.autocast
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv_transpose2d: expected a 4-D input and weight, got {x.shape} and "
                         f"{weight.shape}")
    cin, cout_g, kh, kw = weight.shape
    if groups < 1 or cin % groups or x.shape[1] != cin:
        raise ValueError(f"conv_transpose2d: input of shape {x.shape} has {x.shape[1]} "
                         f"channels, but the weight {weight.shape} expects {cin} (divisible by "
                         f"groups={groups})")
    if bias is not None and bias.shape != (cout_g * groups,):
        raise ValueError(f"conv_transpose2d: bias has shape {bias.shape}, expected "
                         f"({cout_g * groups},)")
    stride, padding = pair(stride, "stride", "conv_transpose2d"), pair(padding, "padding",
                                                                        "conv_transpose2d")
    dilation = pair(dilation, "dilation", "conv_transpose2d")
    output_padding = pair(output_padding, "output_padding", "conv_transpose2d")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or min(output_padding) < 0:
        raise ValueError(f"conv_transpose2d: stride and dilation must be >= 1, padding and "
                         f"output_padding >= 0; got {stride}, {dilation}, {padding}, "
                         f"{output_padding}")
    if any(op >= max(s, d) for op, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"conv_transpose2d: output_padding {output_padding} must be smaller "
                         f"than the stride {stride} or the dilation {dilation}")
    out = [(size - 1) * s - 2 * p + d * (k - 1) + op + 1 for size, s, p, d, k, op in zip(
        x.shape[2:], stride, padding, dilation, (kh, kw), output_padding)]
    if min(out) < 1:
        raise ValueError(f"conv_transpose2d: padding {padding} leaves no output for an input "
                         f"of size {x.shape[2:]}")
    inputs = (x, weight) if bias is None else (x, weight, bias)
    settings = dict(stride=stride, padding=padding, output_padding=output_padding,
                    dilation=dilation, groups=groups)
    return fast.select(ConvTranspose2d, x, **settings).apply(*inputs, **settings)


class Resize2d(Function):
    """out = rows @ x @ cols^T over the last two axes; rows (OH, H) and cols (OW, W) hold the
    weights each output row and column takes from the input's."""

    twice_differentiable = True
    constant_saves = (0, 1)

    @staticmethod
    def forward(ctx, x, *, rows, cols):
        ctx.save_for_backward(rows, cols)
        return rows @ x @ cols.T

    @staticmethod
    def backward(ctx, grad):
        rows, cols = ctx.saved_tensors
        return rows.T @ grad @ cols


def _weights(size_in: int, size_out: int, scale, mode: str, align_corners: bool) -> np.ndarray:
    """(size_out, size_in): row o holds the weights output o takes from the input positions.
    `scale` is in/out (PyTorch's, from size or 1/scale_factor)."""
    matrix = np.zeros((size_out, size_in))
    out = np.arange(size_out)
    if mode == "nearest":  # the input position floor(o * scale), as PyTorch's 'nearest'
        source = np.minimum(np.floor(out * scale).astype(int), size_in - 1)
        matrix[out, source] = 1.0
        return matrix
    if align_corners:  # the corners' centres meet: o * (in - 1) / (out - 1)
        position = out * ((size_in - 1) / (size_out - 1) if size_out > 1 else 0.0)
    else:  # pixel centres: (o + 0.5) * scale - 0.5, not below 0
        position = np.maximum((out + 0.5) * scale - 0.5, 0.0)
    low = np.minimum(np.floor(position).astype(int), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    fraction = position - low
    matrix[out, low] += 1 - fraction  # one place per row in each line, so += adds once;
    matrix[out, high] += fraction  # where high == low (the last pixel) the two add up
    return matrix


def interpolate(x, size=None, scale_factor=None, mode: str = "nearest",
                align_corners: bool | None = None):
    """Resize the last two axes of x (N, C, H, W) to `size` or by `scale_factor`, with
    mode "nearest" or "bilinear" (align_corners as in PyTorch: False by default)."""
    if x.ndim != 4:
        raise ValueError(f"interpolate: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"interpolate: mode must be 'nearest' or 'bilinear', got {mode!r}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("interpolate: align_corners only applies to mode='bilinear'")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    h, w = x.shape[2:]
    if size is not None:
        out = pair(size, "size", "interpolate")
        scales = (h / out[0], w / out[1])
    else:
        factors = (scale_factor, scale_factor) if isinstance(scale_factor, (int, float)) \
            else tuple(scale_factor)
        if len(factors) != 2 or min(factors) <= 0:
            raise ValueError(f"interpolate: scale_factor must be positive (one or two), got "
                             f"{scale_factor!r}")
        out = (math.floor(h * factors[0]), math.floor(w * factors[1]))
        scales = (1 / factors[0], 1 / factors[1])
    if min(out) < 1:
        raise ValueError(f"interpolate: the output size {out} must be at least 1x1")
    xp = backend.get_array_module(x.array)
    rows, cols = (xp.asarray(_weights(n_in, n_out, scale, mode, bool(align_corners))
                             .astype(x.dtype)) for n_in, n_out, scale in
                  zip((h, w), out, scales))
    return Resize2d.apply(x, rows=rows, cols=cols)


def out_of_range(indices, rows: int) -> str:
    """The message of embedding's IndexError."""
    return (f"embedding: indices must be in [0, {rows}), found values in "
            f"[{int(indices.min())}, {int(indices.max())}]")


class Embedding(Function):
    """weight[indices]: one row of the table per index. Backward: a row's gradient is the sum
    of the gradients of every place that looked it up, and none for padding_idx."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, weight, *, indices, padding_idx):
        if indices.size:
            backend.check(((indices < 0) | (indices >= weight.shape[0])).any(), IndexError,
                          lambda: out_of_range(indices, weight.shape[0]))
        ctx.indices, ctx.padding_idx, ctx.shape = indices, padding_idx, weight.shape
        return weight[indices]

    @staticmethod
    def backward(ctx, grad):
        if ctx.padding_idx is not None:  # no gradient for the padding row
            grad = grad * (ctx.indices != ctx.padding_idx)[..., None]
        # a repeated index adds up
        return IndexAdd.run(grad, shape=ctx.shape, index=(ctx.indices,), advanced=True)


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:  # noqa: A002
    """The rows of `weight` (num_embeddings, dim) at the integer indices `input` (any shape):
    a result of shape input.shape + (dim,)."""
    if input.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got {input.dtype}")
    rows = weight.shape[0]
    if padding_idx is not None and not -rows <= padding_idx < rows:
        raise ValueError(f"embedding: padding_idx {padding_idx} is outside the {rows} rows")
    indices = input.array  # checked within [0, rows) by the forward (an IndexError)
    settings = dict(indices=indices,
                    padding_idx=None if padding_idx is None else padding_idx % rows)
    return fast.select(Embedding, weight, dict(dtype=weight.dtype)).apply(weight, **settings)
