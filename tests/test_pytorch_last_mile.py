"""Issue 22, PyTorch's last mile: each new op, layer, hook, optimizer and schedule against
torch (values and gradients; central differences and second derivatives through check_op on
hypothesis shapes), the silent differences that were fixed, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DEVICES, requires_torch, rngs, sample, shapes, torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.nn.functional as F
from minigrad.testing import check_op

FEW = settings(max_examples=max(3, settings.default.max_examples // 3))


def tF():  # noqa: N802
    return torch().nn.functional


# ---------------------------------------------------------------------------------------------
# ops, on hypothesis shapes: central differences, torch (float32, float64), second derivatives


@st.composite
def op_case(draw):
    rng = draw(rngs())
    kind = draw(st.sampled_from(["roll", "tril", "triu", "diag1", "diag2", "unfold", "scatter",
                                 "scatter_add", "index_add", "movedim", "max2", "setitem",
                                 "setitem_value", "setitem_mask"]))
    shape = draw(shapes(min_dims=2, max_dims=3, min_side=2))
    x = sample(rng, shape)
    k = draw(st.integers(-2, 2))
    if kind == "roll":
        return (lambda a: a.roll((k, 1), (0, -1))), [x], None
    if kind in ("tril", "triu"):
        return (lambda a: getattr(a, kind)(k)), [x], None
    if kind == "diag1":
        return (lambda a: a.diag(k)), [x.reshape(-1)], None
    if kind == "diag2":
        return (lambda a: a.reshape(a.shape[0], -1).diag(k)), [x], None
    if kind == "unfold":
        size = draw(st.integers(1, shape[-1]))
        return (lambda a: a.unfold(-1, size, draw_step)), [x], None if (draw_step := draw(
            st.integers(1, 2))) else None
    if kind in ("scatter", "scatter_add"):
        index = rng.integers(0, shape[0], (1,) + shape[1:])
        src = sample(rng, (1,) + shape[1:])
        return (lambda a, i, s: getattr(a, kind)(0, i, s)), [x, index, src], [True, False, True]
    if kind == "index_add":
        index = rng.integers(0, shape[1], 3)
        src = sample(rng, (shape[0], 3) + shape[2:])
        return (lambda a, i, s: a.index_add(1, i, s, alpha=1.5)), [x, index, src], \
            [True, False, True]
    if kind == "movedim":
        return (lambda a: a.movedim(0, -1)), [x], None
    if kind == "max2":
        return (lambda a, b: a.max(b) - b.min(a)), [x, sample(rng, shape)], None

    def write(a, *value):
        y = a * 2
        if kind == "setitem":
            y[0] = 0.5
        elif kind == "setitem_value":
            y[:, 1] = value[0]
        else:
            y[y > 0] = value[0] * 3
        return y * y

    values = [] if kind == "setitem" else [sample(rng, (shape[0],) + shape[2:])] \
        if kind == "setitem_value" else [sample(rng, ())]
    return write, [x, *values], None


@requires_torch
@FEW
@given(case=op_case())
def test_new_ops_match_torch_and_central_differences_to_second_order(case):
    fn, inputs, wants = case
    check_op(fn, inputs, devices=DEVICES, requires_grad=wants, double_backward=True)


@st.composite
def layer_case(draw):
    rng = draw(rngs())
    kind = draw(st.sampled_from(["conv1d", "max_pool1d", "avg_pool1d", "instance_norm",
                                 "unpool"]))
    n, c, length = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(4, 7))
    x = sample(rng, (n, c, length))
    if kind == "conv1d":
        stride, pad, dil = draw(st.integers(1, 2)), draw(st.integers(0, 1)), draw(
            st.integers(1, 2))
        w = sample(rng, (2, c, 2))
        return (lambda a, b: F.conv1d(a, b, None, stride, pad, dil)), [x, w], \
            (lambda a, b: tF().conv1d(a, b, None, stride, pad, dil))
    if kind == "max_pool1d":
        k, s = draw(st.integers(2, 3)), draw(st.integers(1, 2))
        x = x + np.arange(length) * 0.01 * rng.permutation(length)  # (no ties)
        return (lambda a: F.max_pool1d(a, k, s, 1)), [x], (lambda a: tF().max_pool1d(a, k, s, 1))
    if kind == "avg_pool1d":
        k = draw(st.integers(1, 3))
        return (lambda a: F.avg_pool1d(a, k, 1, k // 2)), [x], \
            (lambda a: tF().avg_pool1d(a, k, 1, k // 2))
    if kind == "instance_norm":
        w, b = sample(rng, (c,)), sample(rng, (c,))
        return (lambda a, g, h: F.instance_norm(a, weight=g, bias=h)), [x, w, b], \
            (lambda a, g, h: tF().instance_norm(a, weight=g, bias=h))
    img = sample(rng, (n, c, 4, 4)) + rng.permutation(16).reshape(4, 4)

    def unpool(L, a):
        values, indices = L.max_pool2d(a, 2, return_indices=True)
        return L.max_unpool2d(values * values, indices, 2)

    return (lambda a: unpool(F, a)), [img], (lambda a: unpool(tF(), a))


@requires_torch
@FEW
@given(case=layer_case())
def test_1d_layers_instance_norm_and_unpooling_match_torch_to_second_order(case):
    fn, inputs, torch_fn = case
    check_op(fn, inputs, torch_fn, devices=DEVICES, double_backward=True)


@requires_torch
def test_max_pool_indices_are_torchs_with_padding_dilation_and_ceil_mode():
    t = torch()
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 8))
    for kernel, stride, padding, dilation, ceil in [(2, 2, 0, 1, False), (3, 2, 1, 1, True),
                                                   (3, 1, 1, 2, False), ((2, 3), (1, 2), 1, 1,
                                                                         True)]:
        _, ours = F.max_pool2d(mg.tensor(x), kernel, stride, padding, dilation, ceil, True)
        _, theirs = tF().max_pool2d(t.tensor(x), kernel, stride, padding, dilation, ceil, True)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    layer = mg.nn.MaxUnpool2d(2)
    values, indices = mg.nn.MaxPool2d(2, return_indices=True)(mg.tensor(x[:, :, :6, :6]))
    assert layer(values, indices, output_size=(2, 3, 7, 7)).shape == (2, 3, 7, 7)
    with pytest.raises(ValueError, match="max_unpool2d: output_size"):
        layer(values, indices, output_size=(12, 12))


@requires_torch
@pytest.mark.parametrize("layout", ["nchw", "batch_innermost"])
def test_max_pooling_passes_the_gradient_to_a_nan_as_torch(layout):
    t = torch()
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    x[0, 0, 1, 1] = x[1, 2, 0, 3] = np.nan
    if layout == "batch_innermost":  # (the compiled backward's layout, after a CPU conv)
        x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    ours = mg.from_numpy(x).requires_grad_()
    F.max_pool2d(ours, 2).sum().backward()
    theirs = t.tensor(np.ascontiguousarray(x), requires_grad=True)
    tF().max_pool2d(theirs, 2).sum().backward()
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


# ---------------------------------------------------------------------------------------------
# silent differences, tensor methods, devices


@requires_torch
def test_a_numpy_array_takes_part_in_the_dtype_as_torch():
    t = torch()
    for dtype, value in [(np.float32, np.array(2.0)), (np.float32, np.array([2.0])),
                         (np.float32, np.array(2.0, dtype=np.float16)),
                         (np.float32, np.float64(2.0)), (np.int32, np.array(2)),
                         (np.float32, np.array(True))]:
        ours = (mg.ones(3, dtype=dtype) * value).dtype
        theirs = (t.ones(3, dtype=getattr(t, np.dtype(dtype).name)) * value).dtype
        assert str(ours) == str(theirs).removeprefix("torch."), (dtype, value)
    # an array with dims of every dtype beside a tensor of every dtype (torch hands the op to
    # NumPy: float32 * an int64 array is float64, int64 * a float32 array too)
    for dtype in (np.float16, np.float32, np.float64, np.int32, np.int64):
        for other in (np.int8, np.uint8, np.int32, np.int64, np.float16, np.float32,
                      np.float64, np.bool_):
            for shape in ((3,), ()):
                value = np.ones(shape, dtype=other)
                ours = mg.ones(3, dtype=dtype) + value
                theirs = t.ones(3, dtype=getattr(t, np.dtype(dtype).name)) + value
                assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), (
                    dtype, other, shape)
    x = mg.ones(3, requires_grad=True)  # and it stays differentiable (torch refuses this)
    (x * np.arange(3)).sum().backward()
    assert x.grad.dtype == mg.float32 and x.grad.tolist() == [0.0, 1.0, 2.0]


@requires_torch
def test_size_tensor_methods_and_to_as_torch():
    t = torch()
    x = mg.randn(2, 10)
    assert repr(x.shape) == repr(t.randn(2, 10).shape).replace("torch", "minigrad")
    for shown in (str, lambda s: f"{s}", lambda s: str(s[1:])):  # print(t.shape) as torch
        assert shown(x.shape) == shown(t.randn(2, 10).shape).replace("torch", "minigrad")
    assert x.shape == (2, 10) and x.size()[1:] == (10,) and x.shape.numel() == 20
    assert isinstance(x.shape[1:], mg.Size) and x.size(1) == 10
    assert x.reshape_as(mg.zeros(5, 4)).shape == (5, 4)
    assert x.is_contiguous() and not x.T.is_contiguous()
    assert x.new_tensor([1, 2]).dtype == mg.float32 and x.new_ones(3).shape == (3,)
    assert x.new_full((2,), 7.0).tolist() == [7.0, 7.0] and x.new_empty(1, 2).shape == (1, 2)
    assert mg.rand_like(x).shape == x.shape and x.to("cpu", non_blocking=True) is x
    assert x.to("cpu", copy=True) is not x
    y = mg.randn(3, requires_grad=True) * 2
    assert y.detach_() is y and y.grad_fn is None and not y.requires_grad
    values = np.array([3.0, 1.0, 2.0, 1.0, 0.5])
    np.testing.assert_array_equal(mg.tensor(values).argsort().numpy(),
                                  t.tensor(values).argsort(stable=True).numpy())
    mg.manual_seed(0)
    draws = mg.zeros(10000).bernoulli_(0.3).numpy()
    assert set(np.unique(draws)) == {0.0, 1.0} and abs(draws.mean() - 0.3) < 0.02


@requires_torch
def test_in_place_scatter_and_index_add_on_a_tensor_in_the_graph_as_torch():
    def run(L):
        x = L.tensor(np.arange(12.0).reshape(3, 4) / 10, requires_grad=True, dtype=L.float64)
        s = L.tensor(np.ones((1, 4)) * 0.5, requires_grad=True, dtype=L.float64)
        y = x * 1
        y.scatter_(0, L.tensor([[2, 0, 1, 2]]), s)
        y.index_add_(1, L.tensor([0, 0]), x[:, :2] * 3)
        y.scatter_add_(1, L.tensor([[1], [1], [0]]), x[:, :1])
        (y * y).sum().backward()
        return y.detach().numpy(), x.grad.numpy(), s.grad.numpy()

    for a, b in zip(run(mg), run(torch())):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_the_tutorials_device_lines_and_the_default_device():
    device = (mg.accelerator.current_accelerator().type if mg.accelerator.is_available()
              else "cpu")
    assert device == ("cuda" if mg.cuda.is_available() else "cpu")
    assert mg.backends.mps.is_available() is False and mg.backends.mps.is_built() is False
    assert mg.accelerator.device_count() == mg.cuda.device_count()
    assert mg.get_default_device() == "cpu"
    if not mg.cuda.is_available():
        return
    mg.set_default_device("cuda")
    try:
        assert mg.get_default_device() == "cuda"
        assert mg.zeros(2).device == "cuda" and mg.tensor([1.0]).device == "cuda"
        assert mg.nn.Linear(2, 3).weight.device == "cuda"
        assert mg.zeros(2, device="cpu").device == "cpu"
    finally:
        mg.set_default_device(None)
    assert mg.zeros(2).device == "cpu"


def test_errors_name_the_op_and_the_shapes():
    x = mg.randn(3, 4)
    with pytest.raises(RuntimeError, match=r"unfold: size 5 .* dim 1 of size 4"):
        x.unfold(1, 5, 1)
    with pytest.raises(IndexError, match=r"scatter: index 3 is out of bounds for dim 0 of "
                                         r"size 3"):
        x.scatter(0, mg.tensor([[3, 0, 0, 0]]), 1.0)
    with pytest.raises(ValueError, match=r"index_add: source of shape minigrad.Size\(\[2, 4\]\) "
                                         r"does not fit"):
        x.index_add(0, mg.tensor([0]), mg.ones(2, 4))
    with pytest.raises(ValueError, match=r"__setitem__: a value of shape minigrad.Size\(\[3\]\) "
                                         r"cannot be "
                                         r"assigned"):
        y = mg.randn(3, 4, requires_grad=True) * 1
        y[0] = mg.ones(3)
    with pytest.raises(RuntimeError, match="register_hook: cannot register a hook on a tensor "
                                           "that doesn't require gradient"):
        x.register_hook(lambda g: g)
    with pytest.raises(ValueError, match="eye_: only 2-D"):
        mg.nn.init.eye_(mg.empty(2, 2, 2))
    with pytest.raises(ValueError, match="unknown device 'mps'"):
        mg.set_default_device("mps")
    with pytest.raises(RuntimeError, match="LBFGS.step needs a closure"):
        mg.optim.LBFGS([mg.randn(2, requires_grad=True)]).step()


# ---------------------------------------------------------------------------------------------
# layers, init, module walking


@requires_torch
def test_layers_and_init_as_torch():
    t = torch()
    for make in (lambda L: L.nn.Conv1d(3, 4, 3, padding="same", groups=1),
                 lambda L: L.nn.Conv1d(4, 2, (2,), stride=2, dilation=1, bias=False)):
        ours, theirs = make(mg), make(t)
        assert ours.weight.shape == tuple(theirs.weight.shape) and repr(ours) == repr(theirs)
        ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
        x = np.random.default_rng(1).standard_normal((2, ours.in_channels, 8)).astype(np.float32)
        np.testing.assert_allclose(ours(mg.tensor(x)).numpy(), theirs(t.tensor(x)).detach(),
                                   rtol=1e-5, atol=1e-6)
    assert not isinstance(mg.nn.Conv1d(1, 1, 1), mg.nn.Conv2d)
    x = np.random.default_rng(2).standard_normal((4, 3, 5, 5))
    ours, theirs = mg.nn.InstanceNorm2d(3, affine=True, track_running_stats=True).double(), \
        t.nn.InstanceNorm2d(3, affine=True, track_running_stats=True).double()
    for _ in range(2):
        np.testing.assert_allclose(ours(mg.tensor(x)).numpy(), theirs(t.tensor(x)).detach(),
                                   atol=1e-10)
    np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-10)
    ours.eval(), theirs.eval()
    np.testing.assert_allclose(ours(mg.tensor(x)).numpy(), theirs(t.tensor(x)).detach(),
                               atol=1e-10)
    assert repr(mg.nn.InstanceNorm2d(3)).startswith("InstanceNorm2d(3, eps=1e-05")
    for name in ("MaxPool1d", "AvgPool1d"):
        a = getattr(mg.nn, name)(3, 2, 1)(mg.tensor(x[0]))
        b = getattr(t.nn, name)(3, 2, 1)(t.tensor(x[0]))
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)
    assert mg.nn.Dropout(0.2, inplace=True).inplace and mg.nn.LeakyReLU(0.1, inplace=True)(
        mg.tensor([-1.0])).item() == pytest.approx(-0.1)
    for init, shape, extra in [("eye_", (3, 5), ()), ("dirac_", (6, 2, 3, 3), (2,)),
                               ("dirac_", (2, 4, 3), ())]:
        ours_w = getattr(mg.nn.init, init)(mg.empty(*shape), *extra)
        theirs_w = getattr(t.nn.init, init)(t.empty(*shape), *extra)
        np.testing.assert_array_equal(ours_w.numpy(), theirs_w.numpy())
    model = mg.nn.Sequential(mg.nn.Linear(2, 2), mg.nn.BatchNorm1d(2))
    model.register_parameter("scale", mg.nn.Parameter(mg.ones(1)))
    assert [n for n, _ in model.named_parameters(recurse=False)] == ["scale"]
    assert len(list(model.parameters(recurse=False))) == 1 and len(list(model.parameters())) == 5
    assert list(model.buffers(recurse=False)) == []


# ---------------------------------------------------------------------------------------------
# hooks


@requires_torch
def test_hooks_as_torch():
    def run(L):
        lin = L.nn.Linear(3, 2).double()
        with L.no_grad():
            lin.weight.copy_(L.tensor(np.arange(6.0).reshape(2, 3) / 10, dtype=L.float64))
            lin.bias.copy_(L.tensor([0.1, -0.2], dtype=L.float64))
        log, features = [], []
        pre = lin.register_forward_pre_hook(lambda m, a: (a[0] * 2,))
        post = lin.register_forward_hook(lambda m, a, o: o + 1)
        lin.register_forward_hook(lambda m, a, o: features.append(o.detach().numpy()),
                                  prepend=True)

        def backward_hook(module, grad_input, grad_output):
            log.append([None if g is None else g.numpy() for g in (*grad_input, *grad_output)])
            return None if grad_input[0] is None else (grad_input[0] * 3,)

        back = lin.register_full_backward_hook(backward_hook)
        x = L.tensor(np.arange(6.0).reshape(2, 3), dtype=L.float64, requires_grad=True)
        (lin(x) * L.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=L.float64)).sum().backward()
        lin(L.ones(1, 3, dtype=L.float64)).sum().backward()  # no input wants a gradient
        unused = lin(x)  # an output no gradient reaches: the hook is not called (as torch)
        (x * 2).sum().backward()
        del unused
        log.append([len(log)])
        pre.remove(), post.remove(), back.remove()
        plain = lin(x).detach().numpy()
        z = x * 2
        z.register_hook(lambda g: g * 10)
        handle = x.register_hook(lambda g: g + 1)
        x.grad = None
        z.sum().backward()
        handle.remove()
        return [*features, *[np.asarray(a) if isinstance(a, int) else a
                             for entry in log for a in entry], x.grad.numpy(), plain]

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (torch warns of the hook without input gradients)
        theirs = run(torch())
    ours = run(mg)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# optimizers and schedules, step for step


OPTIMIZERS = {
    "lbfgs": lambda L, p: L.optim.LBFGS(p, lr=1, max_iter=5),
    "lbfgs_strong_wolfe": lambda L, p: L.optim.LBFGS(p, max_iter=7, history_size=4,
                                                     line_search_fn="strong_wolfe"),
    "nadam": lambda L, p: L.optim.NAdam(p, lr=0.05, weight_decay=0.01),
    "nadam_decoupled": lambda L, p: L.optim.NAdam(p, lr=0.05, weight_decay=0.01,
                                                  decoupled_weight_decay=True),
    "radam": lambda L, p: L.optim.RAdam(p, lr=0.002, weight_decay=0.01),
    "radam_decoupled": lambda L, p: L.optim.RAdam(p, lr=0.002, weight_decay=0.01,
                                                  decoupled_weight_decay=True),
    "adamax": lambda L, p: L.optim.Adamax(p, lr=0.05, weight_decay=0.01),
    "adamax_maximize": lambda L, p: L.optim.Adamax(p, lr=0.05, maximize=True),
    "sgd_maximize": lambda L, p: L.optim.SGD(p, lr=1e-4, momentum=0.9, maximize=True),
    "adam": lambda L, p: L.optim.Adam(p, lr=0.05),
    "rmsprop": lambda L, p: L.optim.RMSprop(p, lr=0.01),
}


def _rosenbrock_steps(L, make, steps=8):
    w = L.tensor([[-1.2, 1.0, 0.5], [0.3, -0.7, 2.0]], dtype=L.float64, requires_grad=True)
    optimizer = make(L, [w])

    def closure():
        optimizer.zero_grad()
        a, b = w[0], w[1]
        loss = ((1 - a) ** 2).sum() + 100 * ((b - a * a) ** 2).sum()
        loss.backward()
        return loss

    losses = [float(optimizer.step(closure).detach()) for _ in range(steps)]
    return np.array(losses), w.detach().numpy()


@requires_torch
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizers_with_a_closure_step_for_step_as_torch(name):
    ours, theirs = (_rosenbrock_steps(L, OPTIMIZERS[name]) for L in (mg, torch()))
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)  # (rounding, over 8 steps)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-6, atol=1e-9)


SCHEDULES = {
    "ConstantLR": lambda S, o: S.ConstantLR(o, factor=0.5, total_iters=4),
    "LinearLR": lambda S, o: S.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=6),
    "PolynomialLR": lambda S, o: S.PolynomialLR(o, total_iters=8, power=2.0),
    "MultiplicativeLR": lambda S, o: S.MultiplicativeLR(o, lambda e: 0.9 if e % 2 else 0.95),
    "CyclicLR": lambda S, o: S.CyclicLR(o, 0.01, 0.1, step_size_up=3, step_size_down=2),
    "CyclicLR_triangular2": lambda S, o: S.CyclicLR(o, 0.01, 0.1, 2, mode="triangular2"),
    "CyclicLR_exp_range": lambda S, o: S.CyclicLR(o, 0.01, 0.1, 2, mode="exp_range",
                                                  gamma=0.9),
    "LinearLR_then_ExponentialLR": lambda S, o: [S.LinearLR(o, 0.5, total_iters=3),
                                                 S.ExponentialLR(o, 0.9)][0],
}


@requires_torch
@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedules_step_for_step_as_torch(name, optimizer):
    def run(L):
        w = L.tensor([1.0], requires_grad=True)
        opt = L.optim.SGD([w], lr=0.1, momentum=0.9) if optimizer == "SGD" else \
            L.optim.Adam([w], lr=0.1)
        schedule = SCHEDULES[name](L.optim.lr_scheduler, opt)
        trace = []
        for _ in range(14):
            opt.step()
            schedule.step()
            group = opt.param_groups[0]
            trace.append((group["lr"], group.get("momentum", group.get("betas", (0,))[0])))
        return np.array(trace)

    np.testing.assert_allclose(run(mg), run(torch()), rtol=1e-12)


@requires_torch
def test_a_torch_optimizers_state_dict_loads_and_training_goes_on_as_torch():
    t = torch()
    x = np.random.default_rng(3).standard_normal((8, 3))

    def steps(L, model, optimizer, count):
        for _ in range(count):
            optimizer.zero_grad()
            (model(L.tensor(x)) ** 2).mean().backward()
            optimizer.step()

    theirs = t.nn.Linear(3, 2).double()
    their_opt = t.optim.Adam(theirs.parameters(), lr=0.01)
    steps(t, theirs, their_opt, 3)
    ours = mg.nn.Linear(3, 2).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    our_opt = mg.optim.Adam(ours.parameters(), lr=0.01)
    our_opt.load_state_dict(their_opt.state_dict())
    assert our_opt.state[ours.weight]["step"] == 3
    steps(t, theirs, their_opt, 2)
    steps(mg, ours, our_opt, 2)
    np.testing.assert_allclose(ours.weight.numpy(), theirs.weight.detach().numpy(), rtol=1e-12)
