"""Second derivatives (backward passes with create_graph=True) of every op, against torch's
double backward (float32 and float64) and against central differences of the first derivative
(gradgradcheck, float64), on shapes, dims and windows that hypothesis draws, with random
output gradients that are differentiated too; the layers' fast paths and their references
both. Then what is built on them: backward(create_graph=True), third and higher derivatives,
the functional API on small networks, the errors that name an op, and memory."""

from __future__ import annotations

import gc
import math
import weakref

import numpy as np
import pytest
from helpers import DEVICES, Case, requires_torch, rngs, sample, torch, window_geometry
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ops import CASES

import minigrad as mg
import minigrad.nn.functional as F
from minigrad.autograd import Function
from minigrad.ops import fast
from minigrad.ops.dropout import Dropout
from minigrad.testing import assert_double_backward_matches_torch, check_second_gradient

# a second derivative's check costs several first-order ones: half the profile's examples
# (HYPOTHESIS_PROFILE=dev or thorough draws more, as everywhere)
HALF = settings(max_examples=max(3, settings.default.max_examples // 2))


def _check(case: Case, device: str = "cpu", dtypes=(np.float32, np.float64)) -> None:
    # central differences of every element where there are few, else along random directions
    many = sum(np.size(a) for a in case.inputs) > 200
    check_second_gradient(case.fn, case.inputs, device=device, requires_grad=case.requires_grad,
                          fast_mode=many)
    for dtype in dtypes:
        assert_double_backward_matches_torch(case.fn, case.inputs, case.torch_fn, dtype=dtype,
                                             device=device, requires_grad=case.requires_grad)


# ---------------------------------------------------------------------------------------------
# every op of test_ops.py: elementwise, reductions, shapes, indexing, matmul


@requires_torch
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", list(CASES))
@HALF
@given(data=st.data())
def test_every_op_has_second_derivatives_as_torch_and_central_differences(op, device, data):
    _check(data.draw(CASES[op]), device)


# ---------------------------------------------------------------------------------------------
# the layers' ops, each by its fast path (where one takes the case) and by its reference

LAYER_CASES = {}


def layer_case(function):
    LAYER_CASES[function.__name__] = st.composite(function)()
    return function


def _tf():
    return torch().nn.functional


@layer_case
def conv2d(draw):
    rng, g = draw(rngs()), draw(window_geometry(max_extra=2))
    groups = draw(st.sampled_from([1, 2]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    padding = g["padding"][0], g["padding"][2]  # torch pads both sides alike
    reach = [d * (k - 1) + 1 for k, d in zip(g["kernel"], g["dilation"])]
    size = [max(s, r - 2 * p) for s, r, p in zip(g["size"], reach, padding)]
    bias = draw(st.booleans())
    inputs = [sample(rng, (draw(st.integers(1, 2)), cin, *size)),
              sample(rng, (cout, cin // groups, *g["kernel"]))] + ([sample(rng, (cout,))]
                                                                   if bias else [])
    settings_ = dict(stride=g["stride"], padding=padding, dilation=g["dilation"],
                     groups=groups)
    return Case(lambda *a: F.conv2d(*a, **settings_),
                inputs, lambda *a: _tf().conv2d(*a, **settings_))


@layer_case
def conv2d_3x3_batch(draw):  # the shape the CPU's Winograd and im2col fast paths take
    rng = draw(rngs())
    return Case(lambda x, w, b: F.conv2d(x, w, b, padding=1),
                [sample(rng, (2, 16, 4, 4)) * 0.3, sample(rng, (2, 16, 3, 3)) * 0.3,
                 sample(rng, (2,))],
                lambda x, w, b: _tf().conv2d(x, w, b, padding=1))


@layer_case
def conv_transpose2d(draw):
    rng = draw(rngs())
    stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, 1))
    output_padding = draw(st.integers(0, stride - 1))
    kw = dict(stride=stride, padding=padding, output_padding=output_padding)
    return Case(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw),
                [sample(rng, (2, 2, 3, 3)), sample(rng, (2, 3, 3, 3)), sample(rng, (3,))],
                lambda x, w, b: _tf().conv_transpose2d(x, w, b, **kw))


@layer_case
def max_pool2d(draw):  # times the input, so that the second derivative is not zero
    rng = draw(rngs())
    kernel, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding, ceil_mode = draw(st.integers(0, kernel // 2)), draw(st.booleans())
    kw = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    return Case(lambda x: F.max_pool2d(x, **kw) ** 2, [sample(rng, (2, 2, 5, 4))],
                lambda x: _tf().max_pool2d(x, **kw) ** 2)


@layer_case
def max_pool2d_tiled(draw):  # stride == kernel, no padding: the CPU's tiled fast path
    rng = draw(rngs())
    return Case(lambda x: F.max_pool2d(x, 2) ** 2, [sample(rng, (2, 3, 4, 6))],
                lambda x: _tf().max_pool2d(x, 2) ** 2)


@layer_case
def avg_pool2d(draw):
    rng = draw(rngs())
    kernel, stride = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    kw = dict(kernel_size=kernel, stride=stride, padding=draw(st.integers(0, kernel // 2)),
              ceil_mode=draw(st.booleans()), count_include_pad=draw(st.booleans()))
    return Case(lambda x: F.avg_pool2d(x, **kw) ** 2, [sample(rng, (2, 2, 5, 4))],
                lambda x: _tf().avg_pool2d(x, **kw) ** 2)


@layer_case
def adaptive_pools(draw):
    rng, size = draw(rngs()), (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return Case(lambda x: F.adaptive_avg_pool2d(x, size) ** 2 + F.adaptive_max_pool2d(x, size)
                ** 3, [sample(rng, (2, 2, 5, 4))],
                lambda x: _tf().adaptive_avg_pool2d(x, size) ** 2
                + _tf().adaptive_max_pool2d(x, size) ** 3)


@layer_case
def batch_norm(draw):
    rng, training = draw(rngs()), draw(st.booleans())
    shape = draw(st.sampled_from([(4, 3), (2, 3, 2, 2)]))
    mean, var = rng.standard_normal(3) * 0.1, rng.uniform(0.5, 2.0, 3)

    def ours(x, w, b):
        return F.batch_norm(x, mg.tensor(mean.astype(x.dtype), device=x.device),
                            mg.tensor(var.astype(x.dtype), device=x.device), w, b,
                            training=training)

    def theirs(x, w, b):
        t = torch()
        return _tf().batch_norm(x, t.tensor(mean).to(x.dtype), t.tensor(var).to(x.dtype), w, b,
                                training=training)

    return Case(ours, [sample(rng, shape), sample(rng, (3,)), sample(rng, (3,))], theirs)


@layer_case
def layer_and_group_norm(draw):
    rng = draw(rngs())
    return Case(lambda x, w, b: F.layer_norm(x, (2, 3), w[:6].reshape(2, 3), b[:6].reshape(2, 3))
                + F.group_norm(x, 2, w[:4], b[:4]),
                [sample(rng, (2, 4, 2, 3)), sample(rng, (6,)), sample(rng, (6,))],
                lambda x, w, b: _tf().layer_norm(x, (2, 3), w[:6].reshape(2, 3),
                                                 b[:6].reshape(2, 3))
                + _tf().group_norm(x, 2, w[:4], b[:4]))


@layer_case
def activations(draw):
    rng = draw(rngs())
    name = draw(st.sampled_from(["gelu", "silu", "elu", "softplus", "leaky_relu", "hardtanh",
                                 "softmax", "log_softmax", "relu", "prelu", "erf"]))
    shape = (2, 3, 4)
    if name == "prelu":
        return Case(lambda x, w: F.prelu(x, w) * x, [sample(rng, shape), sample(rng, (3,))],
                    lambda x, w: _tf().prelu(x, w) * x)
    if name == "erf":
        return Case(lambda x: mg.erf(x), [sample(rng, shape)], lambda x: torch().erf(x))
    if name in ("softmax", "log_softmax"):
        dim = draw(st.integers(-3, 2))
        return Case(lambda x: getattr(F, name)(x, dim), [sample(rng, shape)],
                    lambda x: getattr(_tf(), name)(x, dim))
    # relu's kin are piecewise linear: times x, for a second derivative that is not zero
    return Case(lambda x: getattr(F, name)(x) * x, [sample(rng, shape)],
                lambda x: getattr(_tf(), name)(x) * x)


@layer_case
def losses(draw):
    rng, reduction = draw(rngs()), draw(st.sampled_from(["mean", "sum", "none"]))
    name = draw(st.sampled_from(["cross_entropy", "nll_loss", "binary_cross_entropy",
                                 "binary_cross_entropy_with_logits", "mse_loss", "l1_loss",
                                 "smooth_l1_loss", "kl_div"]))
    n, c = 4, 3
    if name in ("cross_entropy", "nll_loss"):
        target = rng.integers(0, c, n)
        target[1] = (target[0] + 1) % c  # (not every target ignored: that mean is nan)
        weight = rng.uniform(0.5, 2.0, c)
        kw = dict(reduction=reduction, ignore_index=int(target[0]))
        if name == "cross_entropy":
            kw["label_smoothing"] = draw(st.sampled_from([0.0, 0.2]))

        def ours(x):
            x = x.log_softmax(1) if name == "nll_loss" else x
            return getattr(F, name)(x, mg.tensor(target, device=x.device), weight=mg.tensor(
                weight.astype(x.dtype), device=x.device), **kw)

        def theirs(x):
            t = torch()
            x = x.log_softmax(1) if name == "nll_loss" else x
            return getattr(_tf(), name)(x, t.tensor(target), weight=t.tensor(weight).to(
                x.dtype), **kw)

        return Case(ours, [sample(rng, (n, c))], theirs)
    target = rng.uniform(0.05, 0.95, (n, c))
    x = rng.uniform(0.1, 0.9, (n, c)) if name == "binary_cross_entropy" else \
        sample(rng, (n, c))
    if name == "kl_div":
        x = np.log(rng.dirichlet(np.ones(c), n))
    kw = dict(reduction=reduction if name != "kl_div" else
              draw(st.sampled_from(["batchmean", "sum"])))
    if name == "binary_cross_entropy_with_logits":
        kw["pos_weight"] = rng.uniform(0.5, 2.0, c)
    extra = kw.pop("pos_weight", None)

    def call(lib, functional, x, y):
        more = {} if extra is None else {"pos_weight": lib.tensor(extra).to(x.dtype)
                                         if lib is torch() else
                                         lib.tensor(extra.astype(x.dtype), device=x.device)}
        return getattr(functional, name)(x, y, **kw, **more)

    return Case(lambda x, y: call(mg, F, x, y), [x, target],
                lambda x, y: call(torch(), _tf(), x, y), requires_grad=[True, False])


@layer_case
def embedding_interpolate_dropout(draw):
    rng = draw(rngs())
    name = draw(st.sampled_from(["embedding", "nearest", "bilinear", "dropout"]))
    if name == "embedding":
        index = rng.integers(0, 4, (2, 3))
        pad = draw(st.sampled_from([None, 1]))
        return Case(lambda w: F.embedding(mg.tensor(index), w, padding_idx=pad) ** 2,
                    [sample(rng, (4, 3))],
                    lambda w: _tf().embedding(torch().tensor(index), w, padding_idx=pad) ** 2)
    if name == "dropout":  # one mask for both (torch's is drawn from its own generator)
        mask = (rng.random((2, 3, 4)) > 0.3) / 0.7

        def theirs(x):
            return x * torch().tensor(mask).to(x.dtype)

        return Case(lambda x: Dropout.apply(x, mask=mask.astype(x.dtype)) ** 2,
                    [sample(rng, (2, 3, 4))], lambda x: theirs(x) ** 2)
    kw = dict(scale_factor=2, mode=name) | ({"align_corners": False} if name == "bilinear"
                                             else {})
    return Case(lambda x: F.interpolate(x, **kw) ** 2, [sample(rng, (1, 2, 3, 2))],
                lambda x: _tf().interpolate(x, **kw) ** 2)


@layer_case
def recurrent(draw):
    rng = draw(rngs())
    mode = draw(st.sampled_from(["LSTM", "GRU", "RNN"]))
    t = torch()
    t.manual_seed(int(rng.integers(0, 2**31)))
    theirs = getattr(t.nn, mode)(3, 2, bidirectional=draw(st.booleans())).double()
    ours = getattr(mg.nn, mode)(3, 2, bidirectional=theirs.bidirectional)
    ours.load_state_dict({k: mg.tensor(v.detach().numpy()) for k, v in
                          theirs.state_dict().items()})

    def run(module, x):
        module.to(x.dtype) if hasattr(module, "to") else None
        return module(x)[0]

    return Case(lambda x: run(ours, x), [sample(rng, (3, 2, 3))], lambda x: run(theirs, x))


@requires_torch
@pytest.mark.parametrize("fast_paths", [True, False], ids=["fast", "reference"])
@pytest.mark.parametrize("op", list(LAYER_CASES))
@HALF
@given(data=st.data())
def test_every_layer_op_has_second_derivatives_as_torch_and_central_differences(op, fast_paths,
                                                                               data):
    case = data.draw(LAYER_CASES[op])
    fast.enable(fast_paths)
    try:
        _check(case)
    finally:
        fast.enable(True)


# ---------------------------------------------------------------------------------------------
# backward(create_graph=True), orders beyond two


@requires_torch
def test_backward_with_create_graph_leaves_differentiable_grads_as_torch():
    t = torch()
    rng = np.random.default_rng(0)
    x0, w0 = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    x, w = mg.tensor(x0, requires_grad=True), mg.tensor(w0, requires_grad=True)
    tx, tw = t.tensor(x0, requires_grad=True), t.tensor(w0, requires_grad=True)
    for a, b, lib in ((x, w, mg), (tx, tw, t)):
        (lib.tanh(a @ b) ** 2).sum().backward(create_graph=True)
    assert x.grad.requires_grad and w.grad.requires_grad and x.grad.grad_fn is not None
    np.testing.assert_allclose(x.grad.detach().numpy(), tx.grad.detach().numpy(), rtol=1e-12)
    # the gradient's own gradient accumulates into .grad, as in torch (out of place there)
    for a, b in ((x, w), (tx, tw)):
        (a.grad * b.grad.sum()).sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), tx.grad.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(w.grad.detach().numpy(), tw.grad.detach().numpy(), rtol=1e-10)


@requires_torch
def test_backward_inputs_accumulates_only_into_those_as_torch():
    t = torch()
    x, w = mg.tensor([1.0, 2.0], requires_grad=True), mg.tensor([3.0, -1.0], requires_grad=True)
    tx, tw = t.tensor([1.0, 2.0], requires_grad=True), t.tensor([3.0, -1.0], requires_grad=True)
    (x * w).exp().sum().backward(inputs=[w])
    (tx * tw).exp().sum().backward(inputs=[tw])
    assert x.grad is None and tx.grad is None
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-6)
    with pytest.raises(RuntimeError, match="inputs argument was passed as an empty list"):
        (x * w).sum().backward(inputs=[])


@pytest.mark.parametrize("order", [3, 4, 5])
def test_derivatives_of_any_order_match_their_closed_forms(order):
    x0 = np.array([0.3, -1.1, 2.0])
    x = mg.tensor(x0, requires_grad=True)
    y, g = mg.sin(x) * mg.exp(x), None
    for _ in range(order):
        (g,) = mg.autograd.grad((y if g is None else g).sum(), x, create_graph=True)
    # d^n/dx^n (e^x sin x) = 2^(n/2) e^x sin(x + n pi / 4)
    expected = 2 ** (order / 2) * np.exp(x0) * np.sin(x0 + order * math.pi / 4)
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-12)
    (fifth,) = mg.autograd.grad(((x ** 5).sum()), x, create_graph=True)
    for _ in range(4):
        (fifth,) = mg.autograd.grad(fifth.sum(), x, create_graph=True)
    np.testing.assert_allclose(fifth.numpy(), np.full(3, 120.0))


def test_gradgradcheck_catches_a_wrong_second_derivative_and_passes_a_right_one():
    class WrongSquare(Function):  # right first derivative, a backward that drops x's part
        twice_differentiable = True

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * (2 * x.detach() if isinstance(x, mg.Tensor) else 2 * x)

    x = mg.tensor(np.array([0.5, -1.5]), requires_grad=True)
    assert mg.autograd.gradcheck(WrongSquare.apply, [x])
    with pytest.raises(mg.GradcheckError, match="wrong"):
        mg.autograd.gradgradcheck(WrongSquare.apply, [x])
    assert mg.autograd.gradgradcheck(WrongSquare.apply, [x], raise_exception=False) is False
    assert mg.autograd.gradgradcheck(lambda a: a * a, [x])
    assert mg.gradgradcheck is mg.autograd.gradgradcheck


# ---------------------------------------------------------------------------------------------
# what cannot be differentiated twice says so, naming the op


def test_an_op_whose_backward_works_on_arrays_is_named_when_a_second_derivative_reaches_it():
    class Cube(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 3 * grad * x**2

    x = mg.tensor([1.0, 2.0], requires_grad=True)
    (g,) = mg.autograd.grad(Cube.apply(x).sum(), x)  # first order: as always
    np.testing.assert_allclose(g.numpy(), [3.0, 12.0])
    with pytest.raises(RuntimeError, match="Cube: its backward works on arrays only"):
        mg.autograd.grad(Cube.apply(x).sum(), x, create_graph=True)


def test_a_twice_differentiable_op_that_saved_an_intermediate_is_named():
    class Softsign(Function):
        twice_differentiable = True

        @staticmethod
        def forward(ctx, x):
            denominator = 1 + abs(x)
            ctx.save_for_backward(denominator)  # a function of x, neither input nor output
            return x / denominator

        @staticmethod
        def backward(ctx, grad):
            (denominator,) = ctx.saved_tensors
            return grad / (denominator * denominator)

    x = mg.tensor([1.0, -2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Softsign: its backward reads a saved float array "
                                           r"\(saved array 0, shape \(2,\)\)"):
        mg.autograd.grad(Softsign.apply(x).sum(), x, create_graph=True)


def test_a_backward_that_leaves_the_graph_is_named():
    class Escape(Function):
        twice_differentiable = True

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 2 * grad.numpy() * x.numpy()  # arrays: the graph is lost

    x = mg.tensor([1.0, -2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="Escape.backward returned a ndarray in a recorded "
                                           "backward pass"):
        mg.autograd.grad(Escape.apply(x).sum(), x, create_graph=True)


def test_a_gradient_that_does_not_depend_on_the_input_cannot_be_differentiated_again():
    x = mg.tensor([1.0, -2.0], requires_grad=True)
    (g,) = mg.autograd.grad(F.relu(x).sum(), x, create_graph=True)
    assert not g.requires_grad  # relu's gradient for an upstream of ones: a constant
    with pytest.raises(RuntimeError, match="does not require grad"):
        mg.autograd.grad(g.sum(), x)


# ---------------------------------------------------------------------------------------------
# memory


def test_grad_with_create_graph_makes_no_cycle_and_backward_makes_one_that_gc_frees():
    gc.disable()
    try:
        x = mg.tensor(np.ones(1000), requires_grad=True)
        (g,) = mg.autograd.grad((x * x).exp().sum(), x, create_graph=True)
        node = weakref.ref(g.grad_fn)
        del g
        assert node() is None  # autograd.grad: freed as soon as it is dropped
        x = mg.tensor(np.ones(1000), requires_grad=True)
        (x * x).exp().sum().backward(create_graph=True)
        leaf, node = weakref.ref(x), weakref.ref(x.grad.grad_fn)
        del x  # x.grad's graph reads x: a cycle, as in torch
        assert leaf() is not None
        gc.collect()
        assert leaf() is None and node() is None  # Python's collector finds it
    finally:
        gc.enable()


# ---------------------------------------------------------------------------------------------
# the functional API on small networks, against torch.autograd.functional


def _close(ours, theirs, rtol=1e-10):
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _close(a, b, rtol)
        return
    assert tuple(ours.shape) == tuple(theirs.shape)
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=rtol,
                               atol=1e-12)


def _mlp(lib, x, w1, w2):
    return (lib.tanh(lib.matmul(x, w1)).sigmoid() @ w2).sum()


def _cnn(lib, x, w, v):
    functional = F if lib is mg else lib.nn.functional
    h = functional.max_pool2d(functional.relu(functional.conv2d(x, w, padding=1)), 2)
    return functional.log_softmax(h.reshape(x.shape[0], -1) @ v, 1).sum()


@requires_torch
@settings(max_examples=4)
@given(rng=rngs(), network=st.sampled_from(["mlp", "cnn"]),
       create_graph=st.booleans())
def test_hessian_hvp_vhp_and_jvp_match_torch_on_small_networks(rng, network, create_graph):
    t = torch()
    if network == "mlp":
        arrays, fn = [rng.standard_normal((3, 4)), rng.standard_normal((4, 3)),
                      rng.standard_normal((3, 2))], _mlp
    else:
        arrays, fn = [rng.standard_normal((2, 1, 4, 4)), rng.standard_normal((2, 1, 3, 3)),
                      rng.standard_normal((8, 3))], _cnn
    ours = tuple(mg.tensor(a, requires_grad=create_graph) for a in arrays)
    theirs = tuple(t.tensor(a, requires_grad=create_graph) for a in arrays)
    vs = [rng.standard_normal(a.shape) for a in arrays]
    Fm, Ft = mg.autograd.functional, t.autograd.functional

    def f(lib):
        return lambda *xs: fn(lib, *xs)

    kw = dict(create_graph=create_graph)
    _close(Fm.hessian(f(mg), ours, **kw), Ft.hessian(f(t), theirs, **kw))
    for name in ("hvp", "vhp"):
        out, product = getattr(Fm, name)(f(mg), ours, tuple(map(mg.tensor, vs)), **kw)
        t_out, t_product = getattr(Ft, name)(f(t), theirs, tuple(map(t.tensor, vs)), **kw)
        _close(out, t_out)
        _close(product, t_product)
        if create_graph:  # the product is in the inputs' graph: differentiate it once more
            assert all(p.requires_grad for p in product)
            third = mg.autograd.grad(sum(p.sum() for p in product), ours)
            t_third = t.autograd.grad(sum(p.sum() for p in t_product), theirs)
            _close(tuple(third), tuple(t_third), rtol=1e-8)
    out, product = Fm.jvp(lambda *xs: fn(mg, *xs) * xs[0].sum(), ours,
                          tuple(map(mg.tensor, vs)), **kw)
    t_out, t_product = Ft.jvp(lambda *xs: fn(t, *xs) * xs[0].sum(), theirs,
                              tuple(map(t.tensor, vs)), **kw)
    _close(out, t_out)
    _close(product, t_product)
    assert product.requires_grad == create_graph


@requires_torch
def test_the_functional_api_refuses_what_torch_refuses():
    F_ = mg.autograd.functional
    x = mg.tensor(np.ones(3))
    with pytest.raises(RuntimeError, match="should return a single Tensor with a single element"):
        F_.hessian(lambda a: a * 2, x)
    with pytest.raises(RuntimeError, match="v can only be None"):
        F_.hvp(lambda a: a.sum(), x)
    with pytest.raises(RuntimeError, match="independent of input 1"):
        F_.vhp(lambda a, b: (a * a).sum(), (x, x), (x, x), strict=True)
    with pytest.raises(RuntimeError, match="v\\[0\\] has shape"):
        F_.jvp(lambda a: a * 2, x, mg.tensor(np.ones(2)))


@requires_torch
@pytest.mark.parametrize("name", ["softplus", "sigmoid", "tanh", "gelu", "silu",
                                  "bce_with_logits", "norm", "log_softmax"])
def test_second_derivatives_at_exactly_zero_match_torch(name):
    """Where a stable formula has a kink (|x|, max(x, 0)) the function has none: a recorded
    backward must not differentiate the kink (sign(0) = 0 would halve or lose a slope).
    (ELU and PReLU have a true kink at 0, where either side's value is a right answer.)"""
    t = torch()
    x = np.array([[0.0, 0.0, 1.5], [-0.5, 0.0, 0.0]])
    y = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.5]])
    cases = {
        "softplus": (F.softplus, _tf().softplus),
        "sigmoid": (mg.sigmoid, t.sigmoid),
        "tanh": (mg.tanh, t.tanh),
        "gelu": (F.gelu, _tf().gelu),
        "silu": (F.silu, _tf().silu),
        "bce_with_logits": (lambda a: F.binary_cross_entropy_with_logits(a, mg.tensor(
            y.astype(a.dtype))), lambda a: _tf().binary_cross_entropy_with_logits(
            a, t.tensor(y).to(a.dtype))),
        "norm": (lambda a: a.norm(dim=1), lambda a: a.norm(dim=1)),
        "log_softmax": (lambda a: F.log_softmax(a, 1), lambda a: _tf().log_softmax(a, 1)),
    }
    ours, theirs = cases[name]
    assert_double_backward_matches_torch(ours, [x], theirs, dtype=np.float64)


@requires_torch
@pytest.mark.skipif("cuda" not in DEVICES, reason="no cuda device (nor the CuPy stand-in)")
@pytest.mark.parametrize("op", ["conv2d", "conv2d_3x3_batch", "max_pool2d", "max_pool2d_tiled",
                                "batch_norm", "activations", "losses"])
@settings(max_examples=4)
@given(data=st.data())
def test_the_gpu_fast_paths_have_the_references_second_derivatives(op, data):
    """On "cuda" (a GPU, or the CuPy stand-in) the fast paths (im2col and Winograd
    convolutions, max pooling's kernels, batch norm's, ReLU's) are recorded through their
    references' ways: float64, against torch's double backward on the CPU."""
    _check(data.draw(LAYER_CASES[op]), "cuda", dtypes=(np.float64,))


@requires_torch
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_in_place_ops_casts_and_copies_have_second_derivatives_as_torch(seed):
    """An in-place op on a tensor in the graph records an out-of-place op on a copy of the
    old values (ops/inplace.py): the second derivative must still see which saved arrays
    are whose output."""
    def fn(lib):
        def run(x):
            y = x * 1.5
            y.mul_(x)
            z = y.exp() * y
            w = x.tanh() * 1.0
            w.add_(x * x)
            w.mul_(2.0)
            w.sub_(y.sin())
            c = x * 2.0
            c.copy_(x.sin())
            return (z * w).sum(1) + (c * x.double().float().double()).sum(1)
        return run

    rng = np.random.default_rng(seed)
    assert_double_backward_matches_torch(fn(mg), [rng.standard_normal((3, 4))], fn(torch()),
                                         dtype=np.float64, seed=seed)


@requires_torch
def test_a_detached_copy_and_a_function_reading_its_own_input_are_told_apart_as_torch():
    t = torch()
    x0 = np.array([1.0, 2.0])
    x, tx = mg.tensor(x0, requires_grad=True), t.tensor(x0, requires_grad=True)
    second = []
    for a, lib in ((x, mg), (tx, t)):  # x.detach() shares x's memory: a constant all the same
        (g,) = lib.autograd.grad((a * a.detach()).sum() + (a**3).sum(), a, create_graph=True)
        second.append(lib.autograd.grad(g.sum(), a)[0].numpy())
    np.testing.assert_allclose(*second)  # [6, 12]
    Fm, Ft = mg.autograd.functional, t.autograd.functional
    for create_graph in (False, True):
        _close(Fm.hessian(lambda z: (z * x).sum(), x, create_graph=create_graph),
               Ft.hessian(lambda z: (z * tx).sum(), tx, create_graph=create_graph))
        _close(Fm.hvp(lambda z: (z * x * z).sum(), x, mg.ones(2, dtype=x.dtype),
                      create_graph=create_graph)[1],
               Ft.hvp(lambda z: (z * tx * z).sum(), tx, t.ones(2, dtype=tx.dtype),
                      create_graph=create_graph)[1])


def test_an_input_a_formula_recomputes_from_that_changed_in_place_is_refused():
    for dtype, make in ((np.float64, lambda y: F.cross_entropy(y, mg.tensor([0]))),
                        (np.float32, lambda y: F.log_softmax(y, 1).sum())):  # (a fast path)
        x = mg.tensor(np.array([[0.3, -1.0, 2.0]], dtype), requires_grad=True)
        y = x * 1.0
        loss = make(y)
        y.mul_(3.0)
        with pytest.raises(RuntimeError, match=r"modified by an inplace operation: \w+Backward's "
                                               r"input 0 \(shape \(1, 3\)"):
            mg.autograd.grad(loss, x, create_graph=True)


def test_batch_norm_in_eval_mode_keeps_its_running_statistics_of_that_call():
    bn = mg.nn.BatchNorm2d(2).double()
    x = mg.tensor(np.random.default_rng(0).standard_normal((2, 2, 3, 3)), requires_grad=True)
    bn.eval()
    y = (bn(x) ** 2).sum()
    (expected,) = mg.autograd.grad((bn(x) ** 2).sum(), x)
    bn.train()
    bn(x * 5.0 + 3.0)  # moves the running statistics, in place
    (g,) = mg.autograd.grad(y, x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), expected.numpy(), rtol=1e-12)


@requires_torch
def test_backward_with_create_graph_hands_each_leaf_a_gradient_of_its_own_as_torch():
    t = torch()
    w, v = mg.tensor([1.0, 2.0], requires_grad=True), mg.tensor([3.0, 4.0], requires_grad=True)
    tw, tv = t.tensor([1.0, 2.0], requires_grad=True), t.tensor([3.0, 4.0], requires_grad=True)
    for a, b, lib in ((w, v, mg), (tw, tv, t)):
        (a + b).sum().backward(create_graph=True)  # both get the same ones, broadcast
        lib.nn.utils.clip_grad_norm_([a, b], 1.0)  # in place, each once
    assert w.grad is not v.grad
    np.testing.assert_allclose(w.grad.detach().numpy(), tw.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(v.grad.detach().numpy(), tv.grad.numpy(), rtol=1e-6)
    y, u = w * 2.0, mg.tensor([1.0, 1.0])
    y.retain_grad()
    y.backward(u, create_graph=True)
    y.grad.mul_(5.0)
    np.testing.assert_array_equal(u.numpy(), [1.0, 1.0])  # the caller's seed is untouched


@requires_torch
def test_degenerate_std_and_norm_give_zero_not_nan_second_derivatives():
    """std of a constant row, the norm of a zero row: 0 where the first derivative is 0
    by convention (torch's first derivative too), not the nan of a 0 / 0 inside a where."""
    t = torch()
    x0 = np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 4.0]])
    x, tx = mg.tensor(x0, requires_grad=True), t.tensor(x0, requires_grad=True)
    second = []
    for a, lib in ((x, mg), (tx, t)):
        (g,) = lib.autograd.grad(a.std(1).sum(), a, create_graph=True)
        second.append(lib.autograd.grad((g * g).sum(), a)[0].numpy())
    np.testing.assert_allclose(*second, atol=1e-12)
    z = mg.tensor(np.zeros((1, 3)), requires_grad=True)
    (g,) = mg.autograd.grad(z.norm(dim=1).sum() + z.norm(p=3, dim=1).sum(), z,
                            create_graph=True)
    (h,) = mg.autograd.grad((g * g).sum() + g.sum(), z)
    assert np.isfinite(h.numpy()).all()
