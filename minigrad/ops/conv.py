"""2-D convolution as im2col + one matrix product, and its backward with col2im.

A convolution slides a (C, KH, KW) kernel over the zero-padded input. im2col lays every
window out as one column, so the whole convolution, whole batch included, is a single GEMM:

    x: (N, C, H, W) --pad--> x_pad: (N, C, Hp, Wp)
    im2col:  cols[(c, kh, kw), (n, oh, ow)] = x_pad[n, c, oh*s + kh*d, ow*s + kw*d]
             read through a strided view of x_pad, then copied into (C*KH*KW, N*OH*OW)
    GEMM:    out = W (OC, C*KH*KW) @ cols (C*KH*KW, N*OH*OW) -> (OC, N, OH, OW) -> NCHW

Backward, for the output gradient g laid out as (OC, N*OH*OW):
    grad_W    = g @ cols^T                                 (OC, C*KH*KW)
    grad_bias = sum of g over n, oh, ow
    grad_cols = W^T @ g, and col2im adds each window element back to the pixel it was read
                from: a loop over the KH*KW kernel offsets, each one strided add over all
                windows, so pixels that several windows share get the sum of their gradients.

With groups, the C channels split into G independent convolutions: W is (G, OC/G, C/G*KH*KW)
and cols (G, C/G*KH*KW, N*OH*OW); the matrix product runs over G.

This is the reference: what gradcheck and the tests compare with PyTorch. The fast paths in
ops/fast/ (the CPU's batch-innermost layout, CUDA kernels with 2-D GEMMs over chunks of the
batch) compute the same thing and are tested against it; `conv2d` below picks one.
"""

from __future__ import annotations

from minigrad import amp, checks
from minigrad.autograd import Function
from minigrad.backend import get_array_module, matmul
from minigrad.ops import fast


def output_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int = 1) -> int:
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def pad(x, padding, fill=0):
    """x (N, C, H, W) with its last two axes padded by padding = (top, bottom, left, right)."""
    if not any(padding):
        return x
    top, bottom, left, right = padding
    return get_array_module(x).pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)),
                                   constant_values=fill)


def unpad(x, padding):
    top, bottom, left, right = padding
    return x[:, :, top : x.shape[2] - bottom, left : x.shape[3] - right]


def im2col_view(x_pad, kernel, stride, dilation, out_size):
    """The windows of x_pad as a strided view (N, C, KH, KW, OH, OW): no data is copied."""
    xp = get_array_module(x_pad)
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    n_stride, c_stride, h_stride, w_stride = x_pad.strides
    return xp.lib.stride_tricks.as_strided(
        x_pad,
        shape=(x_pad.shape[0], x_pad.shape[1], kh, kw, oh, ow),
        strides=(n_stride, c_stride, h_stride * dh, w_stride * dw, h_stride * sh, w_stride * sw),
    )


def col2im(grad_cols, grad_pad, kernel, stride, dilation, out_size):
    """The adjoint of im2col: add each window element's gradient to the pixel it came from.

    grad_cols (KH, KW, A, B, OH, OW) is added into grad_pad (A, B, Hp, Wp), zeros in whatever
    memory layout the caller chose, and returned. (A, B) are (N, C) or (C, N). One strided add
    per kernel offset; windows that overlap add up, as the gradient of a reused pixel must.
    """
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            grad_pad[:, :, rows, cols] += grad_cols[i, j]
    return grad_pad


