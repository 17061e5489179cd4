"""int8 quantization: the scales, the exact integer product, dynamic and static layers against
the same quantization simulated in float, fusion, calibration and int8 checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad import quantization as Q
from minigrad.nn import functional as F


def test_weights_per_channel_and_activations_affine_round_trip_within_half_a_step():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 3, 3, 3)) * np.array([0.01, 0.1, 1, 10, 100])[:, None, None,
                                                                             None]
    q, scale = Q.weight_qparams(w)
    assert q.dtype == np.int8 and scale.shape == (5,)
    np.testing.assert_allclose(scale, np.abs(w).reshape(5, -1).max(1) / 127)
    back = q * scale[:, None, None, None]
    assert (np.abs(back - w) <= scale[:, None, None, None] / 2 + 1e-12).all()
    assert np.abs(q).max() == 127
    for lo, hi in [(-1.0, 3.0), (0.5, 2.0), (-4.0, -1.0), (0.0, 0.0)]:
        s, zp = Q.activation_qparams(lo, hi)
        assert 0 <= zp <= 255 and Q.dequantize(Q.quantize(np.zeros(1), s, zp), s, zp)[0] == 0
        x = np.linspace(min(lo, 0), max(hi, 0), 50)
        assert (np.abs(Q.dequantize(Q.quantize(x, s, zp), s, zp) - x) <= s / 2 + 1e-12).all()


def test_the_integer_product_is_exact():
    rng = np.random.default_rng(1)
    a = rng.integers(-255, 256, (7, 20_000)).astype(np.int16)  # uint8 codes minus a zero point
    b = rng.integers(-127, 128, (20_000, 5)).astype(np.int8)
    exact = a.astype(np.int64) @ b.astype(np.int64)
    np.testing.assert_array_equal(Q.integer_matmul(a, b), exact.astype(np.float64))


def _fake_quant_linear(x, weight, bias):
    """What the dynamic layer computes, simulated in float64: both operands rounded to their
    grids, then an ordinary product."""
    s, zp = Q.activation_qparams(x.min(), x.max())
    xq = Q.dequantize(Q.quantize(x, s, zp), s, zp)
    q, scale = Q.weight_qparams(weight)
    return xq @ (q * scale[:, None]).T + bias


def test_dynamic_linear_is_the_rounded_product_and_close_to_float():
    mg.manual_seed(2)
    model = nn.Sequential(nn.Linear(30, 20), nn.ReLU(), nn.Linear(20, 4))
    x = mg.randn(16, 30)
    quantized = Q.quantize_dynamic(model, {nn.Linear}, dtype=mg.qint8)
    assert isinstance(model[0], nn.Linear)  # a copy: the model is left as it was
    assert isinstance(quantized[0], Q.DynamicQuantizedLinear) and not quantized.training
    h = _fake_quant_linear(x.numpy().astype(np.float64), model[0].weight.numpy(),
                           model[0].bias.numpy())
    np.testing.assert_allclose(quantized[0](x).numpy(), h, rtol=1e-5, atol=1e-5)
    out, expected = quantized(x).numpy(), model(x).numpy()
    assert np.abs(out - expected).max() < 0.02 * np.abs(expected).max()
    assert not np.array_equal(out, expected)  # it is rounded
    with pytest.raises(NotImplementedError, match="Conv2d cannot be quantized dynamically"):
        Q.quantize_dynamic(model, {nn.Conv2d})
    with pytest.raises(ValueError, match="minigrad quantizes to minigrad.qint8"):
        Q.quantize_dynamic(model, dtype=mg.quint8)


def test_fusing_folds_batch_norm_exactly_and_refuses_other_patterns():
    mg.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                          nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5), nn.ReLU()).double()
    with mg.no_grad():
        model[1].running_mean.copy_(mg.randn(4, dtype=mg.float64))
        model[1].running_var.copy_(mg.rand(4, dtype=mg.float64) + 0.5)
        model[1].weight.copy_(mg.randn(4, dtype=mg.float64))
        model[1].bias.copy_(mg.randn(4, dtype=mg.float64))
    model.eval()
    x = mg.randn(2, 3, 6, 6, dtype=mg.float64)
    fused = Q.fuse_modules(model, [["0", "1", "2"], ["4", "5"]])
    assert isinstance(fused[0], Q.ConvReLU2d) and isinstance(fused[1], nn.Identity)
    assert isinstance(fused[4], Q.LinearReLU) and isinstance(model[1], nn.BatchNorm2d)
    np.testing.assert_allclose(fused(x).numpy(), model(x).numpy(), atol=1e-12)
    with pytest.raises(ValueError, match=r"cannot fuse \['ReLU', 'Flatten'\]"):
        Q.fuse_modules(model, ["2", "3"])


def test_static_layers_compute_the_rounded_conv_and_linear_with_calibrated_scales():
    mg.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1, dilation=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(3 * 4 * 4, 6))
    model.eval()
    fused = Q.fuse_modules(model, ["0", "1"])
    prepared = Q.prepare(fused)
    with pytest.raises(RuntimeError, match="no data was observed"):
        Q.convert(prepared)
    rng = np.random.default_rng(4)
    calibration = [mg.tensor(rng.standard_normal((8, 2, 8, 8)), dtype=mg.float32)
                   for _ in range(3)]
    for batch in calibration:
        prepared(batch)
    observer = prepared[0].input_observer
    assert observer.min_val.item() == min(b.numpy().min() for b in calibration)
    quantized = Q.convert(prepared)
    assert isinstance(quantized[0], Q.QuantizedLayer) and isinstance(quantized[3],
                                                                      Q.QuantizedLayer)
    x = calibration[0]
    # the conv layer against the same rounding simulated with F.conv2d in float64
    conv = model[0]
    s_in, zp_in = observer.calculate_qparams()
    xq = Q.dequantize(Q.quantize(x.numpy(), s_in, zp_in), s_in, zp_in)
    q, scale = Q.weight_qparams(conv.weight.numpy())
    y = F.conv2d(mg.tensor(xq), mg.tensor(q * scale[:, None, None, None]),
                 mg.tensor(conv.bias.numpy().astype(np.float64)), stride=2, padding=1).numpy()
    s_out, zp_out = prepared[0].output_observer.calculate_qparams()
    codes = np.maximum(Q.quantize(y, s_out, zp_out), zp_out)
    got = quantized[0](x).numpy()
    np.testing.assert_allclose(got, Q.dequantize(codes, s_out, zp_out), atol=1e-6)
    assert (got >= 0).all()  # the fused ReLU
    out, expected = quantized(x).numpy(), model(x).numpy()
    assert np.abs(out - expected).max() < 0.05 * np.abs(expected).max()
    with pytest.raises(ValueError, match="no observed layers"):
        Q.convert(model)


def test_a_quantized_model_saves_about_4x_smaller_and_loads_back(tmp_path):
    mg.manual_seed(5)
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    quantized = Q.quantize_dynamic(model)
    mg.save(model.state_dict(), tmp_path / "float.npz")
    mg.save(quantized.state_dict(), tmp_path / "int8.npz")
    ratio = (tmp_path / "int8.npz").stat().st_size / (tmp_path / "float.npz").stat().st_size
    assert ratio < 0.3, ratio
    state = mg.load(tmp_path / "int8.npz")
    assert state["0.weight_int8"].dtype == np.int8
    fresh = Q.quantize_dynamic(nn.Sequential(nn.Linear(256, 256), nn.ReLU(),
                                             nn.Linear(256, 10)))
    fresh.load_state_dict(state)
    x = mg.randn(4, 256)
    np.testing.assert_array_equal(fresh(x).numpy(), quantized(x).numpy())


def _fake_quant_lstm(x, lstm):
    """A one-layer LSTM with both products rounded as the dynamic layer rounds them, in
    float64 with NumPy (gates i, f, g, o)."""
    def product(a, w, b):
        s, zp = Q.activation_qparams(a.min(), a.max())
        q, scale = Q.weight_qparams(w)
        return Q.dequantize(Q.quantize(a, s, zp), s, zp) @ (q * scale[:, None]).T + b

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    w_ih, w_hh, b_ih, b_hh = (getattr(lstm, n).numpy().astype(np.float64) for n in (
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    steps, batch, _ = x.shape
    hidden = lstm.hidden_size
    parts = product(x.reshape(steps * batch, -1), w_ih, b_ih).reshape(steps, batch, -1)
    h, c, out = np.zeros((batch, hidden)), np.zeros((batch, hidden)), []
    for t in range(steps):
        g = parts[t] + product(h, w_hh, b_hh)
        i, f = sigmoid(g[:, :hidden]), sigmoid(g[:, hidden:2 * hidden])
        c = f * c + i * np.tanh(g[:, 2 * hidden:3 * hidden])
        h = sigmoid(g[:, 3 * hidden:]) * np.tanh(c)
        out.append(h)
    return np.stack(out)


def test_dynamic_recurrent_layers_round_both_products_at_every_step():
    mg.manual_seed(6)
    lstm = nn.LSTM(5, 6).double()
    x = mg.randn(9, 3, 5, dtype=mg.float64)
    quantized = Q.quantize_dynamic(lstm, {nn.LSTM})
    assert isinstance(quantized, Q.DynamicQuantizedRNN)
    out, (h, c) = quantized(x)
    np.testing.assert_allclose(out.numpy(), _fake_quant_lstm(x.numpy(), lstm), atol=1e-10)
    np.testing.assert_allclose(h.numpy()[0], out.numpy()[-1])
    for kind, kwargs in [(nn.LSTM, dict(num_layers=2, batch_first=True)),
                         (nn.GRU, dict(bidirectional=True)), (nn.RNN, {})]:
        model = nn.Sequential(kind(5, 8, **kwargs))
        q = Q.quantize_dynamic(model, {kind})
        x = mg.randn(3, 7, 5)
        (a, state_a), (b, state_b) = model[0](x), q[0](x)
        assert a.shape == b.shape and not np.array_equal(a.numpy(), b.numpy())
        assert np.abs(a.numpy() - b.numpy()).max() < 0.03 * np.abs(a.numpy()).max()
        first = state_a[0] if kind is nn.LSTM else state_a
        second = state_b[0] if kind is nn.LSTM else state_b
        assert first.shape == second.shape
    packed = mg.nn.utils.rnn.pack_padded_sequence(mg.randn(4, 2, 5), [4, 2])
    with pytest.raises(NotImplementedError, match="PackedSequence is not supported"):
        quantized(packed)
