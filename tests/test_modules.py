"""Layers and Modules against torch.nn with the same weights: forward, input and parameter
gradients, running statistics, names, state_dict, repr and initialisation."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DEVICES, requires_torch, rngs, sample, torch
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.nn as nn
from minigrad.testing import assert_module_matches_torch


@st.composite
def layer_case(draw):
    """A (minigrad layer, torch layer, input array, training) quadruple for one layer kind."""
    rng = draw(rngs())
    kind = draw(st.sampled_from(["conv", "linear", "bn1d", "bn2d", "maxpool", "avgpool",
                                 "adaptive", "activation", "flatten", "dropout"]))
    tnn = torch().nn
    training = draw(st.booleans())
    if kind == "conv":
        groups = draw(st.sampled_from([1, 2]))
        c, oc = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))
        k, s, p, d = (draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 1)),
                      draw(st.integers(1, 2)))
        bias = draw(st.booleans())
        size = d * (k - 1) + 1 + draw(st.integers(0, 3))
        args = (c, oc, k, s, p, d, groups, bias)
        return nn.Conv2d(*args), tnn.Conv2d(*args), sample(rng, (2, c, size, size)), training
    if kind == "linear":
        n_in, n_out, bias = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.booleans())
        return (nn.Linear(n_in, n_out, bias), tnn.Linear(n_in, n_out, bias),
                sample(rng, (3, n_in)), training)
    if kind in ("bn1d", "bn2d"):
        c = draw(st.integers(1, 3))
        settings = dict(momentum=draw(st.sampled_from([0.1, 0.5, None])),
                        affine=draw(st.booleans()), track_running_stats=draw(st.booleans()),
                        eps=draw(st.sampled_from([1e-5, 1e-3])))
        shape = (4, c) if kind == "bn1d" else (2, c, 3, 2)
        ours = (nn.BatchNorm1d if kind == "bn1d" else nn.BatchNorm2d)(c, **settings)
        theirs = (tnn.BatchNorm1d if kind == "bn1d" else tnn.BatchNorm2d)(c, **settings)
        if settings["track_running_stats"]:  # start from non-trivial running statistics
            theirs.running_mean.copy_(torch().tensor(sample(rng, (c,))))
            theirs.running_var.copy_(torch().tensor(sample(rng, (c,), "positive")))
        return ours, theirs, sample(rng, shape), training
    if kind in ("maxpool", "avgpool"):
        k = draw(st.integers(1, 3))
        s, p = draw(st.integers(1, 3)), draw(st.integers(0, k // 2))
        name = "MaxPool2d" if kind == "maxpool" else "AvgPool2d"
        return (getattr(nn, name)(k, s, p), getattr(tnn, name)(k, s, p),
                sample(rng, (2, 2, 6, 5)), training)
    if kind == "adaptive":
        size = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
        return (nn.AdaptiveAvgPool2d(size), tnn.AdaptiveAvgPool2d(size),
                sample(rng, (2, 2, 5, 7)), training)
    if kind == "activation":
        name = draw(st.sampled_from(["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Identity"]))
        return getattr(nn, name)(), getattr(tnn, name)(), sample(rng, (3, 4), "nonzero"), training
    if kind == "flatten":
        start = draw(st.integers(0, 2))
        return (nn.Flatten(start), tnn.Flatten(start), sample(rng, (2, 3, 2, 2)), training)
    p = draw(st.sampled_from([0.0, 0.3]))
    return nn.Dropout(p), tnn.Dropout(p), sample(rng, (3, 4)), training and p == 0.0


@requires_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("device", DEVICES)
@given(case=layer_case())
def test_layer_matches_torch_with_the_same_weights(case, device, dtype):
    ours, theirs, x, training = case
    assert_module_matches_torch(ours, theirs, [x], dtype=dtype, device=device, training=training)


def lenet_like(lib):
    nn_ = lib.nn
    return nn_.Sequential(
        nn_.Conv2d(1, 4, 3, padding=1), nn_.BatchNorm2d(4), nn_.ReLU(), nn_.MaxPool2d(2),
        nn_.Conv2d(4, 6, 3), nn_.LeakyReLU(0.1), nn_.AvgPool2d(2),
        nn_.Flatten(), nn_.Dropout(0.5), nn_.Linear(6 * 2 * 2, 16), nn_.Tanh(),
        nn_.Linear(16, 5),
    )


@requires_torch
def test_a_whole_model_with_torch_weights_gives_the_same_loss_and_every_gradient():
    t = torch()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1, 12, 12))
    labels = rng.integers(0, 5, 8)
    theirs = lenet_like(t).double().train()
    theirs[8].eval()  # dropout off, batch norm in training mode
    ours = lenet_like(mg).double().train()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    ours[8].eval()
    loss = nn.CrossEntropyLoss(label_smoothing=0.1)(ours(mg.tensor(x)), mg.tensor(labels))
    loss.backward()
    their_loss = t.nn.CrossEntropyLoss(label_smoothing=0.1)(theirs(t.tensor(x)), t.tensor(labels))
    their_loss.backward()
    assert loss.item() == pytest.approx(their_loss.item(), rel=1e-12)
    own = dict(ours.named_parameters())
    assert list(own) == [name for name, _ in theirs.named_parameters()]
    for name, param in theirs.named_parameters():
        np.testing.assert_allclose(own[name].grad.numpy(), param.grad.numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=name)
    for name, buffer in theirs.named_buffers():
        np.testing.assert_allclose(ours.state_dict()[name], buffer.numpy(), rtol=1e-12)


@requires_torch
def test_state_dict_names_and_repr_are_pytorch_s():
    t = torch()
    ours, theirs = lenet_like(mg), lenet_like(t)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    nested = nn.Sequential(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), nn.BatchNorm1d(3))
    their_nested = t.nn.Sequential(t.nn.Sequential(t.nn.Linear(2, 3), t.nn.ReLU()),
                                   t.nn.BatchNorm1d(3))
    assert list(nested.state_dict()) == list(their_nested.state_dict())
    # (torch 2.13 prints a `bias` flag in BatchNorm's repr that minigrad's BatchNorm lacks)
    ours = nn.Sequential(nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU()),
                         nn.Flatten(), nn.LeakyReLU(), nn.Linear(6, 2, bias=False))
    theirs = t.nn.Sequential(t.nn.Sequential(t.nn.Conv2d(1, 6, 5, padding=2), t.nn.ReLU()),
                             t.nn.Flatten(), t.nn.LeakyReLU(), t.nn.Linear(6, 2, bias=False))
    assert repr(ours) == repr(theirs)


def test_state_dict_is_a_fresh_copy_and_round_trips_through_save_and_load(tmp_path):
    model = lenet_like(mg)
    state = model.state_dict()
    state["0.weight"][...] = 0
    assert np.abs(model[0].weight.numpy()).sum() > 0
    model(mg.randn(2, 1, 12, 12))  # updates running statistics
    mg.save(model.state_dict(), tmp_path / "model.npz")
    clone = lenet_like(mg)
    clone.load_state_dict(mg.load(tmp_path / "model.npz"))
    for (name, a), b in zip(model.state_dict().items(), clone.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert a.dtype == b.dtype


def test_load_state_dict_lists_every_problem_at_once():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    state = model.state_dict()
    del state["0.bias"]
    state["extra.weight"] = np.zeros(1)
    state["0.weight"] = np.zeros((4, 2))
    with pytest.raises(RuntimeError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "Missing key(s) in state_dict: 0.bias" in message
    assert "Unexpected key(s) in state_dict: extra.weight" in message
    assert "size mismatch for 0.weight" in message and "(4, 2)" in message
    result = nn.Sequential(nn.Linear(2, 3)).load_state_dict(
        {"0.weight": np.ones((3, 2)), "other": np.ones(1)}, strict=False)
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys == ["other"]


def test_load_state_dict_casts_to_the_parameter_dtype():
    model = nn.Linear(2, 3)
    model.load_state_dict({"weight": np.ones((3, 2), dtype=np.float64),
                           "bias": np.arange(3)})
    assert model.weight.dtype == mg.float32 and model.bias.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("bad, problem", [
    (np.array(["a", "b"] * 5).reshape(5, 2), "is <U1 .*not numbers"),
    (np.full((5, 2), None), "is object"),
    (np.ones((5, 2), dtype=complex), "is complex128"),
    ({"nested": 1}, "is object|not an array"),
])
def test_load_state_dict_writes_all_or_nothing(bad, problem):
    """The right shape and a wrong dtype in the last entry: before, nine of ten parameters
    were overwritten before the cast failed. Now every entry is checked first."""
    mg.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(4)], nn.Linear(2, 5))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    state = {k: np.full(v.shape, 7.0) for k, v in before.items()}
    state["4.weight"] = bad
    with pytest.raises(RuntimeError, match=f"4.weight: the value {problem}"):
        model.load_state_dict(state)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_load_state_dict_refuses_a_non_mapping_and_reads_device_tensors():
    model = nn.Linear(2, 1)
    with pytest.raises(TypeError, match="expected a dict of name -> array, got list"):
        model.load_state_dict([np.ones((1, 2)), np.ones(1)])
    source = nn.Linear(2, 1).to("cuda")
    model.load_state_dict(source.state_dict())
    np.testing.assert_array_equal(model.weight.numpy(), source.weight.numpy())
    model.load_state_dict({"weight": source.weight.array, "bias": np.zeros(1)})
    np.testing.assert_array_equal(model.weight.numpy(), source.weight.numpy())


def test_module_registration_modes_and_conversion():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.BatchNorm1d(3), nn.Dropout())
    assert len(list(model.parameters())) == 4  # the shared layer counts once
    assert [n for n, _ in model.named_buffers()] == ["3.running_mean", "3.running_var",
                                                     "3.num_batches_tracked"]
    # a module registered twice is listed once, as in PyTorch (4 children, 5 modules)
    assert len(list(model.children())) == 4 and len(list(model.modules())) == 5
    assert [n for n, _ in model.named_modules()] == ["", "0", "1", "3", "4"]
    assert list(model.state_dict())[:4] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    model.double()
    assert all(p.dtype == mg.float64 for p in model.parameters())
    assert model[3].running_var.dtype == mg.float64
    assert model[3].num_batches_tracked.dtype == mg.int64
    model(mg.randn(4, 3, dtype=mg.float64)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
    assert len(list(layers.parameters())) == 4 and list(layers.state_dict())[0] == "0.weight"


@pytest.mark.parametrize("make, fan_in", [(lambda: nn.Linear(400, 300), 400),
                                          (lambda: nn.Conv2d(16, 32, 3), 16 * 9)])
def test_layers_start_from_pytorch_s_distributions(make, fan_in):
    mg.manual_seed(0)
    layer = make()
    bound = 1 / np.sqrt(fan_in)
    weight, bias = layer.weight.numpy(), layer.bias.numpy()
    assert np.abs(weight).max() <= bound and np.abs(bias).max() <= bound
    assert weight.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)  # uniform on +-bound
    assert abs(weight.mean()) < 0.05 * bound
    assert weight.dtype == mg.float32


def test_init_functions_draw_the_documented_distributions():
    mg.manual_seed(0)
    w = mg.empty(256, 512)
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert w.numpy().std() == pytest.approx(np.sqrt(2 / 512), rel=0.03)
    nn.init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu")
    assert np.abs(w.numpy()).max() <= np.sqrt(6 / 256)
    nn.init.xavier_uniform_(w)
    assert np.abs(w.numpy()).max() <= np.sqrt(6 / (256 + 512))
    nn.init.xavier_normal_(w, gain=2.0)
    assert w.numpy().std() == pytest.approx(2 * np.sqrt(2 / 768), rel=0.03)
    nn.init.normal_(w, 3.0, 0.5)
    assert w.numpy().mean() == pytest.approx(3.0, abs=0.01)
    nn.init.uniform_(w, -2, -1)
    assert -2 <= w.numpy().min() and w.numpy().max() < -1
    nn.init.constant_(w, 0.25)
    assert set(np.unique(w.numpy())) == {0.25}
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(np.sqrt(2 / 1.04))


# ---------------------------------------------------------------------------------------------
# dropout


@pytest.mark.parametrize("device", DEVICES)
def test_dropout_keeps_1_minus_p_and_scales_the_survivors(device):
    mg.manual_seed(0)
    x = mg.ones(200, 500, device=device, requires_grad=True)
    y = nn.functional.dropout(x, 0.3)
    kept = y.numpy() != 0
    assert kept.mean() == pytest.approx(0.7, abs=0.01)
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.7, rtol=1e-6)
    upstream = mg.randn(200, 500, device=device)
    y.backward(upstream)
    np.testing.assert_allclose(x.grad.numpy(), upstream.numpy() * y.numpy(), rtol=1e-6)


def test_dropout_is_the_identity_in_eval_and_for_p_0_and_zeros_for_p_1():
    x = mg.randn(4, 5, requires_grad=True)
    layer = nn.Dropout(0.5).eval()
    assert layer(x) is x
    assert nn.functional.dropout(x, 0.0) is x
    y = nn.functional.dropout(x, 1.0)
    assert not np.isnan(y.numpy()).any() and (y.numpy() == 0).all()
    y.sum().backward()
    assert (x.grad.numpy() == 0).all()


def test_dropout_masks_repeat_under_the_same_seed():
    mg.manual_seed(5)
    first = nn.functional.dropout(mg.ones(100), 0.5).numpy()
    mg.manual_seed(5)
    np.testing.assert_array_equal(first, nn.functional.dropout(mg.ones(100), 0.5).numpy())


# ---------------------------------------------------------------------------------------------
# bad input


def test_conv2d_names_the_layer_and_the_channels():
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8.*expected input \(N, 3, H, W\).*got shape "
                                         r"minigrad.Size\(\[2, 1, 8, 8\]\)"):
        nn.Conv2d(3, 8, 3)(mg.randn(2, 1, 8, 8))


def test_conv2d_input_smaller_than_the_kernel():
    with pytest.raises(ValueError, match=r"Conv2d\(1, 2, kernel_size=\(5, 5\).*smaller than the "
                                         r"kernel \(5, 5\)"):
        nn.Conv2d(1, 2, 5)(mg.randn(1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"MaxPool2d.*smaller than the kernel"):
        nn.MaxPool2d(4)(mg.randn(1, 1, 3, 3))


def test_linear_with_the_wrong_feature_count_says_what_flatten_produced():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(100, 10))
    with pytest.raises(ValueError, match=r"Linear\(in_features=100.*got shape "
                                         r"minigrad.Size\(\[4, 72\]\).*produce "
                                         r"72 features per sample, not 100"):
        model(mg.randn(4, 1, 8, 8))


def test_class_targets_out_of_range_or_floating():
    logits = mg.randn(3, 4)
    with pytest.raises(IndexError, match="cross_entropy: target 4 is out of range for 4 classes"):
        nn.CrossEntropyLoss()(logits, mg.tensor([0, 1, 4]))
    with pytest.raises(IndexError, match="target -2 is out of range"):
        nn.functional.nll_loss(logits, mg.tensor([0, -2, 1]))
    with pytest.raises(TypeError, match="integer class indices.*float32"):
        nn.CrossEntropyLoss()(logits, mg.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"target of shape minigrad.Size\(\[2\]\) does not "
                                         r"match input"):
        nn.CrossEntropyLoss()(logits, mg.tensor([0, 1]))


def test_binary_losses_check_their_inputs():
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\]"):
        nn.BCELoss()(mg.tensor([0.5, 1.5]), mg.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="must have the input's shape"):
        nn.BCEWithLogitsLoss()(mg.randn(3), mg.ones(2))
    with pytest.raises(ValueError, match="must have the input's shape"):
        nn.MSELoss()(mg.randn(3), mg.ones(3, 1))


def test_bce_with_logits_is_finite_at_plus_minus_1000():
    x = mg.tensor([1000.0, -1000.0, 1000.0, -1000.0], requires_grad=True)
    loss = nn.BCEWithLogitsLoss(pos_weight=mg.tensor([2.0]))(x, mg.tensor([1.0, 0.0, 0.0, 1.0]))
    # right answers cost nothing; wrong ones cost |x| (times pos_weight for a missed positive)
    assert loss.item() == pytest.approx((0 + 0 + 1000 + 2 * 1000) / 4)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0, 0.25, -0.5])


def test_apply_visits_children_first_then_the_module_itself():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Linear(2, 1)))
    seen = []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    assert seen == ["Linear", "ReLU", "Linear", "Sequential", "Sequential"]

    def init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)

    model.apply(init_weights)
    assert model[1][1].weight.tolist() == [[0.5, 0.5]]


def test_a_non_persistent_buffer_is_moved_but_not_saved():
    layer = nn.Linear(2, 2)
    layer.register_buffer("cache", mg.zeros(3), persistent=False)
    layer.register_buffer("kept", mg.ones(1))
    assert "cache" not in layer.state_dict() and "kept" in layer.state_dict()
    assert [name for name, _ in layer.named_buffers()] == ["cache", "kept"]
    layer.double()
    assert layer.cache.dtype == mg.float64
    layer.load_state_dict(layer.state_dict())  # strict: the cache is not expected


@requires_torch
def test_module_dict_and_parameter_list_register_as_pytorch_s():
    tnn = torch().nn
    ours = nn.ModuleDict({"encoder": nn.Linear(2, 3), "head": nn.Linear(3, 1)})
    ours["extra"] = nn.ReLU()
    theirs = tnn.ModuleDict({"encoder": tnn.Linear(2, 3), "head": tnn.Linear(3, 1)})
    theirs["extra"] = tnn.ReLU()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert list(ours) == ["encoder", "head", "extra"] and "head" in ours and len(ours) == 3
    params = nn.ParameterList([mg.ones(2), nn.Parameter(mg.zeros(3))])
    assert [n for n, _ in params.named_parameters()] == ["0", "1"]
    assert all(p.requires_grad for p in params) and params[1].shape == (3,)


@requires_torch
@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_scales_gradients_as_pytorch(norm_type):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
    results = []
    for library in (mg, torch()):
        params = [library.tensor(np.zeros_like(g), requires_grad=True) for g in grads]
        for p, g in zip(params, grads):
            p.grad = library.tensor(g)
        total = library.nn.utils.clip_grad_norm_(params, 0.5, norm_type)
        results.append([float(total)] + [p.grad.numpy() for p in params])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    p = mg.tensor(np.zeros(1), requires_grad=True)
    p.grad = mg.tensor([np.nan])
    with pytest.raises(RuntimeError, match="clip_grad_norm_: the total norm of order 2.0 of the "
                                           "gradients is non-finite"):
        mg.nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)



@pytest.mark.parametrize("device", DEVICES)
def test_trunc_normal_and_orthogonal_initialisations(device):
    mg.manual_seed(0)
    w = nn.init.trunc_normal_(mg.empty(200, 50, device=device), mean=0.5, std=1.0, a=-1.0, b=1.5)
    values = w.numpy()
    assert values.min() >= -1.0 and values.max() <= 1.5
    # the mean of N(0.5, 1) truncated to [-1, 1.5]: mu + (pdf(alpha) - pdf(beta)) / mass
    import math

    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: (1 + math.erf(z / math.sqrt(2))) / 2  # noqa: E731
    expected = 0.5 + (pdf(-1.5) - pdf(1.0)) / (cdf(1.0) - cdf(-1.5))
    assert abs(values.mean() - expected) < 0.03 and values.std() < 1.0  # truncated: narrower
    for shape in ((4, 6), (6, 4), (3, 2, 2)):
        q = nn.init.orthogonal_(mg.empty(*shape, device=device), gain=2.0).numpy()
        flat = q.reshape(shape[0], -1)
        small = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
        np.testing.assert_allclose(small, 4.0 * np.eye(len(small)), atol=1e-5)


@requires_torch
@pytest.mark.parametrize("make", [
    lambda lib: lib.nn.LayerNorm((3, 4)),
    lambda lib: lib.nn.GroupNorm(2, 4),
    lambda lib: lib.nn.PReLU(4),
    lambda lib: lib.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1),
    lambda lib: lib.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
    lambda lib: lib.nn.GELU(),
    lambda lib: lib.nn.ELU(0.5),
    lambda lib: lib.nn.SiLU(),
    lambda lib: lib.nn.Softplus(2.0),
    lambda lib: lib.nn.Hardtanh(-0.5, 0.5),
    lambda lib: lib.nn.ReLU6(),
], ids=["LayerNorm", "GroupNorm", "PReLU", "ConvTranspose2d", "Upsample", "GELU", "ELU", "SiLU",
        "Softplus", "Hardtanh", "ReLU6"])
def test_new_modules_have_torch_s_parameters_and_give_its_outputs(make):
    t = torch()
    theirs, ours = make(t).double(), make(mg).double()
    assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == [
        (n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    state = {k: v.detach().numpy() + 0.1 for k, v in theirs.state_dict().items()}
    ours.load_state_dict(state)
    theirs.load_state_dict({k: t.tensor(v) for k, v in state.items()})
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 4)) * 3
    np.testing.assert_allclose(ours(mg.tensor(x)).numpy(), theirs(t.tensor(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


@requires_torch
def test_embedding_module_matches_torch_and_zeroes_its_padding_row():
    t = torch()
    mg.manual_seed(0)
    ours = mg.nn.Embedding(10, 3, padding_idx=2)
    assert ours.weight.numpy()[2].tolist() == [0.0, 0.0, 0.0]
    theirs = t.nn.Embedding(10, 3, padding_idx=2)
    theirs.load_state_dict({"weight": t.tensor(ours.weight.numpy())})
    indices = np.array([[1, 2, 9], [2, 2, 0]])
    np.testing.assert_allclose(ours(mg.tensor(indices)).numpy(),
                               theirs(t.tensor(indices)).detach().numpy())