class Windows(Function):
    """im2col as an op of its own: the windows of x_pad (N, C, Hp, Wp), copied out as
    (KH, KW, N, C, OH, OW), the layout col2im adds back from. It is linear, so its gradient is
    col2im (WindowsAdd), and col2im's gradient is im2col again: both are twice differentiable,
    and so is whatever is built on them (a convolution's formula, pooling's backward)."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x_pad, kernel, stride, dilation, out_size):
        ctx.geometry = x_pad.shape, kernel, stride, dilation, out_size
        windows = im2col_view(x_pad, kernel, stride, dilation, out_size)
        return windows.transpose(2, 3, 0, 1, 4, 5).copy()

    @staticmethod
    def backward(ctx, grad):
        shape, kernel, stride, dilation, out_size = ctx.geometry
        return WindowsAdd.run(grad, shape=shape, kernel=kernel, stride=stride,
                              dilation=dilation, out_size=out_size)


class WindowsAdd(Function):
    """col2im as an op: window gradients (KH, KW, N, C, OH, OW) added into zeros of `shape`
    at the pixels they were read from."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, grad_windows, shape, kernel, stride, dilation, out_size):
        ctx.geometry = kernel, stride, dilation, out_size
        zeros = get_array_module(grad_windows).zeros(shape, dtype=grad_windows.dtype)
        return col2im(grad_windows, zeros, kernel, stride, dilation, out_size)

    @staticmethod
    def backward(ctx, grad):
        kernel, stride, dilation, out_size = ctx.geometry
        return Windows.run(grad, kernel=kernel, stride=stride, dilation=dilation,
                           out_size=out_size)


