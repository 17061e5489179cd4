"""In-place operations, as PyTorch has them: `x += y`, `x.add_(y)`, `x.zero_()`, `x.copy_(y)`...

An in-place op writes its result into the tensor's own memory, so every view of it sees the
change, and bumps the version of that memory (autograd.bump_version): a backward that saved
the old contents then refuses to run rather than compute with the new ones.

- A leaf that requires grad cannot be changed in place while gradients are recorded (its value
  is what the gradients are *of*); inside `no_grad` that is how parameters are updated:
  `with mg.no_grad(): w -= lr * w.grad`.
- Where gradients are recorded and the tensor or the other operand is in the graph, the op is
  recorded as its out-of-place twin applied to a copy of the old value, and the tensor takes
  the new node as its grad_fn: gradients flow as if `x = x + y` had been written.
- Otherwise it is one array operation writing into the tensor's memory.
"""

from __future__ import annotations

import weakref

import numpy as np

from minigrad import autograd, backend
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.ops import elementwise
from minigrad.ops.broadcast import unbroadcast
from minigrad.ops.registry import tensor_method
from minigrad.tensor import Tensor


class Overwrite(Function):
    """The values of `new` (broadcast to `old`'s shape, cast to its dtype) in place of `old`'s:
    what `copy_` and the fills record. The old values get no gradient; `new` gets its own."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, old, new):
        ctx.new_shape, ctx.new_dtype = new.shape, new.dtype
        out = get_array_module(old).empty_like(old)
        out[...] = new
        return out

    @staticmethod
    def backward(ctx, grad):
        grad_new = None
        if ctx.needs_input_grad[1]:
            grad_new = get_array_module(grad).asarray(unbroadcast(grad, ctx.new_shape),
                                                      dtype=ctx.new_dtype)
        return None, grad_new


def _refuse_leaf(tensor: Tensor, name: str) -> None:
    if tensor.requires_grad and tensor.grad_fn is None and autograd.is_grad_enabled():
        raise RuntimeError(
            f"{name}: a leaf Variable that requires grad is being used in an in-place operation "
            f"(shape {tensor.shape}); update it inside `with minigrad.no_grad():`, as an "
            "optimizer does"
        )


def _in_place(tensor: Tensor, name: str, out_of_place, update_array, others=()) -> Tensor:
    """Change `tensor` in place: recorded as `out_of_place(old copy)` where the graph needs it,
    else `update_array(tensor's array)`. Returns the tensor."""
    _refuse_leaf(tensor, name)
    in_graph = tensor.requires_grad or any(isinstance(o, Tensor) and o.requires_grad
                                           for o in others)
    if autograd.is_grad_enabled() and in_graph:
        old = Tensor(tensor.array.copy())
        old.requires_grad, old.grad_fn = tensor.requires_grad, tensor.grad_fn
        if old.grad_fn is not None:  # the node that made the old values: they are in the copy
            _output_is(old.grad_fn, old.array)
        result = out_of_place(old)
        _check_result(name, tensor, result.shape, result.dtype)
        tensor.array[...] = result.array
        tensor.requires_grad, tensor.grad_fn = True, result.grad_fn
        result.grad_fn._output = weakref.ref(tensor)  # retain_grad reaches this tensor
        _output_is(result.grad_fn, result.array, also=tensor.array)
    else:
        update_array(tensor.array)
    autograd.bump_version(tensor.array)
    return tensor


def _output_is(node, array, also=None) -> None:
    """Tell a recorded backward (autograd/higher.py) which arrays hold `node`'s output now:
    `array` (kept alive with the node, so that its id stays its own) and `also`."""
    node._out_id, node._alias_id, node._kept = id(array), None if also is None else id(also), \
        array


def _check_result(name: str, tensor: Tensor, shape: tuple, dtype) -> None:
    """PyTorch's rules: the result must keep the tensor's shape and cast to its dtype."""
    if tuple(shape) != tensor.shape:
        raise RuntimeError(f"{name}: output with shape {tensor.shape} doesn't match the "
                           f"broadcast shape {tuple(shape)}")
    if not np.can_cast(dtype, tensor.dtype, casting="same_kind"):
        raise RuntimeError(f"{name}: result type {np.dtype(dtype)} can't be cast to the "
                           f"desired output type {tensor.dtype}")


def _binary(name: str, op, ufunc_name: str):
    """x.<name>(other) and x <op>= other, for add, sub, mul and div."""

    def in_place(self: Tensor, other, alpha=None) -> Tensor:
        if alpha is not None:
            other = elementwise.mul(other, alpha) if isinstance(other, Tensor) else other * alpha
        if isinstance(other, Tensor) and other.device != self.device:
            raise RuntimeError(f"{name}: the tensor is on {self.device} but the other operand "
                               f"is on {other.device}")

        def update(array):
            b = elementwise.operands(name, self, other)[1]  # cast to the promoted dtype
            result_dtype = b.dtype
            if ufunc_name == "divide" and result_dtype.kind != "f":
                result_dtype = backend.get_default_dtype()  # int / int is float, as in torch
            _check_result(name, self, np.broadcast_shapes(array.shape, b.shape), result_dtype)
            getattr(get_array_module(array), ufunc_name)(array, b.array, out=array,
                                                         casting="unsafe")

        return _in_place(self, name, lambda old: op(old, other), update, (other,))

    in_place.__name__ = name
    return in_place


add_ = tensor_method()(_binary("add_", elementwise.add, "add"))
sub_ = tensor_method()(_binary("sub_", elementwise.sub, "subtract"))
mul_ = tensor_method()(_binary("mul_", elementwise.mul, "multiply"))
div_ = tensor_method()(_binary("div_", elementwise.div, "divide"))


def _overwrite(tensor: Tensor, name: str, new: Tensor) -> Tensor:
    def update(array):
        _check_result(name, tensor, np.broadcast_shapes(tensor.shape, new.shape), tensor.dtype)
        array[...] = new.array

    return _in_place(tensor, name, lambda old: Overwrite.apply(old, new), update, (new,))


@tensor_method()
def fill_(tensor: Tensor, value, _name: str = "fill_") -> Tensor:
    """Every element set to `value`."""
    xp = get_array_module(tensor.array)
    return _overwrite(tensor, _name, Tensor(xp.asarray(value, dtype=tensor.dtype)))


@tensor_method()
def zero_(tensor: Tensor) -> Tensor:
    """Every element set to 0."""
    return fill_(tensor, 0, "zero_")


@tensor_method()
def copy_(tensor: Tensor, source) -> Tensor:
    """The values of `source` (broadcast, cast to this dtype, moved to this device)."""
    if not isinstance(source, Tensor):
        raise TypeError(f"copy_: expected a Tensor to copy from, got {type(source).__name__}")
    if source.device != tensor.device:
        source = source.to(tensor.device)
    np.broadcast_shapes(source.shape, tensor.shape)
    return _overwrite(tensor, "copy_", source)


@tensor_method()
def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Values drawn from N(mean, std^2), from the device's seeded generator."""
    rng = backend.generator(tensor.device)
    values = mean + std * rng.standard_normal(tensor.shape, dtype=tensor.dtype)
    return _overwrite(tensor, "normal_", Tensor(values))


