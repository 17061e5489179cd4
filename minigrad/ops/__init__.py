"""Every differentiable operation of minigrad, one Function subclass each, grouped by family.

The end of this file is where the ops become Tensor operators and methods: `Tensor.__add__` is
`elementwise.add`, bound by name below; `Tensor.sum` is `reduce.sum`, which says so itself with
`@tensor_method()` above its definition (ops/registry.py). Adding an op is its Function, its
function and that one decorator.
"""

from minigrad.ops import (
    activation,
    arrange,
    elementwise,
    inplace,
    linalg,
    reduce,
    registry,
    shape,
)
from minigrad.ops.activation import erf, log_softmax, relu, sigmoid, softmax, tanh
from minigrad.ops.arrange import (
    argsort,
    diag,
    index_add,
    index_put,
    roll,
    scatter,
    scatter_add,
    tril,
    triu,
    unfold,
)
from minigrad.ops.elementwise import (
    abs,
    add,
    bitwise_and,
    bitwise_not,
    bitwise_or,
    bitwise_xor,
    cast,
    clamp,
    clone,
    cos,
    div,
    eq,
    exp,
    floor_divide,
    ge,
    gt,
    le,
    log,
    log1p,
    lt,
    maximum,
    minimum,
    mul,
    ne,
    neg,
    pow,
    remainder,
    sign,
    sin,
    sqrt,
    sub,
    to,
    where,
)
from minigrad.ops.linalg import bmm, matmul, mm
from minigrad.ops.reduce import (
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    cumsum,
    logsumexp,
    max,
    mean,
    min,
    norm,
    prod,
    std,
    sum,
    var,
)
from minigrad.ops.shape import (
    cat,
    chunk,
    expand,
    flatten,
    flip,
    gather,
    index,
    index_select,
    masked_fill,
    movedim,
    permute,
    repeat,
    reshape,
    sort,
    split,
    squeeze,
    stack,
    topk,
    transpose,
    unsqueeze,
    view,
)
from minigrad.tensor import Tensor


def _reflected(op):
    """`other (op) tensor`: Python calls tensor.__rop__(other)."""

    def reflected(self, other):
        return op(other, self)

    reflected.__name__ = f"r{op.__name__}"
    return reflected


# ---------------------------------------------------------------------------------------------
# Tensor's operators and methods, bound here so that tensor.py need not import the ops.

Tensor.__add__, Tensor.__radd__ = add, _reflected(add)
Tensor.__sub__, Tensor.__rsub__ = sub, _reflected(sub)
Tensor.__mul__, Tensor.__rmul__ = mul, _reflected(mul)
Tensor.__truediv__, Tensor.__rtruediv__ = div, _reflected(div)
Tensor.__pow__, Tensor.__rpow__ = pow, _reflected(pow)
Tensor.__matmul__, Tensor.__rmatmul__ = matmul, _reflected(matmul)
Tensor.__neg__ = neg
Tensor.__abs__ = abs
Tensor.__getitem__ = index
Tensor.__eq__, Tensor.__ne__ = eq, ne
Tensor.__lt__, Tensor.__le__, Tensor.__gt__, Tensor.__ge__ = lt, le, gt, ge
Tensor.__floordiv__, Tensor.__rfloordiv__ = floor_divide, _reflected(floor_divide)
Tensor.__mod__, Tensor.__rmod__ = remainder, _reflected(remainder)
Tensor.__and__, Tensor.__rand__ = bitwise_and, _reflected(bitwise_and)
Tensor.__or__, Tensor.__ror__ = bitwise_or, _reflected(bitwise_or)
Tensor.__xor__, Tensor.__rxor__ = bitwise_xor, _reflected(bitwise_xor)
Tensor.__invert__ = bitwise_not
# in place: x += y changes x's memory (Python would otherwise rebind x to x + y)
Tensor.__iadd__, Tensor.__isub__ = inplace.add_, inplace.sub_
Tensor.__imul__, Tensor.__itruediv__ = inplace.mul_, inplace.div_

# the methods (x.sum(), x.relu(), ...) are bound where each op is defined, by @tensor_method
# (ops/registry.py); registry.METHODS lists them
Tensor.T = property(shape.T)

__all__ = [
    "activation", "elementwise", "inplace", "linalg", "reduce", "shape", "cast", "cat", "stack",
    "where",
]