def conv2d_formula(x, weight, bias=None, *, stride, padding, dilation, groups):
    """Conv2d's forward again, in twice-differentiable ops on Tensors (Windows, a matrix
    product, reshapes): what a second derivative of a convolution differentiates."""
    from minigrad.ops.shape import pad as pad_tensor

    n, (oc, _, kh, kw) = x.shape[0], weight.shape
    top, bottom, left, right = padding
    x_pad = pad_tensor(x, (left, right, top, bottom))
    oh = output_size(x_pad.shape[2], kh, stride[0], 0, dilation[0])
    ow = output_size(x_pad.shape[3], kw, stride[1], 0, dilation[1])
    windows = Windows.apply(x_pad, kernel=(kh, kw), stride=stride, dilation=dilation,
                            out_size=(oh, ow))  # (KH, KW, N, C, OH, OW)
    cols = windows.permute(3, 0, 1, 2, 4, 5).reshape(groups, -1, n * oh * ow)
    w = weight.reshape(groups, oc // groups, -1)
    out = (w @ cols).reshape(oc, n, oh, ow).permute(1, 0, 2, 3)
    return out if bias is None else out + bias.reshape(1, oc, 1, 1)


class Conv2d(Function):
    formula = staticmethod(conv2d_formula)  # a second derivative's way (autograd/higher.py)

    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride, padding, dilation, groups):
        n, (oc, _, kh, kw) = x.shape[0], weight.shape
        x_pad = pad(x, padding)
        oh = output_size(x_pad.shape[2], kh, stride[0], 0, dilation[0])
        ow = output_size(x_pad.shape[3], kw, stride[1], 0, dilation[1])
        # (N, C, KH, KW, OH, OW) -> (C, KH, KW, N, OH, OW) -> cols (G, C/G*KH*KW, N*OH*OW)
        windows = im2col_view(x_pad, (kh, kw), stride, dilation, (oh, ow))
        cols = windows.transpose(1, 2, 3, 0, 4, 5).reshape(groups, -1, n * oh * ow)
        w = weight.reshape(groups, oc // groups, -1)
        out = matmul(w, cols).reshape(oc, n, oh, ow).transpose(1, 0, 2, 3)  # (N, OC, OH, OW)
        if bias is not None:
            out = out + bias.reshape(1, oc, 1, 1)
        ctx.save_for_backward(cols, weight)
        ctx.x_pad_shape, ctx.out_size = x_pad.shape, (oh, ow)
        ctx.stride, ctx.padding, ctx.dilation, ctx.groups = stride, padding, dilation, groups
        return out

    @staticmethod
    def backward(ctx, grad):
        cols, weight = ctx.saved_tensors
        xp = get_array_module(grad)
        (oc, _, kh, kw), groups, (oh, ow) = weight.shape, ctx.groups, ctx.out_size
        g = grad.transpose(1, 0, 2, 3).reshape(groups, oc // groups, -1)  # (G, OC/G, N*OH*OW)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            n, c, hp, wp = ctx.x_pad_shape
            grad_cols = matmul(weight.reshape(groups, oc // groups, -1).swapaxes(1, 2), g)
            # (C*KH*KW, N*OH*OW) -> (KH, KW, N, C, OH, OW), the offsets first for col2im
            grad_cols = grad_cols.reshape(c, kh, kw, n, oh, ow).transpose(1, 2, 3, 0, 4, 5)
            grad_pad = col2im(grad_cols, xp.zeros(ctx.x_pad_shape, dtype=grad.dtype), (kh, kw),
                              ctx.stride, ctx.dilation, ctx.out_size)
            grad_x = unpad(grad_pad, ctx.padding)
        if ctx.needs_input_grad[1]:
            grad_weight = matmul(g, cols.swapaxes(1, 2)).reshape(weight.shape)
        has_bias = len(ctx.needs_input_grad) == 3
        if has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(axis=(0, 2, 3))
        return (grad_x, grad_weight, grad_bias) if has_bias else (grad_x, grad_weight)


def pair(value, name: str, op: str) -> tuple:
    """An int or a pair of ints as a pair: 3 -> (3, 3) (checks.pair, in the functionals' order
    of arguments)."""
    return checks.pair(op, name, value)


def conv_padding(padding, kernel: tuple, stride: tuple, dilation: tuple) -> tuple:
    """(top, bottom, left, right) from an int, a pair, 'valid' or 'same' (stride 1 only)."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError("conv2d: padding='same' needs stride 1, as in PyTorch")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return (totals[0] // 2, totals[0] - totals[0] // 2, totals[1] // 2,
                totals[1] - totals[1] // 2)
    ph, pw = pair(padding, "padding", "conv2d")
    if ph < 0 or pw < 0:
        raise ValueError(f"conv2d: padding must be non-negative, got {padding!r}")
    return (ph, ph, pw, pw)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """2-D convolution of x (N, C, H, W) with weight (OC, C/groups, KH, KW), as PyTorch's."""
    x, weight, bias = amp.lower_precision(x, weight, bias)  # float16 inside mg.autocast
    if x.ndim != 4:
        raise ValueError(f"conv2d: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: expected a 4-D weight (OC, C/groups, KH, KW), got "
                         f"{weight.shape}")
    oc, c_per_group, kh, kw = weight.shape
    if groups < 1 or oc % groups or x.shape[1] != c_per_group * groups:
        raise ValueError(
            f"conv2d: input of shape {x.shape} has {x.shape[1]} channels, but the weight "
            f"{weight.shape} with groups={groups} expects {c_per_group * groups} "
            f"(and out channels {oc} divisible by groups)"
        )
    if bias is not None and bias.shape != (oc,):
        raise ValueError(f"conv2d: bias has shape {bias.shape}, expected ({oc},)")
    dtypes = [t.dtype for t in (x, weight, bias) if t is not None]
    if len(set(dtypes)) > 1:  # as PyTorch: a float64 batch into a float32 layer is a mistake
        raise RuntimeError(f"conv2d: expected the input, weight and bias to have one dtype, "
                           f"got {' and '.join(map(str, dtypes))}; convert with .float()")
    stride = pair(stride, "stride", "conv2d")
    dilation = pair(dilation, "dilation", "conv2d")
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"conv2d: stride and dilation must be >= 1, got {stride}, {dilation}")
    padding = conv_padding(padding, (kh, kw), stride, dilation)
    padded = (x.shape[2] + padding[0] + padding[1], x.shape[3] + padding[2] + padding[3])
    reach = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    if padded[0] < reach[0] or padded[1] < reach[1]:
        raise ValueError(
            f"conv2d: input of spatial size {x.shape[2:]} (padded to {padded}) is smaller than "
            f"the kernel {(kh, kw)} (reaching {reach} with dilation {dilation})"
        )
    inputs = (x, weight) if bias is None else (x, weight, bias)
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    out_width = (padded[1] - reach[1]) // stride[1] + 1
    facts = dict(kernel=(kh, kw), dtype=x.dtype, channels=x.shape[1], out_channels=oc,
                 batch=x.shape[0], out_width=out_width)
    return fast.select(Conv2d, x, facts, **settings).apply(*inputs, **settings)
