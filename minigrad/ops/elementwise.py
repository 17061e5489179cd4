"""Elementwise arithmetic and math: + - * / **, neg, exp, log, sqrt, abs, clamp, where;
also the conversions `to(dtype)` and `to(device)`, whose gradients go back the other way.

Binary ops broadcast as NumPy does; the gradient of a broadcast input is summed back to its
shape by `unbroadcast`. A Python number next to a tensor takes the tensor's dtype, so
`x * 0.5` stays float32.
"""

from __future__ import annotations

import numbers

import numpy as np

from minigrad import amp, backend
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.ops.broadcast import broadcast_shape, unbroadcast
from minigrad.ops.registry import tensor_method
from minigrad.tensor import Tensor


def _scalar_dtype(value, like: np.dtype) -> np.dtype:
    """The dtype a Python number takes next to a tensor of dtype `like` (PyTorch's rule)."""
    if isinstance(value, (bool, np.bool_)):
        return like
    if isinstance(value, (int, np.integer)):
        return like if like.kind != "b" else backend.int64
    if isinstance(value, (float, np.floating)):
        return like if like.kind == "f" else backend.get_default_dtype()
    raise TypeError(f"expected a tensor or a real number, got {type(value).__name__}")


def _as_tensor(value, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if backend.is_array(value):
        return Tensor(value)
    dtype = _scalar_dtype(value, like.dtype)
    xp = get_array_module(like.array)
    return Tensor(xp.asarray(value, dtype=dtype))


def _category(dtype) -> int:
    return {"b": 0, "u": 1, "i": 1, "f": 2}[np.dtype(dtype).kind]


def result_dtype(*tensors: Tensor) -> np.dtype:
    """PyTorch's rule: the tensors with dimensions decide; 0-d tensors (and the numbers made
    into them) count only when they are of a higher category (bool < integer < float), so
    float32 + a 0-d float64 stays float32, and int64 + a 0-d float64 is float64."""
    def common(dtypes):
        dtype = dtypes[0]
        for other in dtypes[1:]:
            dtype = backend.promote_types(dtype, other)
        return dtype

    dimensioned = [t.dtype for t in tensors if t.ndim]
    zero_dim = [t.dtype for t in tensors if not t.ndim]
    if not dimensioned or not zero_dim:
        return common(dimensioned or zero_dim)
    dtype, zero_dtype = common(dimensioned), common(zero_dim)
    return zero_dtype if _category(zero_dtype) > _category(dtype) else dtype


def promote(*tensors: Tensor) -> tuple:
    """The tensors cast (differentiably) to their common dtype, chosen as PyTorch does."""
    dtype = result_dtype(*tensors)
    return tuple(t if t.dtype == dtype else cast(t, dtype) for t in tensors)


def operands(op: str, *values) -> tuple:
    """Tensors for the operands of an elementwise op: numbers become tensors beside the
    others, dtypes are promoted and shapes checked for broadcasting."""
    if len(values) == 2:  # the common cases, decided without the general rules below
        a, b = values
        if isinstance(a, Tensor) and a.dtype.kind == "f":
            if isinstance(b, Tensor) and b.dtype == a.dtype and b.shape == a.shape:
                return a, b
            if type(b) in (float, int):  # a Python number takes a floating tensor's dtype
                return a, Tensor(get_array_module(a.array).asarray(b, dtype=a.dtype))
    like = next(v for v in values if isinstance(v, Tensor))
    tensors = [_as_tensor(v, like) for v in values]
    if any(backend.is_array(v) for v in values):
        # with a NumPy array beside it, torch hands the op to NumPy, so NumPy's promotion
        # decides the dtype: float32 * np.array(2.0) and float32 * an int64 array are float64
        dtype = np.result_type(*[t.dtype if backend.is_array(v) or isinstance(v, Tensor) else v
                                 for t, v in zip(tensors, values)])
        tensors = [t if t.dtype == dtype else cast(t, dtype) for t in tensors]
    else:
        tensors = promote(*tensors)
    shapes = [t.shape for t in tensors if t.ndim]  # a 0-d tensor broadcasts with any shape
    if any(s != shapes[0] for s in shapes[1:]):
        broadcast_shape(op, *shapes)
    return tensors


def as_floating(x: Tensor) -> Tensor:
    """`x` itself if it is floating, else cast to the default dtype (torch.exp(int) is float)."""
    return x if backend.is_floating(x.dtype) else cast(x, backend.get_default_dtype())


# ---------------------------------------------------------------------------------------------
# arithmetic


class Add(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx, grad):
        a_shape, b_shape = ctx.shapes
        return unbroadcast(grad, a_shape), unbroadcast(grad, b_shape)


class Sub(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a - b

    @staticmethod
    def backward(ctx, grad):
        a_shape, b_shape = ctx.shapes
        grad_b = unbroadcast(-grad, b_shape) if ctx.needs_input_grad[1] else None
        return unbroadcast(grad, a_shape), grad_b


class Mul(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, a, b):
        # a's gradient reads b and b's reads a: keep only what a wanted gradient will read
        # (x * 2.0 keeps no copy of x alive)
        needs_a, needs_b = ctx.needs_input_grad
        ctx.save_for_backward(a if needs_b else None, b if needs_a else None)
        ctx.a_shape, ctx.b_shape = a.shape, b.shape
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grad_a = unbroadcast(grad * b, ctx.a_shape) if ctx.needs_input_grad[0] else None
        grad_b = unbroadcast(grad * a, ctx.b_shape) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class Div(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, a, b):
        out = a / b
        ctx.save_for_backward(b, out if ctx.needs_input_grad[1] else None)  # out: for b's only
        ctx.a_shape = a.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        b, out = ctx.saved_tensors
        grad_a = unbroadcast(grad / b, ctx.a_shape) if ctx.needs_input_grad[0] else None
        # d(a/b)/db = -a/b^2 = -out/b
        grad_b = unbroadcast(-grad * out / b, b.shape) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class Pow(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, a, b):
        out = a**b
        # a's gradient reads a and b, b's reads a and out
        ctx.save_for_backward(a, b if ctx.needs_input_grad[0] else None,
                              out if ctx.needs_input_grad[1] else None)
        ctx.b_shape = b.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = ctx.saved_tensors
        xp = get_array_module(grad)
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            # b * a^(b-1), taken as 0 where b == 0 (so x**0 has gradient 0 at x = 0 too, as
            # in PyTorch, rather than 0 * inf)
            # (a taken as 1 there, so that no 0^-1 is even computed: its gradient would be nan)
            with np.errstate(divide="ignore", invalid="ignore"):
                local = xp.where(b == 0, 0, b * xp.where(b == 0, 1, a) ** (b - 1))
            grad_a = unbroadcast(grad * local, a.shape)
        if ctx.needs_input_grad[1]:
            # d(a^b)/db = a^b log a; PyTorch takes it as 0 where a == 0 (and b >= 0)
            log_a = xp.log(xp.where(a == 0, 1, a))
            grad_b = unbroadcast(grad * out * log_a, ctx.b_shape)
        return grad_a, grad_b


class Neg(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad):
        return -grad


@tensor_method()
def add(a, b) -> Tensor:
    return Add.apply(*operands("add", a, b))


@tensor_method()
def sub(a, b) -> Tensor:
    return Sub.apply(*operands("sub", a, b))


@tensor_method()
def mul(a, b) -> Tensor:
    return Mul.apply(*operands("mul", a, b))


@tensor_method()
def div(a, b) -> Tensor:
    """True division; integer tensors are divided as floats of the default dtype."""
    a, b = operands("div", a, b)
    if not backend.is_floating(a.dtype):
        a, b = cast(a, backend.get_default_dtype()), cast(b, backend.get_default_dtype())
    return Div.apply(a, b)


@tensor_method()
def pow(a, b) -> Tensor:  # noqa: A001 - PyTorch's name
    a, b = amp.full_precision(a, b)  # float32 inside mg.autocast
    return Pow.apply(*operands("pow", a, b))


@tensor_method()
def neg(x: Tensor) -> Tensor:
    return Neg.apply(x)


# ---------------------------------------------------------------------------------------------
# math


class Exp(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, x):
        out = get_array_module(x).exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out


class Log(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / x


class Sqrt(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, x):
        out = get_array_module(x).sqrt(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad / (2 * out)


class Abs(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).abs(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * get_array_module(x).sign(x)  # 0 at x == 0, as in PyTorch


class Clamp(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, min=None, max=None):
        xp = get_array_module(x)
        out = xp.clip(x, min, max)
        if ctx.needs_input_grad[0]:
            inside = xp.ones(x.shape, dtype=bool)
            if min is not None:
                inside &= x >= min
            if max is not None:
                inside &= x <= max
            ctx.save_for_backward(inside)
        return out

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside  # the gradient passes where min <= x <= max, as in PyTorch


@tensor_method()
def exp(x: Tensor) -> Tensor:
    return Exp.apply(as_floating(amp.full_precision_one(x)))


@tensor_method()
def log(x: Tensor) -> Tensor:
    return Log.apply(as_floating(amp.full_precision_one(x)))


@tensor_method()
def sqrt(x: Tensor) -> Tensor:
    return Sqrt.apply(as_floating(x))


@tensor_method()
def abs(x: Tensor) -> Tensor:  # noqa: A001 - PyTorch's name
    return Abs.apply(x)


@tensor_method()
def clamp(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
    """Limit every element to [min, max]; either bound may be None."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    for name, bound in (("min", min), ("max", max)):
        if bound is not None and not isinstance(bound, numbers.Real):
            raise TypeError(f"clamp: {name} must be a number, got {type(bound).__name__}")
    return Clamp.apply(x, min=min, max=max)


# ---------------------------------------------------------------------------------------------
# selection


class Where(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, condition, x, y):
        ctx.save_for_backward(condition)
        ctx.shapes = x.shape, y.shape
        return get_array_module(x).where(condition, x, y)

    @staticmethod
    def backward(ctx, grad):
        (condition,) = ctx.saved_tensors
        x_shape, y_shape = ctx.shapes
        grad_x = grad_y = None
        if ctx.needs_input_grad[1]:
            grad_x = unbroadcast(grad * condition, x_shape)
        if ctx.needs_input_grad[2]:
            grad_y = unbroadcast(grad * ~condition, y_shape)
        return None, grad_x, grad_y


def where(condition: Tensor, x, y) -> Tensor:
    """Elements of `x` where `condition` is True, else of `y` (all three broadcast)."""
    if not isinstance(condition, Tensor) or condition.dtype != backend.bool_:
        got = condition.dtype if isinstance(condition, Tensor) else type(condition).__name__
        raise TypeError(f"where: condition must be a bool tensor, got {got}")
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):  # where(c, 1.0, 0.0)
        x = Tensor(get_array_module(condition.array).asarray(
            x, dtype=_scalar_dtype(x, _scalar_dtype(y, backend.bool_))))
    x, y = operands("where", x, y)
    broadcast_shape("where", condition.shape, x.shape, y.shape)
    return Where.apply(condition, x, y)


class Clone(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad


@tensor_method()
def clone(x: Tensor) -> Tensor:
    """A copy of `x` with its own memory; the gradient flows through."""
    return Clone.apply(x)


class Sin(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * get_array_module(x).cos(x)


class Cos(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).cos(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return -grad * get_array_module(x).sin(x)


class Log1p(Function):
    """log(1 + x), accurate for small x."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).log1p(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1 + x)


class Maximum(Function):
    """The larger of a and b, elementwise; where they are equal each gets half the gradient,
    as in PyTorch. (Minimum is the same with a and b's roles read the other way.)"""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, a, b, smaller=False):
        xp = get_array_module(a)
        a_wins = (a < b) if smaller else (a > b)
        # a's share of the gradient, in halves: 2 where a wins, 1 at a tie, 0 where b wins
        # (one byte per element)
        ctx.save_for_backward(a_wins.astype(np.uint8) * np.uint8(2) + (a == b))
        ctx.a_shape, ctx.b_shape = a.shape, b.shape
        return xp.minimum(a, b) if smaller else xp.maximum(a, b)

    @staticmethod
    def backward(ctx, grad):
        (halves,) = ctx.saved_tensors
        share = get_array_module(grad).asarray(halves, dtype=grad.dtype) * 0.5
        return (unbroadcast(grad * share, ctx.a_shape),
                unbroadcast(grad * (1 - share), ctx.b_shape))


class Remainder(Function):
    """a - b * floor(a / b): Python's %, with the sign of b, as torch.remainder."""

    twice_differentiable = True
    constant_saves = (0,)  # floor(a / b) is constant between its jumps

    @staticmethod
    def forward(ctx, a, b):
        xp = get_array_module(a)
        quotient = xp.floor(a / b) if a.dtype.kind == "f" else a // b
        ctx.save_for_backward(quotient)
        ctx.a_shape, ctx.b_shape = a.shape, b.shape
        return a - b * quotient

    @staticmethod
    def backward(ctx, grad):
        (quotient,) = ctx.saved_tensors
        return unbroadcast(grad, ctx.a_shape), unbroadcast(-grad * quotient, ctx.b_shape)


@tensor_method()
def sin(x: Tensor) -> Tensor:
    return Sin.apply(as_floating(x))


@tensor_method()
def cos(x: Tensor) -> Tensor:
    return Cos.apply(as_floating(x))


@tensor_method()
def log1p(x: Tensor) -> Tensor:
    return Log1p.apply(as_floating(amp.full_precision_one(x)))


@tensor_method()
def sign(x: Tensor) -> Tensor:
    """-1, 0 or 1; outside the graph (its gradient is 0 everywhere it exists)."""
    return Tensor(get_array_module(x.array).sign(x.array))


@tensor_method()
def maximum(a, b) -> Tensor:
    return Maximum.apply(*operands("maximum", a, b))


@tensor_method()
def minimum(a, b) -> Tensor:
    return Maximum.apply(*operands("minimum", a, b), smaller=True)


@tensor_method()
def remainder(a, b) -> Tensor:
    return Remainder.apply(*operands("remainder", a, b))


def floor_divide(a, b) -> Tensor:
    """floor(a / b), as `//` (outside the graph, as PyTorch's floor_divide)."""
    a, b = operands("floor_divide", a, b)
    return Tensor(get_array_module(a.array).floor_divide(a.array, b.array))


def _bitwise(name: str, ufunc_name: str):
    def bitwise(a, b) -> Tensor:
        a, b = operands(name, a, b)
        if a.dtype.kind not in "biu":
            raise TypeError(f"{name}: expected bool or integer tensors, got {a.dtype}")
        return Tensor(getattr(get_array_module(a.array), ufunc_name)(a.array, b.array))

    bitwise.__name__ = name
    return bitwise


bitwise_and = _bitwise("bitwise_and", "bitwise_and")
bitwise_or = _bitwise("bitwise_or", "bitwise_or")
bitwise_xor = _bitwise("bitwise_xor", "bitwise_xor")


def bitwise_not(x: Tensor) -> Tensor:
    """~x: logical not of a bool tensor, bitwise not of an integer one."""
    if x.dtype.kind not in "biu":
        raise TypeError(f"bitwise_not: expected a bool or integer tensor, got {x.dtype}")
    return Tensor(get_array_module(x.array).invert(x.array))


# ---------------------------------------------------------------------------------------------
# comparisons: results are bool tensors, outside the graph


def _compare(name: str, ufunc_name: str):
    def compare(a, b) -> Tensor:
        a, b = operands(name, a, b)
        if a.device != b.device:
            raise RuntimeError(f"{name}: tensors are on {a.device} and {b.device}")
        return Tensor(getattr(get_array_module(a.array), ufunc_name)(a.array, b.array))

    compare.__name__ = name
    return compare


eq = tensor_method()(_compare("eq", "equal"))
ne = tensor_method()(_compare("ne", "not_equal"))
lt = tensor_method()(_compare("lt", "less"))
le = tensor_method()(_compare("le", "less_equal"))
gt = tensor_method()(_compare("gt", "greater"))
ge = tensor_method()(_compare("ge", "greater_equal"))


# ---------------------------------------------------------------------------------------------
# conversions


class Cast(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return get_array_module(grad).asarray(grad, dtype=ctx.dtype)


class ToDevice(Function):
    twice_differentiable = True

    @staticmethod
    def forward(ctx, x, device):
        ctx.device = backend.device_of(x)
        return backend.to_device(x, device)

    @staticmethod
    def backward(ctx, grad):
        return ToDevice.run(grad, device=ctx.device)


def cast(x: Tensor, dtype) -> Tensor:
    """`x` as `dtype`; the gradient is cast back to x's dtype."""
    dtype = backend.as_dtype(dtype)
    if not backend.is_floating(dtype):  # integers have no gradient: the result is outside the
        x = x.detach()  # graph, as PyTorch's x.long() of a tensor that requires grad
    return x if x.dtype == dtype else Cast.apply(x, dtype=dtype)


@tensor_method("type")
def type_(x: Tensor, dtype=None):
    """x.type(dtype): x cast to dtype; x.type() alone: its type's name, as torch's
    ('minigrad.FloatTensor' for float32 on the CPU)."""
    if dtype is not None:
        return cast(x, dtype)
    names = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long",
             "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}
    prefix = "minigrad.cuda." if x.device.type == "cuda" else "minigrad."
    return f"{prefix}{names.get(str(x.dtype), str(x.dtype))}Tensor"


@tensor_method()
def type_as(x: Tensor, other: Tensor) -> Tensor:
    return cast(x, other.dtype)


@tensor_method()
def to(x: Tensor, *args, **kwargs) -> Tensor:
    """`x.to(device)`, `x.to(dtype)`, `x.to(device, dtype)` or `x.to(other_tensor)`.

    Returns `x` itself when nothing changes, as PyTorch does (a copy with copy=True).
    `non_blocking` is accepted: a copy to the GPU is queued on the current stream anyway, and
    one back to the host must wait for the values it reads.
    """
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)  # (minigrad's ops take any memory layout)
    copy = kwargs.pop("copy", False)
    if kwargs:
        raise TypeError(f"to: unexpected arguments {sorted(kwargs)}")
    original = x
    flags = [a for a in args if isinstance(a, bool)]  # to(device, dtype, non_blocking, copy)
    if len(flags) == 2:
        copy = flags[1]
    args = [a for a in args if not isinstance(a, bool)]
    for arg in args:
        if isinstance(arg, Tensor):
            device, dtype = arg.device, arg.dtype
        elif isinstance(arg, (str, backend.Device)):
            device = arg
        else:
            dtype = arg
    if dtype is not None:
        x = cast(x, dtype)
    if device is not None:
        device = backend.Device(device)
        if device != x.device:
            x = ToDevice.apply(x, device=device)
    if copy and x is original:
        x = clone(x)
    return x
