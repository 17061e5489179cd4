"""Low-rank factorization (exact at full rank, Eckart-Young below it) and distillation
(Hinton et al.'s loss against torch, and a student trained through fit)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import requires_torch, torch

import minigrad as mg
from minigrad import compression, nn
from minigrad.data import DataLoader, TensorDataset


def test_a_linear_factorization_is_exact_at_full_rank_and_eckart_young_below():
    mg.manual_seed(0)
    layer = nn.Linear(9, 6).double()
    x = mg.tensor(np.random.default_rng(0).standard_normal((4, 9)))
    w = layer.weight.numpy()
    s = np.linalg.svd(w, compute_uv=False)
    for rank in range(1, 7):
        pair = compression.factorize(layer, rank)
        assert pair[0].weight.shape == (rank, 9) and pair[1].weight.shape == (6, rank)
        product = pair[1].weight.numpy() @ pair[0].weight.numpy()
        assert np.linalg.matrix_rank(product) == rank
        # the error is the energy of the dropped singular values: the least any rank-r has
        np.testing.assert_allclose(np.linalg.norm(w - product) ** 2, np.sum(s[rank:] ** 2),
                                   atol=1e-12)
        np.testing.assert_array_equal(pair[1].bias.numpy(), layer.bias.numpy())
    np.testing.assert_allclose(pair(x).numpy(), layer(x).numpy(), atol=1e-12)
    # any other rank-2 matrix is further: a random one, and the SVD's with a wrong vector
    best = compression.factorize(layer, 2)
    err = np.linalg.norm(w - best[1].weight.numpy() @ best[0].weight.numpy())
    u, _, vt = np.linalg.svd(w)
    other = u[:, [0, 2]] @ np.diag(s[[0, 2]]) @ vt[[0, 2]]
    assert err < np.linalg.norm(w - other)


def test_a_conv_factorization_keeps_stride_padding_dilation_and_is_exact_at_full_rank():
    mg.manual_seed(1)
    conv = nn.Conv2d(3, 5, (3, 2), stride=2, padding=(1, 2), dilation=(2, 1)).double()
    x = mg.tensor(np.random.default_rng(1).standard_normal((2, 3, 11, 10)))
    pair = compression.factorize(conv, 5)  # min(5, 3 * 3 * 2) = 5
    np.testing.assert_allclose(pair(x).numpy(), conv(x).numpy(), atol=1e-12)
    first, second = pair
    assert (first.kernel_size, first.stride, first.padding, first.dilation) == (
        (3, 2), (2, 2), (1, 2), (2, 1))
    assert second.kernel_size == (1, 1) and first.bias is None and second.bias is not None
    low = compression.factorize(conv, 2)
    assert sum(p.numel() for p in low.parameters()) == 2 * 18 + 5 * 2 + 5
    matrix = conv.weight.numpy().reshape(5, -1)
    s = np.linalg.svd(matrix, compute_uv=False)
    product = low[1].weight.numpy().reshape(5, 2) @ low[0].weight.numpy().reshape(2, -1)
    np.testing.assert_allclose(np.linalg.norm(matrix - product) ** 2, np.sum(s[2:] ** 2),
                               atol=1e-12)


def test_choose_rank_for_an_energy_or_a_size_and_factorize_model():
    rng = np.random.default_rng(2)
    layer = nn.Linear(40, 30)
    u, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    v, _ = np.linalg.qr(rng.standard_normal((40, 30)))
    s = 2.0 ** -np.arange(30)  # energies 1, 1/4, 1/16, ...: rank 1 holds 3/4 of it
    with mg.no_grad():
        layer.weight.copy_(mg.tensor((u * s) @ v.T, dtype=mg.float32))
    actual = np.linalg.svd(layer.weight.numpy().astype(np.float64), compute_uv=False)
    energy = np.cumsum(actual ** 2) / np.sum(actual ** 2)  # (float32 moves the tail)
    assert compression.choose_rank(layer, energy=0.7) == 1  # 3/4 of it in the first
    for target in (0.5, 0.7, 0.8, 0.95, 0.999, 1.0):  # (none at a boundary)
        expected = next(i + 1 for i, e in enumerate(energy) if e >= target - 1e-12)
        assert compression.choose_rank(layer, energy=target) == expected, target
    assert compression.choose_rank(layer, size=0.5) == (0.5 * 40 * 30) // 70  # 8 ranks
    model = nn.Sequential(nn.Linear(40, 40), nn.ReLU(), layer)
    x = mg.tensor(rng.standard_normal((3, 40)), dtype=mg.float32)
    before = model(x).numpy()
    replaced = compression.factorize_model(model, energy=0.999999, skip={"0"})
    assert list(replaced) == ["2"] and isinstance(model[2], nn.Sequential)
    # |error| per output <= sqrt(dropped energy) * |relu(h)|, energy dropped < 1e-6 of the total
    bound = np.sqrt(1e-6 * np.sum(actual ** 2)) * np.linalg.norm(
        np.maximum(model[0](x).numpy(), 0), axis=1, keepdims=True)
    assert (np.abs(model(x).numpy() - before) <= bound + 1e-6).all()
    assert sum(p.numel() for p in model[2].parameters()) < 40 * 30


def test_factorize_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"rank 7 is more than the full rank 6 of Linear"):
        compression.factorize(nn.Linear(9, 6), 7)
    with pytest.raises(ValueError, match="rank must be an integer >= 1"):
        compression.factorize(nn.Linear(9, 6), 0)
    with pytest.raises(ValueError, match="groups=2"):
        compression.factorize(nn.Conv2d(4, 4, 3, groups=2), 2)
    with pytest.raises(TypeError, match="expected an nn.Linear or nn.Conv2d, got ReLU"):
        compression.factorize(nn.ReLU(), 1)
    with pytest.raises(ValueError, match="give energy or size"):
        compression.choose_rank(nn.Linear(3, 3))
    with pytest.raises(ValueError, match=r"energy must be in \(0, 1\]"):
        compression.choose_rank(nn.Linear(3, 3), energy=1.5)


@requires_torch
@pytest.mark.parametrize("T, alpha", [(1.0, 0.5), (4.0, 0.9), (20.0, 1.0), (2.0, 0.0)])
def test_distillation_loss_and_its_gradient_as_hintons_written_in_torch(T, alpha):
    t = torch()
    F = t.nn.functional
    rng = np.random.default_rng(3)
    s, te = rng.standard_normal((6, 5)), 3 * rng.standard_normal((6, 5))
    y = rng.integers(0, 5, 6)
    theirs_s = t.tensor(s, requires_grad=True)
    soft = F.kl_div(F.log_softmax(theirs_s / T, 1), F.softmax(t.tensor(te) / T, 1),
                    reduction="batchmean")
    expected = alpha * T ** 2 * soft + (1 - alpha) * F.cross_entropy(theirs_s, t.tensor(y))
    expected.backward()
    ours_s, ours_t = mg.tensor(s, requires_grad=True), mg.tensor(te, requires_grad=True)
    loss = compression.distillation_loss(ours_s, ours_t, mg.tensor(y), T=T, alpha=alpha)
    loss.backward()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)
    np.testing.assert_allclose(ours_s.grad.numpy(), theirs_s.grad.numpy(), rtol=1e-10,
                               atol=1e-14)
    assert ours_t.grad is None  # the teacher learns nothing


def test_distillation_errors():
    a, y = mg.zeros(2, 3), mg.tensor([0, 1])
    with pytest.raises(ValueError, match="T must be > 0"):
        compression.distillation_loss(a, a, y, T=0)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        compression.DistillationLoss(alpha=2)
    with pytest.raises(ValueError, match=r"student logits of shape \(2, 3\) and teacher"):
        compression.distillation_loss(a, mg.zeros(2, 4), y)


def test_a_student_distils_from_a_frozen_teacher_through_fit(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((256, 8)).astype(np.float32)
    y = (x[:, :4].sum(1) > 0).astype(np.int64) + 2 * (x[:, 4] > 0)
    mg.manual_seed(4)
    teacher = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    optimizer = mg.optim.Adam(teacher.parameters(), lr=0.01)
    loader = DataLoader(TensorDataset(mg.tensor(x), mg.tensor(y)), 32, shuffle=True, seed=0)
    mg.training.fit(teacher, optimizer, nn.CrossEntropyLoss(), loader, epochs=5,
                    progress=False)
    frozen = {k: np.array(v) for k, v in teacher.state_dict().items()}
    student = nn.Sequential(nn.Linear(8, 4))
    model = compression.Distiller(student, teacher)
    history = mg.training.fit(
        model, mg.optim.Adam(student.parameters(), lr=0.02),
        compression.DistillationLoss(T=3.0, alpha=0.7), loader, loader, epochs=4,
        metric=mg.metrics.accuracy, out_dir=tmp_path, progress=False)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_metric"] > 0.6
    assert all(np.array_equal(np.asarray(v), frozen[k])
               for k, v in teacher.state_dict().items())
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    model.eval()
    out = model(mg.tensor(x[:3]))
    assert isinstance(out, mg.Tensor) and out.shape == (3, 4)  # eval: the student's logits
    assert (tmp_path / "last.npz").is_file()
