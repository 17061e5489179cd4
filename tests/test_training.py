"""The fit loop: learning, its files, resuming exactly, early stopping."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from helpers import DEVICES

import minigrad as mg
import minigrad.nn as nn
from minigrad.data import DataLoader, TensorDataset
from minigrad.metrics import accuracy
from minigrad.training import fit


def circle_data(n: int, seed: int):
    """Points in [-2, 2)^2, labelled by whether they lie inside the unit circle."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(-2, 2, (n, 2)).astype(np.float32)
    return TensorDataset(points, ((points**2).sum(1) < 1).astype(np.int64))


def make_run(seed: int = 0):
    mg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 2))
    optimizer = mg.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    scheduler = mg.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    train = DataLoader(circle_data(256, 1), 32, shuffle=True, seed=seed)
    val = DataLoader(circle_data(128, 2), 64)
    return model, optimizer, scheduler, train, val


def run(out, epochs, resume=False, patience=None, metric=accuracy):
    model, optimizer, scheduler, train, val = make_run()
    history = fit(model, optimizer, nn.CrossEntropyLoss(), train, val, epochs=epochs,
                  metric=metric, metric_name="accuracy", scheduler=scheduler, out_dir=out,
                  resume=resume, patience=patience, progress=False)
    return model, history


def test_fit_learns_and_writes_history_curves_and_checkpoints(tmp_path):
    model, history = run(tmp_path, epochs=6)
    assert len(history) == 6
    assert history[-1]["train_loss"] < 0.6 * history[0]["train_loss"]
    assert history[-1]["val_metric"] > 0.85
    assert [r["lr"] for r in history] == [0.3, 0.3, 0.15, 0.15, 0.075, 0.075]
    assert json.loads((tmp_path / "history.json").read_text()) == history
    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert [float(r["val_metric"]) for r in rows] == [r["val_metric"] for r in history]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    checkpoint = mg.load(tmp_path / "last.npz")
    assert checkpoint["epoch"] == 5 and set(checkpoint["model"]) == set(model.state_dict())
    best_epoch = int(np.argmax([r["val_metric"] for r in history]))
    assert mg.load(tmp_path / "best.npz").keys() == model.state_dict().keys()
    assert history[best_epoch]["val_metric"] == max(r["val_metric"] for r in history)


def test_resume_after_an_interruption_ends_where_an_uninterrupted_run_ends(tmp_path):
    straight, straight_history = run(tmp_path / "straight", epochs=5)
    run(tmp_path / "interrupted", epochs=2)  # stops after epoch 2, as if killed
    resumed, resumed_history = run(tmp_path / "interrupted", epochs=5, resume=True)
    for name, value in straight.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[name], value, err_msg=name)
    drop_time = [{k: v for k, v in r.items() if k != "seconds"} for r in straight_history]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed_history] == drop_time


def test_early_stopping_stops_after_patience_epochs_without_improvement(tmp_path, capsys):
    _, history = run(tmp_path, epochs=10, patience=2, metric=lambda outputs, targets: 0.5)
    assert len(history) == 3  # epoch 1 sets the best; epochs 2 and 3 do not beat it
    assert "early stopping" in capsys.readouterr().out


def test_fit_without_validation_still_trains(tmp_path):
    model, optimizer, _, train, _ = make_run()
    history = fit(model, optimizer, nn.CrossEntropyLoss(), train, epochs=2, progress=False)
    assert history[1]["val_loss"] is None and history[1]["train_loss"] < history[0]["train_loss"]


def test_progress_bar_shows_loss_and_throughput(capsys):
    model, optimizer, _, train, _ = make_run()
    fit(model, optimizer, nn.CrossEntropyLoss(), train, epochs=1, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "img_s=" in err


@pytest.mark.parametrize("device", [d for d in DEVICES if d != "cpu"])
def test_fit_on_the_gpu_gives_the_cpu_s_result(tmp_path, device):
    """Model, batches, loss and optimizer state on the device; the same numbers as on cpu."""
    results = []
    for where in ("cpu", device):
        mg.manual_seed(0)  # (no dropout: the two devices' generators draw differently)
        model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2)).to(where)
        optimizer = mg.optim.Adam(model.parameters(), lr=0.01)
        train = DataLoader(circle_data(128, 1), 32, shuffle=True, seed=0, device=where)
        val = DataLoader(circle_data(64, 2), 64, device=where)
        history = fit(model, optimizer, nn.CrossEntropyLoss(), train, val, epochs=2,
                      device=where, metric=accuracy, progress=False)
        assert all(p.device == where for p in model.parameters())
        assert all(v["exp_avg"].__class__ is model[0].weight.array.__class__
                   for v in optimizer.state.values())
        results.append((history, model.state_dict()))
    (cpu_history, cpu_state), (gpu_history, gpu_state) = results
    for a, b in zip(cpu_history, gpu_history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_metric"] == b["val_metric"]
    for name in cpu_state:
        np.testing.assert_allclose(cpu_state[name], gpu_state[name], rtol=1e-4, atol=1e-6)


def test_two_fits_in_two_threads_both_train():
    """Grad mode is per thread: one fit's evaluation (under no_grad) no longer switches
    gradients off for the other's training."""
    import threading

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    dataset = mg.data.TensorDataset(mg.tensor(x), mg.tensor(y))
    histories, errors = {}, []

    def train(name):
        try:
            model = mg.nn.Sequential(mg.nn.Linear(4, 8), mg.nn.ReLU(), mg.nn.Linear(8, 2))
            optimizer = mg.optim.SGD(model.parameters(), lr=0.2)
            loader = mg.data.DataLoader(dataset, batch_size=8, shuffle=True, seed=1)
            val = mg.data.DataLoader(dataset, batch_size=32)
            histories[name] = mg.training.fit(model, optimizer, mg.nn.CrossEntropyLoss(),
                                              loader, val, epochs=6, progress=False)
        except Exception as error:  # reported below, in the test's own thread
            errors.append(error)

    threads = [threading.Thread(target=train, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert set(histories) == {"a", "b"} and all(len(h) == 6 for h in histories.values())
    for history in histories.values():
        assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
