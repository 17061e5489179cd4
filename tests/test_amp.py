"""Mixed precision: mg.autocast's casts per op, the float32 sums of float16 products, the cast
cache, GradScaler against torch's, and training with fit(amp=True), on cpu and cuda."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import DEVICES, requires_torch, torch

import minigrad as mg
import minigrad.nn as nn
import minigrad.nn.functional as F
from minigrad import backend


def _small_net():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 4 * 4, 10))


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_runs_convolutions_and_matmuls_in_float16_and_the_sensitive_ops_in_float32(
        device):
    x = mg.randn(2, 3, 8, 8, device=device)
    w = mg.randn(4, 3, 3, 3, device=device, requires_grad=True)
    a, b = mg.randn(3, 5, device=device), mg.randn(5, 2, device=device)
    with mg.autocast(device.partition(":")[0]):
        y = F.conv2d(x, w, padding=1)
        assert y.dtype == mg.float16 and F.relu(y).dtype == mg.float16
        assert F.max_pool2d(y, 2).dtype == mg.float16
        assert (a @ b).dtype == mg.float16
        assert F.linear(a, b.T).dtype == mg.float16
        assert F.conv_transpose2d(y, mg.randn(4, 2, 2, 2, device=device), stride=2).dtype \
            == mg.float16
        for out in (y.softmax(1), y.log_softmax(1), y.exp(), (y.abs() + 1).log(), y.sum(),
                    y.sum(1), y.logsumexp(1), y ** 2, F.layer_norm(y, (8,)), F.group_norm(y, 2),
                    F.mse_loss(y, y.detach()), F.cross_entropy(y.flatten(1)[:, :10],
                                                               mg.tensor([1, 2], device=device))):
            assert out.dtype == mg.float32
        bn = F.batch_norm(y, mg.zeros(4, device=device), mg.ones(4, device=device),
                          mg.ones(4, device=device), mg.zeros(4, device=device), training=True)
        assert bn.dtype == mg.float16  # statistics in float32, the output as its input
        assert (y + mg.ones(1, device=device)).dtype == mg.float32  # promotion, as usual
        assert x.dtype == w.dtype == mg.float32  # the inputs themselves are not changed
    assert F.conv2d(x, w, padding=1).dtype == mg.float32  # outside: float32 again
    y.float().sum().backward()
    assert w.grad.dtype == mg.float32  # the float32 parameter gets a float32 gradient


def test_autocast_can_be_switched_off_inside_used_as_a_decorator_and_is_per_thread():
    a, b = mg.randn(2, 3), mg.randn(3, 2)

    @mg.autocast("cpu")
    def product():
        return a @ b

    assert product().dtype == mg.float16
    seen = []
    with mg.autocast("cpu"):
        with mg.autocast("cpu", enabled=False):
            assert (a @ b).dtype == mg.float32
        assert (a @ b).dtype == mg.float16
        assert mg.amp.is_autocast_enabled("cpu") and not mg.amp.is_autocast_enabled("cuda")
        worker = threading.Thread(target=lambda: seen.append((a @ b).dtype))
        worker.start()
        worker.join()
    assert seen == [mg.float32]
    assert not mg.amp.is_autocast_enabled("cpu")


def test_autocast_refuses_what_it_cannot_do_with_the_reason():
    with pytest.raises(ValueError, match="device_type must be 'cuda' or 'cpu'"):
        mg.autocast("mps")
    with pytest.raises(TypeError, match="bfloat16 is not available: NumPy has no bfloat16"):
        mg.autocast("cuda", dtype=mg.bfloat16)
    with pytest.raises(ValueError, match="float64 is not supported"):
        mg.autocast("cpu", dtype=mg.float64)
    with pytest.raises(TypeError, match="bfloat16 is not available"):
        mg.ones(2).to(mg.bfloat16)


def test_float16_products_are_summed_in_float32_as_tensor_cores_sum_them():
    a = np.full((1, 20000), 0.1, np.float16)
    b = np.ones((20000, 1), np.float16)
    exact = float(a.astype(np.float64).sum())
    assert abs(float((a @ b)[0, 0]) - exact) > 0.4  # NumPy's own float16 matmul drifts
    ours = backend.matmul(a, b)
    assert ours.dtype == np.float16 and abs(float(ours[0, 0]) - exact) < 1.0
    with mg.autocast("cpu"):
        out = mg.tensor(a.astype(np.float32)) @ mg.tensor(b.astype(np.float32))
    assert abs(out.item() - exact) < 1.0


def test_a_parameter_is_cast_once_per_autocast_block_and_again_after_it_changes():
    from minigrad.ops import elementwise

    layer = nn.Linear(4, 3)
    x = mg.randn(2, 4)
    calls = []
    real = elementwise.Cast.apply

    def counting(*args, **kwargs):
        calls.append(kwargs.get("dtype"))
        return real(*args, **kwargs)

    elementwise.Cast.apply = counting
    try:
        with mg.autocast("cpu"):
            layer(x), layer(x)
            weight_and_bias_and_two_inputs = len(calls)
            with mg.no_grad():
                layer.weight.mul_(2.0)  # an in-place change: the old copy is stale
            layer(x)
        assert weight_and_bias_and_two_inputs == 4
        assert len(calls) == 6  # the weight again, and the new input
        with mg.autocast("cpu"):
            layer(x)
        assert len(calls) == 9  # a new block casts afresh
    finally:
        elementwise.Cast.apply = real


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_under_autocast_are_float32_and_near_the_float32_ones(device):
    """With smooth activations: at a ReLU's or a max pool's kink, float16's rounding may send
    one position's gradient the other way (as in any float16 training), which says nothing
    about the arithmetic."""
    mg.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.Tanh(),
                          nn.Conv2d(16, 16, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(16 * 4 * 4, 10)).to(device)
    x = mg.randn(4, 3, 8, 8, device=device)
    y = mg.tensor([0, 1, 2, 3], device=device)
    grads = []
    for amp in (False, True):
        model.zero_grad()
        with mg.autocast(device.partition(":")[0], enabled=amp):
            loss = F.cross_entropy(model(x), y)
        assert loss.dtype == mg.float32
        loss.backward()
        grads.append({n: p.grad.numpy() for n, p in model.named_parameters()})
    for name, reference in grads[0].items():
        assert grads[1][name].dtype == np.float32, name
        error = np.abs(grads[1][name] - reference).max()
        if name == "0.bias":  # before a batch norm its gradient is 0 up to rounding
            assert error < 1e-4
        else:  # float16 activations keep ~3 digits
            assert error < 1e-2 * np.abs(reference).max(), (name, error)


def test_grad_scaler_scales_unscales_skips_overflowing_steps_and_adapts_its_scale():
    p = nn.Parameter(mg.ones(3))
    optimizer = mg.optim.SGD([p], lr=0.1)
    scaler = mg.amp.GradScaler("cpu", init_scale=8.0, growth_interval=3)
    history = []
    for bad in [False, True, False, False, False, True, False]:
        optimizer.zero_grad()
        loss = (p * (float("inf") if bad else 1.0)).sum()
        assert scaler.scale(loss).item() == pytest.approx(loss.item() * scaler.get_scale())
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        history.append((scaler.get_scale(), p.numpy().tolist()))
    # steps with an inf gradient leave the parameter as it was and halve the scale; three
    # clean steps in a row double it
    scales = [s for s, _ in history]
    assert scales == [8.0, 4.0, 4.0, 4.0, 8.0, 4.0, 4.0]
    assert history[1][1] == history[0][1] and history[5][1] == history[4][1]
    np.testing.assert_allclose(history[-1][1], [0.5] * 3, rtol=1e-6)
    assert scaler.state_dict() == {"scale": 4.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                                   "growth_interval": 3, "_growth_tracker": 1}


@requires_torch
def test_grad_scaler_follows_torch_s_step_for_step():
    t = torch()
    pattern = [False, True, True, False, False, False, False, True, False, False]
    results = []
    for lib in ("minigrad", "torch"):
        if lib == "minigrad":
            p = nn.Parameter(mg.ones(2))
            optimizer, scaler = mg.optim.SGD([p], lr=0.01), mg.amp.GradScaler(
                "cpu", init_scale=2.0**10, growth_interval=2)
        else:
            p = t.nn.Parameter(t.ones(2))
            optimizer, scaler = t.optim.SGD([p], lr=0.01), t.amp.GradScaler(
                "cpu", init_scale=2.0**10, growth_interval=2)
        seen = []
        for bad in pattern:
            optimizer.zero_grad()
            scaler.scale((p * (float("nan") if bad else 3.0)).sum()).backward()
            scaler.step(optimizer)
            scaler.update()
            seen.append((scaler.get_scale(), p.detach().numpy().tolist()))
        results.append((seen, scaler.state_dict()))
    assert results[0][1] == results[1][1]
    for (ours, our_p), (theirs, their_p) in zip(results[0][0], results[1][0]):
        assert ours == theirs
        np.testing.assert_allclose(our_p, their_p, rtol=1e-6)


def test_grad_scaler_unscale_before_clipping_and_its_refusals():
    p = nn.Parameter(mg.ones(2))
    optimizer = mg.optim.SGD([p], lr=1.0)
    scaler = mg.amp.GradScaler("cpu", init_scale=4.0)
    scaler.scale((p * 3.0).sum()).backward()
    scaler.unscale_(optimizer)
    np.testing.assert_allclose(p.grad.numpy(), [3.0, 3.0])  # true gradients, ready to clip
    with pytest.raises(RuntimeError, match="already called"):
        scaler.unscale_(optimizer)
    scaler.step(optimizer)  # no second unscale
    np.testing.assert_allclose(p.numpy(), [-2.0, -2.0])
    scaler.update()
    half = nn.Parameter(mg.ones(2, dtype=mg.float16))
    (half * 2.0).sum().backward()
    with pytest.raises(ValueError, match="float16 gradient; keep the parameters float32"):
        scaler.unscale_(mg.optim.SGD([half], lr=1.0))
    with pytest.raises(ValueError, match="growth_factor must be > 1"):
        mg.amp.GradScaler(growth_factor=1.0)
    with pytest.raises(KeyError, match="missing"):
        scaler.load_state_dict({"scale": 2.0})


def test_a_disabled_grad_scaler_passes_everything_through():
    p = nn.Parameter(mg.ones(2))
    optimizer = mg.optim.SGD([p], lr=1.0)
    scaler = mg.amp.GradScaler(enabled=False)
    loss = (p * 2.0).sum()
    assert scaler.scale(loss) is loss and scaler.get_scale() == 1.0
    loss.backward()
    scaler.step(optimizer)
    scaler.update()
    np.testing.assert_allclose(p.numpy(), [-1.0, -1.0])
    assert scaler.state_dict() == {}


def test_grad_scaler_state_round_trips_through_a_checkpoint(tmp_path):
    scaler = mg.amp.GradScaler("cpu", init_scale=2.0**12, growth_interval=7)
    scaler._growth_tracker = 5
    mg.save({"scaler": scaler.state_dict()}, tmp_path / "s.npz")
    other = mg.amp.GradScaler("cpu")
    other.load_state_dict(mg.load(tmp_path / "s.npz")["scaler"])
    assert other.state_dict() == scaler.state_dict()


def _fit(tmp_path, amp, epochs=2, resume=False, device="cpu"):
    from minigrad.training import fit

    rng = np.random.default_rng(0)
    prototypes = rng.standard_normal((10, 3, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 10, 256)
    images = prototypes[labels] + 0.3 * rng.standard_normal((256, 3, 8, 8)).astype(np.float32)
    data = mg.data.TensorDataset(mg.tensor(images), mg.tensor(labels))
    mg.manual_seed(0)
    model = _small_net().to(device)
    optimizer = mg.optim.Adam(model.parameters(), lr=3e-3)
    loader = mg.data.DataLoader(data, 32, shuffle=True, seed=0)
    history = fit(model, optimizer, nn.CrossEntropyLoss(), loader, mg.data.DataLoader(data, 64),
                  epochs=epochs, device=device, metric=mg.metrics.accuracy, progress=False,
                  out_dir=tmp_path, resume=resume, amp=amp)
    return history, model


@pytest.mark.parametrize("device", DEVICES)
def test_fit_with_amp_learns_as_float32_does_and_checkpoints_its_scaler(tmp_path, device):
    fp32, _ = _fit(tmp_path / "fp32", amp=False, device=device)
    amp, _ = _fit(tmp_path / "amp", amp=True, device=device)
    assert amp[-1]["val_metric"] > 0.9 and fp32[-1]["val_metric"] > 0.9
    assert abs(amp[-1]["train_loss"] - fp32[-1]["train_loss"]) < 0.1
    saved = mg.load(tmp_path / "amp" / "last.npz")["scaler"]
    assert saved["scale"] == 2.0**16 and saved["_growth_tracker"] == 16  # 2 epochs, 8 steps
    assert mg.load(tmp_path / "fp32" / "last.npz")["scaler"] is None


def test_fit_with_amp_resumes_with_the_scaler_where_it_was(tmp_path):
    _fit(tmp_path, amp=True, epochs=1)
    history, _ = _fit(tmp_path, amp=True, epochs=2, resume=True)
    assert len(history) == 2
    assert mg.load(tmp_path / "last.npz")["scaler"]["_growth_tracker"] == 16


def test_fit_refuses_a_scaler_without_amp():
    from minigrad.training import fit

    with pytest.raises(ValueError, match="scaler was given without amp=True"):
        fit(nn.Linear(1, 1), None, None, [], epochs=1, scaler=mg.amp.GradScaler())


@pytest.mark.skipif("cuda" not in DEVICES, reason="no cuda device, real or stand-in")
def test_autocast_on_cuda_runs_winograd_and_its_gemms_in_float16():
    import fake_cupy

    if not fake_cupy.installed:
        pytest.skip("counts the stand-in's GEMMs")
    fake_cupy.stats.reset()
    model = _small_net().to("cuda")
    with mg.autocast("cuda"):
        loss = F.cross_entropy(model(mg.randn(2, 3, 8, 8, device="cuda")),
                               mg.tensor([1, 2], device="cuda"))
    loss.backward()
    batched = {(dtype, p) for ndim, dtype, p in fake_cupy.stats.gemm_precisions if ndim == 3}
    assert batched == {("float16", "fp32")}  # float16 inputs, float32 sums
    assert "minigrad_winograd_input_f2" in fake_cupy.stats.kernels
    assert mg.cuda.amp.autocast().dtype == mg.float16


def test_a_no_grad_forward_inside_an_autocast_block_leaves_later_gradients_whole():
    net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    with mg.autocast("cpu"):
        with mg.no_grad():
            net(mg.randn(2, 4))  # an evaluation pass: its casts are outside the graph
        net(mg.randn(2, 4)).float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == mg.float32 for p in net.parameters())


def test_two_backward_passes_in_one_autocast_block_accumulate_as_torch_s_do():
    layer = nn.Linear(4, 3)
    x = mg.randn(2, 4)
    with mg.autocast("cpu"):
        layer(x).float().sum().backward()
        once = layer.weight.grad.numpy().copy()
        layer(x).float().sum().backward()
    np.testing.assert_allclose(layer.weight.grad.numpy(), 2 * once, rtol=1e-6)


def test_grad_scaler_refuses_a_second_step_and_an_update_without_one_as_torch_does():
    p = nn.Parameter(mg.ones(2))
    optimizer = mg.optim.SGD([p], lr=1.0)
    scaler = mg.amp.GradScaler("cpu")
    with pytest.raises(RuntimeError, match="no unscale_ or step was recorded"):
        scaler.update()
    scaler.scale((p * 2.0).sum()).backward()
    scaler.step(optimizer)
    with pytest.raises(RuntimeError, match="already called for this optimizer"):
        scaler.step(optimizer)
    scaler.update()
    scaler.update(new_scale=8.0)  # an explicit scale needs no step
    assert scaler.get_scale() == 8.0


def test_grad_scaler_unscale_checks_every_gradient_before_changing_any():
    full, half = nn.Parameter(mg.ones(2)), nn.Parameter(mg.ones(2, dtype=mg.float16))
    (full * 4.0).sum().backward()
    (half * 2.0).sum().backward()
    scaler = mg.amp.GradScaler("cpu")
    with pytest.raises(ValueError, match="float16 gradient"):
        scaler.unscale_(mg.optim.SGD([full, half], lr=1.0))
    np.testing.assert_array_equal(full.grad.numpy(), [4.0, 4.0])


def test_autocast_dtype_is_read_for_an_indexed_device_too():
    assert mg.amp.get_autocast_dtype("cuda:0") == mg.float16
    with mg.autocast("cuda"):
        assert mg.amp.is_autocast_enabled("cuda:0")