@tensor_method()
def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Values drawn uniformly from [a, b), from the device's seeded generator."""
    rng = backend.generator(tensor.device)
    values = a + (b - a) * rng.random(tensor.shape, dtype=tensor.dtype)
    return _overwrite(tensor, "uniform_", Tensor(values))


@tensor_method()
def clamp_(tensor: Tensor, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
    """Values limited to [min, max], in place."""
    def update(array):
        get_array_module(array).clip(array, min, max, out=array)

    return _in_place(tensor, "clamp_", lambda old: elementwise.clamp(old, min, max), update)


@tensor_method()
def relu_(tensor: Tensor) -> Tensor:
    """max(x, 0), in place."""
    from minigrad.ops.activation import relu

    def update(array):
        get_array_module(array).maximum(array, 0, out=array)

    return _in_place(tensor, "relu_", relu, update)


@tensor_method()
def bernoulli_(tensor: Tensor, p=0.5) -> Tensor:
    """Each element set to 1 with probability p (a number, or a tensor of probabilities that
    broadcasts to this one), else 0; from the device's seeded generator."""
    rng = backend.generator(tensor.device)
    if isinstance(p, Tensor):
        if p.device != tensor.device:
            raise RuntimeError(f"bernoulli_: p is on {p.device} but the tensor is on "
                               f"{tensor.device}")
        p = p.array
    elif not 0 <= p <= 1:
        raise ValueError(f"bernoulli_: p must be in [0, 1], got {p}")
    draws = rng.random(tensor.shape, dtype=np.float64 if tensor.dtype == np.float64
                       else np.float32) < p
    return _overwrite(tensor, "bernoulli_", Tensor(draws.astype(tensor.dtype)))


@tensor_method()
def scatter_(tensor: Tensor, dim: int, index: Tensor, src=None, *, value=None,
             reduce: str | None = None) -> Tensor:
    """Tensor.scatter_: scatter (ops/arrange.py) into this tensor's memory."""
    from minigrad.ops import arrange

    def update(array):
        array[...] = arrange.scatter(Tensor(array), dim, index, src, value=value,
                                     reduce=reduce).array

    return _in_place(tensor, "scatter_", lambda old: arrange.scatter(
        old, dim, index, src, value=value, reduce=reduce), update, (src,))


@tensor_method()
def scatter_add_(tensor: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """Tensor.scatter_add_: scatter_add (ops/arrange.py) into this tensor's memory."""
    from minigrad.ops import arrange

    def update(array):
        array[...] = arrange.scatter_add(Tensor(array), dim, index, src).array

    return _in_place(tensor, "scatter_add_",
                     lambda old: arrange.scatter_add(old, dim, index, src), update, (src,))


@tensor_method()
def index_add_(tensor: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha=1) -> Tensor:
    """Tensor.index_add_: index_add (ops/arrange.py) into this tensor's memory."""
    from minigrad.ops import arrange

    def update(array):
        array[...] = arrange.index_add(Tensor(array), dim, index, source, alpha=alpha).array

    return _in_place(tensor, "index_add_", lambda old: arrange.index_add(
        old, dim, index, source, alpha=alpha), update, (source,))
