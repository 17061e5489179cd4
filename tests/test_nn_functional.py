"""Every function of nn.functional against torch.nn.functional (float32 and float64) and against
central differences (float64), on batch sizes, channels, sizes, strides, paddings, dilations,
groups, reductions and class weights that hypothesis draws, with random upstream gradients."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import DEVICES, Case, requires_torch, rngs, sample, shapes, torch
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.nn.functional as F
from minigrad.ops import fast
from minigrad.testing import assert_matches_torch, check_gradient


def tF():
    return torch().nn.functional


@st.composite
def conv2d_case(draw):
    rng = draw(rngs())
    groups = draw(st.sampled_from([1, 2]))
    c, oc = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    h, w = (draw(st.integers(max(1, r - 2 * p), r + 4)) for r, p in zip(reach, padding))
    x = sample(rng, (draw(st.integers(1, 2)), c, h, w))
    weight = sample(rng, (oc, c // groups, *kernel))
    inputs = [x, weight] + ([sample(rng, (oc,))] if draw(st.booleans()) else [])
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return Case(lambda *a: F.conv2d(*a, **settings), inputs,
                lambda *a: tF().conv2d(*a, **settings))


@st.composite
def pool_case(draw, name):
    """max_pool2d with dilation and ceil_mode, avg_pool2d with ceil_mode, count_include_pad
    and divisor_override, on sizes and paddings that hypothesis draws."""
    rng = draw(rngs())
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if name == "max_pool2d" \
        else (1, 1)
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    # at least one dilated window of real pixels: a window of padding alone is -inf (torch too)
    h, w = (draw(st.integers(r if d > 1 else max(1, r - 2 * p), 8))
            for r, p, d in zip(reach, padding, dilation))
    x = sample(rng, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w))
    options = dict(ceil_mode=draw(st.booleans()))
    if name == "max_pool2d":
        options["dilation"] = dilation
    else:
        options["count_include_pad"] = draw(st.booleans())
        options["divisor_override"] = draw(st.sampled_from([None, None, 3]))
    return Case(lambda x: getattr(F, name)(x, kernel, stride, padding, **options), [x],
                lambda x: getattr(tF(), name)(x, kernel, stride, padding, **options))


@st.composite
def adaptive_case(draw, name="adaptive_avg_pool2d"):
    rng = draw(rngs())
    size = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    x = sample(rng, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 8)),
                     draw(st.integers(1, 8))))
    return Case(lambda x: getattr(F, name)(x, size), [x],
                lambda x: getattr(tF(), name)(x, size))


@st.composite
def batch_norm_case(draw, training):
    rng = draw(rngs())
    c = draw(st.integers(1, 3))
    shape = draw(st.sampled_from([(draw(st.integers(2, 5)), c),
                                  (draw(st.integers(1, 3)), c, draw(st.integers(1, 3)),
                                   draw(st.integers(2, 3)))]))
    x, weight, bias = sample(rng, shape), sample(rng, (c,)), sample(rng, (c,))
    if training:
        return Case(lambda x, w, b: F.batch_norm(x, None, None, w, b, True), [x, weight, bias],
                    lambda x, w, b: tF().batch_norm(x, None, None, w, b, True))
    mean, var = sample(rng, (c,)), sample(rng, (c,), "positive")
    return Case(lambda x, m, v, w, b: F.batch_norm(x, m, v, w, b, False),
                [x, mean, var, weight, bias],
                lambda x, m, v, w, b: tF().batch_norm(x, m, v, w, b, False),
                requires_grad=[True, False, False, True, True])


@st.composite
def linear_case(draw):
    rng = draw(rngs())
    batch = draw(shapes(min_dims=0, max_dims=2))
    n_in, n_out = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    inputs = [sample(rng, batch + (n_in,)), sample(rng, (n_out, n_in))]
    if draw(st.booleans()):
        inputs.append(sample(rng, (n_out,)))
    return Case(lambda *a: F.linear(*a), inputs, lambda *a: tF().linear(*a))


@st.composite
def leaky_relu_case(draw):
    rng = draw(rngs())
    slope = draw(st.floats(0.0, 0.5))
    return Case(lambda x: F.leaky_relu(x, slope), [sample(rng, draw(shapes()), "nonzero")],
                lambda x: tF().leaky_relu(x, slope))


@st.composite
def class_loss_case(draw, name):
    """cross_entropy or nll_loss: logits (N, C) or (N, C, d), targets with some ignored,
    maybe class weights, every reduction, and (cross_entropy) label smoothing."""
    rng = draw(rngs())
    n, classes = draw(st.integers(1, 4)), draw(st.integers(2, 4))
    extra = draw(st.sampled_from([(), (draw(st.integers(1, 3)),)]))
    logits = sample(rng, (n, classes) + extra, "wide" if draw(st.booleans()) else "real")
    target = rng.integers(0, classes, (n,) + extra)
    if draw(st.booleans()):
        target[rng.random(target.shape) < 0.3] = -100
        target.flat[0] = 0  # at least one sample counts
    kwargs = dict(reduction=draw(st.sampled_from(["mean", "sum", "none"])))
    if name == "cross_entropy":
        kwargs["label_smoothing"] = draw(st.sampled_from([0.0, 0.1, 0.5]))
    inputs, wants = [logits, target], [True, False]
    if draw(st.booleans()):
        inputs.append(sample(rng, (classes,), "positive"))
        wants.append(False)
    prepare = (lambda x: x) if name == "cross_entropy" else (lambda x: x.log_softmax(1))
    return Case(lambda x, *a: getattr(F, name)(prepare(x), *a, **kwargs), inputs,
                lambda x, *a: getattr(tF(), name)(prepare(x), *a, **kwargs), wants)


@st.composite
def binary_loss_case(draw, with_logits):
    rng = draw(rngs())
    shape = draw(shapes())
    target = (rng.random(shape) < 0.5).astype(np.float64)
    if draw(st.booleans()):
        target = rng.random(shape)  # soft targets
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    if with_logits:
        x = sample(rng, shape, draw(st.sampled_from(["real", "wide"])))
    else:
        x = rng.uniform(0.05, 0.95, shape)
    inputs, wants = [x, target], [True, False]
    weight = draw(st.booleans())
    pos_weight = with_logits and draw(st.booleans())
    last = shape[-1:] if shape else ()
    inputs += [sample(rng, last, "positive")] * weight
    inputs += [sample(rng, last, "positive")] * pos_weight
    wants += [False] * (weight + pos_weight)

    def call(functional, x, t, *extra):
        kwargs = dict(reduction=reduction)
        extra = list(extra)
        if weight:
            kwargs["weight"] = extra.pop(0)
        if pos_weight:
            kwargs["pos_weight"] = extra.pop(0)
        name = "binary_cross_entropy_with_logits" if with_logits else "binary_cross_entropy"
        return getattr(functional, name)(x, t, **kwargs)

    return Case(lambda *a: call(F, *a), inputs, lambda *a: call(tF(), *a), wants)


@st.composite
def mse_case(draw):
    rng = draw(rngs())
    shape = draw(shapes())
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    return Case(lambda x, y: F.mse_loss(x, y, reduction), [sample(rng, shape), sample(rng, shape)],
                lambda x, y: tF().mse_loss(x, y, reduction=reduction))


@st.composite
def pad_case(draw):
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1))
    widths = tuple(draw(st.integers(0, 2)) for _ in range(2 * draw(st.integers(1, len(shape)))))
    value = draw(st.sampled_from([0.0, -1.5]))
    return Case(lambda x: F.pad(x, widths, value=value), [sample(rng, shape)],
                lambda x: tF().pad(x, widths, value=value))


@st.composite
def normalize_case(draw):
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1))
    dim, p = draw(st.integers(-len(shape), len(shape) - 1)), draw(st.sampled_from([1.0, 2.0]))
    return Case(lambda x: F.normalize(x, p, dim), [sample(rng, shape, "nonzero")],
                lambda x: tF().normalize(x, p, dim))


@st.composite
def probability_target_case(draw):
    """cross_entropy with class probabilities as targets (N, C) or (N, C, d)."""
    rng = draw(rngs())
    n, classes = draw(st.integers(1, 4)), draw(st.integers(2, 4))
    shape = (n, classes) + draw(st.sampled_from([(), (draw(st.integers(1, 3)),)]))
    target = rng.dirichlet(np.ones(classes), size=(n,) + shape[2:])
    target = np.moveaxis(target, -1, 1)
    kwargs = dict(reduction=draw(st.sampled_from(["mean", "sum", "none"])),
                  label_smoothing=draw(st.sampled_from([0.0, 0.2])))
    inputs = [sample(rng, shape), target]
    if draw(st.booleans()):
        inputs.append(sample(rng, (classes,), "positive"))
    return Case(lambda x, t, *w: F.cross_entropy(x, t, *w, **kwargs), inputs,
                lambda x, t, *w: tF().cross_entropy(x, t, *w, **kwargs),
                [True, True] + [False] * (len(inputs) - 2))


@st.composite
def batch_norm_1d_case(draw):
    rng = draw(rngs())
    shape = (draw(st.integers(2, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4)))
    c = shape[1]
    return Case(lambda x, w, b: F.batch_norm(x, None, None, w, b, True),
                [sample(rng, shape), sample(rng, (c,)), sample(rng, (c,))],
                lambda x, w, b: tF().batch_norm(x, None, None, w, b, True))


@st.composite
def activation_case(draw, name):
    """The smooth and clipped relatives of relu, with their settings drawn; inputs kept away
    from the kinks (0 and the clip points) where a difference quotient straddles them."""
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1))
    x = sample(rng, shape, "nonzero") * draw(st.sampled_from([1.0, 3.0]))
    settings = {
        "gelu": dict(approximate=draw(st.sampled_from(["none", "tanh"]))),
        "elu": dict(alpha=draw(st.sampled_from([1.0, 0.5]))),
        "silu": {},
        "softplus": dict(beta=draw(st.sampled_from([1.0, 2.0])),
                         threshold=draw(st.sampled_from([20.0, 1.0]))),
        "hardtanh": dict(min_val=-1.25, max_val=draw(st.sampled_from([1.25, 2.25]))),
        "relu6": {},
    }[name]
    if name == "relu6":
        x = x * 4  # some beyond 6
    if name == "softplus" and settings["threshold"] == 1.0:
        x = np.where(abs(x * settings["beta"] - 1.0) < 0.1, x + 0.3, x)  # not at the switch
    return Case(lambda x: getattr(F, name)(x, **settings), [x],
                lambda x: getattr(tF(), name)(x, **settings))


@st.composite
def prelu_case(draw):
    rng = draw(rngs())
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) + draw(shapes(max_dims=2))
    slopes = 1 if draw(st.booleans()) else shape[1]
    return Case(lambda x, w: F.prelu(x, w), [sample(rng, shape, "nonzero"),
                                              sample(rng, (slopes,))],
                lambda x, w: tF().prelu(x, w))


@st.composite
def layer_norm_case(draw):
    rng = draw(rngs())
    shape = draw(shapes(min_dims=1, max_dims=3))
    k = draw(st.integers(1, len(shape)))
    if np.prod(shape[len(shape) - k:], dtype=int) < 2:  # one value: nothing to normalise
        shape, k = shape + (2,), k + 1
    normalized = shape[len(shape) - k:]
    inputs = [sample(rng, shape)]
    affine = draw(st.sampled_from(["none", "weight", "both"]))
    inputs += [sample(rng, normalized)] * (affine != "none") + [sample(rng, normalized)] * (
        affine == "both")
    return Case(lambda x, *wb: F.layer_norm(x, normalized, *wb), inputs,
                lambda x, *wb: tF().layer_norm(x, normalized, *wb))


@st.composite
def group_norm_case(draw):
    rng = draw(rngs())
    groups = draw(st.integers(1, 3))
    c = groups * draw(st.integers(1, 2))
    shape = (draw(st.integers(1, 2)), c) + draw(shapes(max_dims=2))
    if np.prod(shape[2:], dtype=int) * (c // groups) < 2:
        shape = shape + (2,)  # a group of one value has no variance to speak of
    inputs = [sample(rng, shape)]
    if draw(st.booleans()):
        inputs += [sample(rng, (c,)), sample(rng, (c,))]
    return Case(lambda x, *wb: F.group_norm(x, groups, *wb), inputs,
                lambda x, *wb: tF().group_norm(x, groups, *wb))


@st.composite
def regression_loss_case(draw, name):
    rng = draw(rngs())
    shape = draw(shapes())
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    x = sample(rng, shape)
    target = x + sample(rng, shape, "nonzero") * draw(st.sampled_from([0.3, 2.0]))  # no kinks
    kwargs = dict(reduction=reduction)
    if name == "smooth_l1_loss":
        kwargs["beta"] = draw(st.sampled_from([1.0, 0.5]))
        d = abs(x - target)
        target = np.where(abs(d - kwargs["beta"]) < 0.05, target + 0.2, target)
    return Case(lambda a, b: getattr(F, name)(a, b, **kwargs), [x, target],
                lambda a, b: getattr(tF(), name)(a, b, **kwargs))


@st.composite
def kl_div_case(draw):
    rng = draw(rngs())
    n, classes = draw(st.integers(1, 3)), draw(st.integers(2, 4))
    log_q = np.log(rng.dirichlet(np.ones(classes), size=n))
    p = rng.dirichlet(np.ones(classes), size=n)
    p[0, 0] = 0.0  # a zero of the target contributes nothing
    p[0] /= p[0].sum()
    log_target = draw(st.booleans())
    target = np.log(p + 1e-3) if log_target else p
    kwargs = dict(reduction=draw(st.sampled_from(["mean", "sum", "none", "batchmean"])),
                  log_target=log_target)
    def theirs(x, t):
        with warnings.catch_warnings():  # torch's notice that its 'mean' will change
            warnings.simplefilter("ignore", UserWarning)
            return tF().kl_div(x, t, **kwargs)

    return Case(lambda x, t: F.kl_div(x, t, **kwargs), [log_q, target], theirs, [True, False])


@st.composite
def segmentation_loss_case(draw, name):
    """cross_entropy / nll_loss on (N, C, H, W) maps with the VOC void label 255 ignored."""
    rng = draw(rngs())
    n, classes, h, w = (draw(st.integers(1, 2)), draw(st.integers(2, 4)),
                        draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    target = rng.integers(0, classes, (n, h, w))
    target[rng.random(target.shape) < 0.3] = 255
    target.flat[0] = 0
    kwargs = dict(ignore_index=255, reduction=draw(st.sampled_from(["mean", "sum", "none"])))
    prepare = (lambda x: x) if name == "cross_entropy" else (lambda x: x.log_softmax(1))
    return Case(lambda x, t: getattr(F, name)(prepare(x), t, **kwargs),
                [sample(rng, (n, classes, h, w)), target],
                lambda x, t: getattr(tF(), name)(prepare(x), t, **kwargs), [True, False])


@st.composite
def conv_transpose2d_case(draw):
    rng = draw(rngs())
    groups = draw(st.sampled_from([1, 2]))
    c, oc = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, (d * (k - 1)) // 2)) for k, d in zip(kernel, dilation))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    x = sample(rng, (draw(st.integers(1, 2)), c, draw(st.integers(1, 4)), draw(st.integers(1, 4))))
    inputs = [x, sample(rng, (c, oc // groups, *kernel))]
    if draw(st.booleans()):
        inputs.append(sample(rng, (oc,)))
    settings = dict(stride=stride, padding=padding, output_padding=output_padding,
                    groups=groups, dilation=dilation)
    return Case(lambda *a: F.conv_transpose2d(*a, **settings), inputs,
                lambda *a: tF().conv_transpose2d(*a, **settings))


@st.composite
def interpolate_case(draw):
    rng = draw(rngs())
    x = sample(rng, (draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 5)),
                     draw(st.integers(1, 5))))
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    kwargs = dict(mode=mode)
    if mode == "bilinear":
        kwargs["align_corners"] = draw(st.booleans())
    if draw(st.booleans()):
        kwargs["size"] = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    else:
        kwargs["scale_factor"] = draw(st.sampled_from([2, 3, 0.5, 1.5, (2, 0.75)]))
        if min(int(n * f) for n, f in zip(x.shape[2:], np.broadcast_to(
                kwargs["scale_factor"], 2))) < 1:
            kwargs["scale_factor"] = 2
    return Case(lambda x: F.interpolate(x, **kwargs), [x],
                lambda x: tF().interpolate(x, **kwargs))


@st.composite
def embedding_case(draw):
    rng = draw(rngs())
    rows, dim = draw(st.integers(2, 5)), draw(st.integers(1, 3))
    indices = rng.integers(0, rows, draw(shapes(min_dims=1, max_dims=2)))
    indices.flat[0] = 1  # repeats: their gradients add up
    padding_idx = draw(st.sampled_from([None, 0]))
    if padding_idx is not None:  # (a looked-up padding row: see the test below)
        indices = np.maximum(indices, 1)
    return Case(lambda w, i: F.embedding(i, w, padding_idx), [sample(rng, (rows, dim)), indices],
                lambda w, i: tF().embedding(i, w, padding_idx), [True, False])


CASES = {
    "conv2d": conv2d_case(),
    "max_pool2d": pool_case("max_pool2d"),
    "avg_pool2d": pool_case("avg_pool2d"),
    "adaptive_avg_pool2d": adaptive_case(),
    "adaptive_max_pool2d": adaptive_case("adaptive_max_pool2d"),
    "batch_norm_training": batch_norm_case(training=True),
    "batch_norm_eval": batch_norm_case(training=False),
    "linear": linear_case(),
    "leaky_relu": leaky_relu_case(),
    "cross_entropy": class_loss_case("cross_entropy"),
    "nll_loss": class_loss_case("nll_loss"),
    "binary_cross_entropy": binary_loss_case(with_logits=False),
    "binary_cross_entropy_with_logits": binary_loss_case(with_logits=True),
    "mse_loss": mse_case(),
    "pad": pad_case(),
    "normalize": normalize_case(),
    "cross_entropy_probabilities": probability_target_case(),
    "batch_norm_1d_ncl": batch_norm_1d_case(),
    **{name: activation_case(name) for name in ("gelu", "elu", "silu", "softplus", "hardtanh",
                                               "relu6")},
    "prelu": prelu_case(),
    "layer_norm": layer_norm_case(),
    "group_norm": group_norm_case(),
    "l1_loss": regression_loss_case("l1_loss"),
    "smooth_l1_loss": regression_loss_case("smooth_l1_loss"),
    "kl_div": kl_div_case(),
    "cross_entropy_nchw_void": segmentation_loss_case("cross_entropy"),
    "nll_loss_nchw_void": segmentation_loss_case("nll_loss"),
    "conv_transpose2d": conv_transpose2d_case(),
    "interpolate": interpolate_case(),
    "embedding": embedding_case(),
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


@requires_torch
@pytest.mark.parametrize("op", ["conv2d", "max_pool2d", "batch_norm_training", "batch_norm_eval"])
@given(data=st.data())
def test_reference_functions_match_central_differences_and_torch(op, data):
    """The references of the ops with fast paths (ops/conv.py, pool.py, norm.py), which the
    fast paths are tested against in test_fast_paths.py, checked here on their own."""
    from minigrad.ops import fast

    case = data.draw(CASES[op])
    fast.enable(False)
    try:
        check_gradient(case.fn, case.inputs, requires_grad=case.requires_grad)
        for dtype in (np.float32, np.float64):
            assert_matches_torch(case.fn, case.inputs, case.torch_fn, dtype=dtype,
                                 requires_grad=case.requires_grad)
    finally:
        fast.enable(True)



@requires_torch
def test_one_hot_as_pytorch():
    labels = np.array([[0, 3], [2, 1]])
    ours = F.one_hot(mg.tensor(labels))
    theirs = tF().one_hot(torch().tensor(labels))
    assert ours.dtype == mg.int64 and ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert F.one_hot(mg.tensor([1]), num_classes=4).tolist() == [[0, 1, 0, 0]]
    with pytest.raises(ValueError, match=r"one_hot: class values must be in \[0, 2\)"):
        F.one_hot(mg.tensor([2]), num_classes=2)


def test_dropout2d_drops_whole_channels():
    mg.manual_seed(0)
    out = F.dropout2d(mg.ones(8, 16, 3, 3), p=0.5)
    per_channel = out.numpy().reshape(8, 16, 9)
    assert np.all(per_channel.min(axis=2) == per_channel.max(axis=2))  # all or nothing
    assert set(np.unique(per_channel)) == {0.0, 2.0}
    assert 0.3 < (per_channel[:, :, 0] == 0).mean() < 0.7
    layer = mg.nn.Dropout2d(0.5).eval()
    assert layer(mg.ones(1, 2, 2, 2)).tolist() == mg.ones(1, 2, 2, 2).tolist()



@requires_torch
@given(rng=rngs(), size=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       h=st.integers(1, 8), w=st.integers(1, 8))
def test_adaptive_max_pool_gives_ties_to_the_first_maximum_as_pytorch(rng, size, h, w):
    x = np.round(rng.standard_normal((2, 2, h, w)))  # many equal values
    upstream = rng.standard_normal((2, 2) + size)
    grads = []
    for library, functional in ((mg, F), (torch(), tF())):
        t = library.tensor(x, requires_grad=True)
        functional.adaptive_max_pool2d(t, size).backward(library.tensor(upstream))
        grads.append(t.grad.numpy())
    np.testing.assert_allclose(*grads)


@requires_torch
def test_embedding_gives_the_padding_row_no_gradient_as_torch():
    weight = np.random.default_rng(0).standard_normal((4, 3))
    indices = np.array([[0, 3, 3], [1, 0, 2]])
    upstream = np.random.default_rng(1).standard_normal((2, 3, 3))
    ours = mg.tensor(weight, requires_grad=True)
    F.embedding(mg.tensor(indices), ours, padding_idx=-4).backward(mg.tensor(upstream))
    theirs = torch().tensor(weight, requires_grad=True)
    tF().embedding(torch().tensor(indices), theirs, padding_idx=0).backward(
        torch().tensor(upstream))
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12)
    assert not ours.grad.numpy()[0].any() and ours.grad.numpy()[3].any()
    with pytest.raises(IndexError, match=r"embedding: indices must be in \[0, 4\), found "
                                         r"values in \[0, 7\]"):
        F.embedding(mg.tensor([[0, 7]]), ours)
    with pytest.raises(TypeError, match="indices must be integers"):
        F.embedding(mg.tensor([0.0]), ours)


@pytest.mark.parametrize("path", ["fast", "fast, transposed table", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_names_indices_out_of_range_on_every_path(path, dtype):
    table = np.arange(12, dtype=dtype).reshape(4, 3)
    weight = mg.tensor(table.T.copy().T if "transposed" in path else table)
    fast.enable(path != "reference")
    try:
        for bad, found in [([[0, 7]], r"\[0, 7\]"), ([2, -1, 3], r"\[-1, 3\]"),
                           ([[1], [4]], r"\[1, 4\]")]:
            with pytest.raises(IndexError, match=r"embedding: indices must be in \[0, 4\), "
                                                 r"found values in " + found):
                F.embedding(mg.tensor(bad), weight)
        np.testing.assert_array_equal(F.embedding(mg.tensor([3, 0]), weight).numpy(),
                                      table[[3, 0]])
    finally:
        fast.enable(True)
