"""Every op of DESIGN.md section 2, against central differences (float64) and against PyTorch
(float32 and float64), on shapes, broadcasts, dims and indices that hypothesis draws, with a
random upstream gradient. `check_gradient` and `assert_matches_torch` also assert that backward
changes neither the inputs nor the upstream gradient.

Each entry of CASES is a strategy that draws one case: the op written for minigrad, the input
arrays, and where torch spells it differently, the op written for torch.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DEVICES, Case, broadcast_shapes, requires_torch, rngs, sample, shapes, torch
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.testing import assert_matches_torch, check_gradient


def unary(fn, domain="real", torch_fn=None, min_dims=0, max_dims=3):
    @st.composite
    def draw_case(draw):
        rng = draw(rngs())
        shape = draw(shapes(min_dims=min_dims, max_dims=max_dims))
        return Case(fn, [sample(rng, shape, domain)], torch_fn)

    return draw_case()


def binary(fn, domains=("real", "real"), torch_fn=None):
    @st.composite
    def draw_case(draw):
        rng = draw(rngs())
        a_shape, b_shape = draw(broadcast_shapes())
        return Case(fn, [sample(rng, a_shape, domains[0]), sample(rng, b_shape, domains[1])],
                    torch_fn)

    return draw_case()


@st.composite
def dims_of(draw, ndim, allow_none=True, allow_tuple=True):
    """A `dim` argument for a tensor of `ndim` dims: None, an int (maybe negative) or a tuple."""
    choices = ["int"] + (["none"] if allow_none else []) + (["tuple"] if allow_tuple else [])
    kind = draw(st.sampled_from(choices)) if ndim else "none"
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    picked = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(d - ndim if draw(st.booleans()) else d for d in picked)


def reduction(method, domain="real", allow_none=True, allow_tuple=True, min_side=1, **extra):
    """x.method(dim, keepdim, **extra), with dim and keepdim drawn."""

    @st.composite
    def draw_case(draw):
        rng = draw(rngs())
        shape = draw(shapes(min_dims=1, min_side=min_side))
        dim = draw(dims_of(len(shape), allow_none, allow_tuple))
        keepdim = draw(st.booleans())
        kwargs = dict(keepdim=keepdim, **extra)

        def fn(x):
            return getattr(x, method)(dim=dim, **kwargs)

        return Case(fn, [sample(rng, shape, domain)])

    return draw_case()


@st.composite
def softmax_case(draw, method):
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    domain = draw(st.sampled_from(["real", "wide"]))
    return Case(lambda x: getattr(x, method)(dim), [sample(rng, shape, domain)])


@st.composite
def max_along_dim_case(draw, method):
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    keepdim = draw(st.booleans())
    return Case(lambda x: tuple(getattr(x, method)(dim, keepdim)), [sample(rng, shape)])


@st.composite
def matmul_case(draw):
    """Shapes for a @ b: 1-D operands, plain matrices, and batches that broadcast."""
    rng = draw(rngs())
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    a_batch, b_batch = draw(broadcast_shapes(max_dims=2, max_side=3))
    a_shape = draw(st.sampled_from([(k,), a_batch + (m, k)]))
    b_shape = draw(st.sampled_from([(k,), b_batch + (k, n)]))
    return Case(lambda a, b: a @ b, [sample(rng, a_shape), sample(rng, b_shape)])


@st.composite
def reshape_case(draw):
    rng = draw(rngs())
    shape = draw(shapes())
    target = draw(st.sampled_from([(-1,), tuple(reversed(shape)), (1, *shape, 1)]))
    return Case(lambda x: x.reshape(target), [sample(rng, shape)])


@st.composite
def flatten_case(draw):
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1))
    start = draw(st.integers(0, len(shape) - 1))
    end = draw(st.integers(start, len(shape) - 1))
    return Case(lambda x: x.flatten(start, end), [sample(rng, shape)])


@st.composite
def permute_case(draw):
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1))
    dims = tuple(draw(st.permutations(range(len(shape)))))
    return Case(lambda x: x.permute(*dims), [sample(rng, shape)])


@st.composite
def transpose_case(draw):
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1))
    d0, d1 = (draw(st.integers(-len(shape), len(shape) - 1)) for _ in range(2))
    return Case(lambda x: x.transpose(d0, d1), [sample(rng, shape)])


@st.composite
def squeeze_case(draw):
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1, min_side=1, max_side=2))
    dim = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    return Case(lambda x: x.squeeze() if dim is None else x.squeeze(dim), [sample(rng, shape)])


@st.composite
def unsqueeze_case(draw):
    rng = draw(rngs())
    shape = draw(shapes())
    dim = draw(st.integers(-len(shape) - 1, len(shape)))
    return Case(lambda x: x.unsqueeze(dim), [sample(rng, shape)])


@st.composite
def expand_case(draw):
    rng = draw(rngs())
    small, big = draw(broadcast_shapes())
    target = np.broadcast_shapes(small, big)
    sizes = tuple(-1 if i >= len(target) - len(small) and draw(st.booleans()) else n
                  for i, n in enumerate(target))
    return Case(lambda x: x.expand(sizes), [sample(rng, small)])


@st.composite
def cat_case(draw, stack=False):
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1))
    count = draw(st.integers(1, 3))
    ndim = len(shape) + (1 if stack else 0)
    dim = draw(st.integers(-ndim, ndim - 1))
    arrays = []
    for _ in range(count):
        this = list(shape)
        if not stack:
            this[dim] = draw(st.integers(1, 3))
        arrays.append(sample(rng, tuple(this)))
    if stack:
        return Case(lambda *xs: mg.stack(xs, dim), arrays, lambda *xs: torch().stack(xs, dim))
    return Case(lambda *xs: mg.cat(xs, dim), arrays, lambda *xs: torch().cat(xs, dim))


@st.composite
def where_case(draw):
    rng = draw(rngs())
    c_shape, x_shape, y_shape = draw(broadcast_shapes(count=3))
    condition = rng.random(c_shape) < 0.5
    return Case(
        lambda c, x, y: mg.where(c, x, y),
        [condition, sample(rng, x_shape), sample(rng, y_shape)],
        lambda c, x, y: torch().where(c, x, y),
        requires_grad=[False, True, True],
    )


@st.composite
def basic_index_case(draw):
    """Ints (maybe negative), slices with steps, None and Ellipsis."""
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1))
    key = []
    for n in shape[: draw(st.integers(1, len(shape)))]:
        if draw(st.booleans()):
            key.append(None)
        if draw(st.booleans()):
            key.append(draw(st.integers(-n, n - 1)))
        else:
            start = draw(st.integers(-n, n - 1))
            key.append(slice(start, None, draw(st.integers(1, 2))))
    if draw(st.booleans()):
        key.append(Ellipsis)
    key = tuple(key)
    return Case(lambda x: x[key], [sample(rng, shape)])


@st.composite
def integer_index_case(draw):
    """An integer array (with repeats, maybe negative) on one axis, and a slice before it."""
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1))
    axis = draw(st.integers(0, len(shape) - 1))
    n = shape[axis]
    picks = rng.integers(-n, n, size=draw(shapes(max_dims=2)))
    key = (slice(None),) * axis + (picks,)
    return Case(lambda x: x[key], [sample(rng, shape)])


@st.composite
def mask_index_case(draw):
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1))
    mask = rng.random(shape[: draw(st.integers(1, len(shape)))]) < 0.5
    return Case(lambda x, m: x[m], [sample(rng, shape), mask], requires_grad=[True, False])


@st.composite
def clamp_case(draw):
    rng = draw(rngs())
    low = draw(st.one_of(st.none(), st.floats(-1, 0)))
    high = draw(st.one_of(st.none(), st.floats(0.1, 1))) if low is not None else 0.5
    return Case(lambda x: x.clamp(low, high), [sample(rng, draw(shapes()))])


@st.composite
def along_dim_case(draw, make):
    """make(draw, rng, shape, dim) -> Case, for an op that works along one dim."""
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    return make(draw, rng, shape, dim)


def _gather(draw, rng, shape, dim):
    index_shape = tuple(draw(st.integers(1, s)) for s in shape)
    index = rng.integers(0, shape[dim], index_shape)
    return Case(lambda x, i: x.gather(dim, i), [sample(rng, shape), index],
                requires_grad=[True, False])


def _sort(draw, rng, shape, dim):
    descending = draw(st.booleans())
    return Case(lambda x: x.sort(dim, descending), [sample(rng, shape)])


def _topk(draw, rng, shape, dim):
    k, largest = draw(st.integers(0, shape[dim])), draw(st.booleans())
    return Case(lambda x: x.topk(k, dim, largest), [sample(rng, shape)])


def _split(draw, rng, shape, dim):
    size = draw(st.integers(1, shape[dim] + 1))
    if draw(st.booleans()):
        return Case(lambda x: x.split(size, dim), [sample(rng, shape)])
    return Case(lambda x: x.chunk(size, dim), [sample(rng, shape)])


def _index_select(draw, rng, shape, dim):
    index = rng.integers(0, shape[dim], draw(st.integers(0, 4)))
    return Case(lambda x, i: x.index_select(dim, i), [sample(rng, shape), index],
                requires_grad=[True, False])


def _prod(draw, rng, shape, dim):
    keepdim = draw(st.booleans())
    return Case(lambda x: x.prod(dim, keepdim), [sample(rng, shape)])


def _prod_with_zeros(draw, rng, shape, dim):
    """A zero or two along dim: the gradient is the product of the others, not out / x."""
    x = sample(rng, shape)
    x[(slice(None),) * (dim % len(shape)) + (0,)] = 0.0
    if draw(st.booleans()) and shape[dim] > 1:
        x[(slice(None),) * (dim % len(shape)) + (-1,)] = 0.0
    return Case(lambda t: t.prod(dim), [x])


def _cumsum(draw, rng, shape, dim):
    return Case(lambda x: x.cumsum(dim), [sample(rng, shape)])


@st.composite
def masked_fill_case(draw):
    rng = draw(rngs())
    x_shape, mask_shape = draw(broadcast_shapes())
    if len(mask_shape) > len(x_shape) or any(
            m not in (1, s) for m, s in zip(mask_shape[::-1], x_shape[::-1])):
        mask_shape = x_shape  # the mask broadcasts to x, never x to the mask
    mask = rng.random(mask_shape) < 0.5
    return Case(lambda x, m: x.masked_fill(m, -2.5), [sample(rng, x_shape), mask],
                requires_grad=[True, False])


@st.composite
def repeat_case(draw):
    rng = draw(rngs())
    shape = draw(shapes(max_dims=2))
    count = max(1, len(shape) + draw(st.integers(0, 1)))  # torch needs one at least
    sizes = tuple(draw(st.integers(1, 3)) for _ in range(count))
    return Case(lambda x: x.repeat(*sizes), [sample(rng, shape)])


@st.composite
def flip_case(draw):
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1))
    dims = draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True))
    return Case(lambda x: x.flip(dims), [sample(rng, shape)])


@st.composite
def norm_case(draw):
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1))
    dim = draw(dims_of(len(shape)))
    p, keepdim = draw(st.sampled_from([1, 2, 3])), draw(st.booleans())
    return Case(lambda x: x.norm(p, dim, keepdim), [sample(rng, shape, "nonzero")])


@st.composite
def matrix_product_case(draw, batched):
    rng = draw(rngs())
    b, n, m, p = (draw(st.integers(1, 3)) for _ in range(4))
    if batched:
        return Case(lambda x, y: x.bmm(y), [sample(rng, (b, n, m)), sample(rng, (b, m, p))])
    return Case(lambda x, y: x.mm(y), [sample(rng, (n, m)), sample(rng, (m, p))])


CASES = {
    # elementwise arithmetic, broadcasting
    "add": binary(lambda a, b: a + b),
    "sub": binary(lambda a, b: a - b),
    "mul": binary(lambda a, b: a * b),
    "div": binary(lambda a, b: a / b, ("real", "nonzero")),
    "pow": binary(lambda a, b: a**b, ("positive", "real")),
    # with Python numbers on either side
    "add_scalar": unary(lambda x: 2.5 + x),
    "rsub_scalar": unary(lambda x: 3 - x),
    "mul_scalar": unary(lambda x: x * -1.5),
    "rdiv_scalar": unary(lambda x: 2 / x, "nonzero"),
    "div_scalar": unary(lambda x: x / 4),
    "pow_int": unary(lambda x: x**3),
    "pow_fraction": unary(lambda x: x**0.5, "positive"),
    "rpow": unary(lambda x: 2**x),
    "neg": unary(lambda x: -x),
    # math
    "exp": unary(lambda x: x.exp()),
    "log": unary(lambda x: x.log(), "positive"),
    "sqrt": unary(lambda x: x.sqrt(), "positive"),
    "abs": unary(lambda x: x.abs(), "nonzero"),
    "clamp": clamp_case(),
    "where": where_case(),
    "clone": unary(lambda x: x.clone()),
    # activations
    "relu": unary(lambda x: x.relu(), "nonzero"),
    "sigmoid": unary(lambda x: x.sigmoid()),
    "sigmoid_saturating": unary(lambda x: x.sigmoid(), "wide"),
    "tanh": unary(lambda x: x.tanh()),
    "softmax": softmax_case("softmax"),
    "log_softmax": softmax_case("log_softmax"),
    # reductions
    "sum": reduction("sum"),
    "mean": reduction("mean"),
    "amax": reduction("amax", allow_none=False),
    "amin": reduction("amin", allow_none=False),
    "max_all": unary(lambda x: x.max()),
    "min_all": unary(lambda x: x.min()),
    "max_dim": max_along_dim_case("max"),
    "min_dim": max_along_dim_case("min"),
    # (at least 2 elements per reduced axis: the unbiased variance of one element is nan)
    "var": reduction("var", min_side=2),
    "var_biased": reduction("var", correction=0),
    "std": reduction("std", min_side=2),
    "logsumexp": reduction("logsumexp", "wide", allow_none=False),
    # linear algebra
    "matmul": matmul_case(),
    # shape
    "reshape": reshape_case(),
    "flatten": flatten_case(),
    "permute": permute_case(),
    "transpose": transpose_case(),
    "T": unary(lambda x: x.T, min_dims=2, max_dims=2),
    "squeeze": squeeze_case(),
    "unsqueeze": unsqueeze_case(),
    "expand": expand_case(),
    "cat": cat_case(),
    "stack": cat_case(stack=True),
    # more of PyTorch's everyday ops
    "sin": unary(lambda x: x.sin()),
    "cos": unary(lambda x: x.cos()),
    "log1p": unary(lambda x: x.log1p(), "positive"),
    "maximum": binary(lambda a, b: a.maximum(b)),
    "minimum": binary(lambda a, b: a.minimum(b)),
    "remainder": binary(lambda a, b: a % b, ("real", "nonzero")),
    "cumsum": along_dim_case(_cumsum),
    "prod_dim": along_dim_case(_prod),
    "prod_all": unary(lambda x: x.prod()),
    "prod_with_zeros": along_dim_case(_prod_with_zeros),
    "norm": norm_case(),
    "gather": along_dim_case(_gather),
    "sort": along_dim_case(_sort),
    "topk": along_dim_case(_topk),
    "split_chunk": along_dim_case(_split),
    "index_select": along_dim_case(_index_select),
    "masked_fill": masked_fill_case(),
    "repeat": repeat_case(),
    "flip": flip_case(),
    "mm": matrix_product_case(batched=False),
    "bmm": matrix_product_case(batched=True),
    "t": unary(lambda x: x.t(), min_dims=2, max_dims=2),
    # indexing
    "index_basic": basic_index_case(),
    "index_integer_array": integer_index_case(),
    "index_bool_mask": mask_index_case(),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", list(CASES))
@given(data=st.data())
def test_gradient_matches_central_differences(op, device, data):
    case = data.draw(CASES[op])
    check_gradient(case.fn, case.inputs, device=device, requires_grad=case.requires_grad)


@requires_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", list(CASES))
@given(data=st.data())
def test_forward_and_gradient_match_torch(op, device, dtype, data):
    case = data.draw(CASES[op])
    assert_matches_torch(case.fn, case.inputs, case.torch_fn, dtype=dtype, device=device,
                         requires_grad=case.requires_grad)
