"""The fit loop: learning, its files, resuming exactly, early stopping."""

from __future__ import annotations

import csv
import json
import os
import signal

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
    assert [float(r["val_accuracy"]) for r in rows] == [r["val_metric"] for r in history]
    assert list(rows[0]) == ["epoch", "train_loss", "val_loss", "val_accuracy", "lr", "seconds",
                             "skipped_batches"]
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


# --- never silently wrong: NaN losses (issue 12) --------------------------------------------


class PoisonedLoss:
    """Cross-entropy, NaN (or inf) on the training calls numbered in `bad` (1-based)."""

    def __init__(self, bad, value=float("nan")):
        self.calls, self.bad, self.value, self.base = 0, set(bad), value, nn.CrossEntropyLoss()

    def __call__(self, outputs, targets):
        loss = self.base(outputs, targets)
        if outputs.requires_grad:  # a training step (evaluation runs under no_grad)
            self.calls += 1
            if self.calls in self.bad:
                return loss * self.value
        return loss


def fit_poisoned(out, loss_fn, epochs=3, metric=accuracy, patience=None, device="cpu",
                 **kwargs):
    model, optimizer, scheduler, train, val = make_run()
    model.to(device)
    train = DataLoader(circle_data(256, 1), 32, shuffle=True, seed=0, device=device)
    val = DataLoader(circle_data(128, 2), 64, device=device)
    return model, fit(model, optimizer, loss_fn, train, val, epochs=epochs, metric=metric,
                      metric_name="accuracy", scheduler=scheduler, out_dir=out,
                      patience=patience, progress=False, device=device, **kwargs)


@pytest.mark.parametrize("metric, patience", [(accuracy, None), (None, None), (accuracy, 1)])
@pytest.mark.parametrize("device", DEVICES)
def test_a_nan_loss_stops_fit_naming_epoch_and_step_and_leaves_the_files_alone(
        tmp_path, metric, patience, device):
    fit_poisoned(tmp_path, PoisonedLoss(()), epochs=1, metric=metric, device=device)
    files = {name: (tmp_path / name).read_bytes() for name in
             ("last.npz", "best.npz", "history.json", "history.csv")}
    with pytest.raises(mg.training.NonFiniteLossError) as caught:
        # resumed after epoch 1, so training call 4 is epoch 2's step 3
        fit_poisoned(tmp_path, PoisonedLoss({4}), metric=metric, patience=patience,
                     device=device, resume=True)
    message = str(caught.value)
    assert "the training loss is nan at epoch 2/3, step 3 (batch 4)" in message
    assert "lower learning rate" in message and "clip_grad_norm_" in message
    assert "skip_nonfinite=True" in message and str(tmp_path) in message
    for name, content in files.items():
        assert (tmp_path / name).read_bytes() == content, name


def test_an_infinite_loss_without_out_dir_is_caught_too():
    with pytest.raises(mg.training.NonFiniteLossError, match="loss is inf at epoch 1/3, "
                                                             "step 0 .*no files were written"):
        fit_poisoned(None, PoisonedLoss({1}, value=float("inf")))


def test_skip_nonfinite_skips_bad_batches_counts_and_reports_them(tmp_path, capsys):
    model, history = fit_poisoned(tmp_path, PoisonedLoss({2, 12, 13}), skip_nonfinite=True)
    assert [r["skipped_batches"] for r in history] == [1, 2, 0]
    assert "epoch 2: skipped 2 batch(es) with a NaN or infinite loss (steps 3, 4)" in (
        capsys.readouterr().out)
    assert all(np.isfinite(v).all() for v in model.state_dict().values())
    assert history[-1]["val_metric"] > 0.8
    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert [r["skipped_batches"] for r in rows] == ["1", "2", "0"]
    with pytest.raises(mg.training.NonFiniteLossError, match="every batch of epoch 1"):
        fit_poisoned(tmp_path / "all", PoisonedLoss(range(1, 9)), skip_nonfinite=True)


class NanWhenEvaluating(nn.Module):
    def forward(self, x):
        return x if self.training else x * float("nan")


def test_a_model_that_gives_nan_outputs_stops_at_validation(tmp_path):
    model, optimizer, _, train, val = make_run()
    model.append(NanWhenEvaluating())
    with pytest.raises(mg.training.NonFiniteLossError, match="validation loss is nan after "
                                                             "epoch 1"):
        fit(model, optimizer, nn.CrossEntropyLoss(), train, val, epochs=2, metric=accuracy,
            out_dir=tmp_path, progress=False)
    assert not (tmp_path / "best.npz").exists() and not (tmp_path / "last.npz").exists()


def test_history_json_is_strict_json_and_written_after_the_checkpoint(tmp_path, monkeypatch):
    def reject(constant):
        raise ValueError(f"not strict JSON: {constant}")

    _, history = fit_poisoned(tmp_path, PoisonedLoss(()), epochs=1,
                              metric=lambda outputs, targets: float("nan"))
    assert np.isnan(history[0]["val_metric"])
    records = json.loads((tmp_path / "history.json").read_text(), parse_constant=reject)
    assert records[0]["val_metric"] is None and records[0]["train_loss"] > 0
    # a save that fails in epoch 2: history.json still lists only the saved epoch 1
    saves = []

    def failing_save(obj, path):
        saves.append(path)
        if len(saves) > 2:  # epoch 1 wrote best.npz and last.npz
            raise OSError("disk full")
        return real_save(obj, path)

    real_save = mg.training.save
    monkeypatch.setattr(mg.training, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        fit_poisoned(tmp_path / "full", PoisonedLoss(()), epochs=2)
    assert [r["epoch"] for r in json.loads((tmp_path / "full" / "history.json").read_text())] \
        == [1]


# --- Ctrl-C, resuming and extending a run (issue 13) ----------------------------------------


class CtrlCAt:
    """Cross-entropy that presses Ctrl-C (sends SIGINT to this process) during its training
    call number `at` (1-based), or during evaluation call number `at_eval`."""

    def __init__(self, at=None, at_eval=None, times=1):
        self.train_calls = self.eval_calls = 0
        self.at, self.at_eval, self.times, self.base = at, at_eval, times, nn.CrossEntropyLoss()

    def __call__(self, outputs, targets):
        if outputs.requires_grad:
            self.train_calls += 1
            if self.train_calls == self.at:
                for _ in range(self.times):
                    os.kill(os.getpid(), signal.SIGINT)
        else:
            self.eval_calls += 1
            if self.eval_calls == self.at_eval:
                os.kill(os.getpid(), signal.SIGINT)
        return self.base(outputs, targets)


def run_with(out, loss_fn, epochs=3, resume=False, schedule="step"):
    model, optimizer, scheduler, train, val = make_run()
    if schedule == "cosine":
        scheduler = mg.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    history = fit(model, optimizer, loss_fn, train, val, epochs=epochs, metric=accuracy,
                  metric_name="accuracy", scheduler=scheduler, out_dir=out, resume=resume,
                  progress=False)
    return model, history


def _without_time(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


@pytest.mark.parametrize("where", [dict(at=11), dict(at_eval=1), dict(at=8)])
def test_ctrl_c_saves_the_step_it_stopped_at_and_resume_ends_bit_identical(tmp_path, where,
                                                                           capsys):
    straight, straight_history = run_with(tmp_path / "straight", nn.CrossEntropyLoss())
    with pytest.raises(mg.training.TrainingInterrupted) as caught:
        run_with(tmp_path / "cut", CtrlCAt(**where))
    stop = caught.value
    assert stop.checkpoint == tmp_path / "cut" / "last.npz" and stop.checkpoint.is_file()
    assert "interrupted in epoch" in str(stop) and "saved" in str(stop)
    assert "Ctrl-C: stopping after this step" in capsys.readouterr().err
    saved = mg.load(stop.checkpoint)
    if "at" in where:  # 8 batches per epoch: call 11 is epoch 2's third step
        assert (stop.epoch, stop.step) == ((where["at"] - 1) // 8 + 1, (where["at"] - 1) % 8 + 1)
        assert saved["position"]["batch"] == stop.step
    resumed, resumed_history = run_with(tmp_path / "cut", nn.CrossEntropyLoss(), resume=True)
    assert "resuming from" in capsys.readouterr().out
    for name, value in straight.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[name], value, err_msg=name)
    assert _without_time(resumed_history) == _without_time(straight_history)


def test_a_second_ctrl_c_stops_at_once(tmp_path):
    with pytest.raises(KeyboardInterrupt) as caught:
        run_with(tmp_path, CtrlCAt(at=3, times=2))
    assert not isinstance(caught.value, mg.training.TrainingInterrupted)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler put back


def test_resume_without_a_checkpoint_says_so_and_starts_fresh(tmp_path, capsys):
    _, history = run_with(tmp_path, nn.CrossEntropyLoss(), epochs=1, resume=True)
    assert f"no checkpoint to resume from at {tmp_path / 'last.npz'}: starting from scratch" \
        in capsys.readouterr().out
    assert len(history) == 1 and history.trained == 1


def test_extending_a_finished_run_stretches_its_cosine_schedule(tmp_path, capsys):
    _, six = run_with(tmp_path, nn.CrossEntropyLoss(), epochs=6, schedule="cosine")
    assert six[-1]["lr"] == pytest.approx(0.3 * (1 + np.cos(np.pi * 5 / 6)) / 2)
    _, again = run_with(tmp_path, nn.CrossEntropyLoss(), epochs=6, resume=True,
                        schedule="cosine")
    assert again.trained == 0 and "already holds all 6 epochs: nothing to train" in (
        capsys.readouterr().out)
    _, eight = run_with(tmp_path, nn.CrossEntropyLoss(), epochs=8, resume=True,
                        schedule="cosine")
    out = capsys.readouterr().out
    assert "planned for 6 epochs and now goes to 8" in out and "T_max 6 -> 8" in out
    assert eight.trained == 2 and len(eight) == 8
    assert [r["lr"] for r in eight[6:]] == pytest.approx(
        [0.3 * (1 + np.cos(np.pi * e / 8)) / 2 for e in (6, 7)])
    assert eight[6]["lr"] > 0.04  # before: epoch 7 ran at lr 0


def test_data_loader_set_epoch_can_start_mid_epoch():
    loader = DataLoader(circle_data(40, 0), 8, shuffle=True, seed=3)
    loader.set_epoch(2)
    whole = [x.numpy() for x, _ in loader]
    loader.set_epoch(2, start_batch=3)
    tail = [x.numpy() for x, _ in loader]
    assert len(tail) == 2 and all((a == b).all() for a, b in zip(tail, whole[3:]))
    assert len([x for x, _ in loader]) == 5  # the start applies to one iteration only
    with pytest.raises(ValueError, match="start_batch must be an integer >= 0"):
        loader.set_epoch(0, start_batch=-1)


def test_a_test_set_is_named_test_in_the_printout_the_csv_and_the_plot(tmp_path, capsys,
                                                                        monkeypatch):
    import matplotlib.figure

    figures = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda figure, *args, **kwargs: figures.append(figure))
    model, optimizer, _, train, val = make_run()
    fit(model, optimizer, nn.CrossEntropyLoss(), train, val, epochs=2, metric=accuracy,
        metric_name="accuracy", out_dir=tmp_path, progress=False, val_label="test")
    assert "| test loss " in capsys.readouterr().out
    header = (tmp_path / "history.csv").read_text().splitlines()[0]
    assert header == "epoch,train_loss,test_loss,test_accuracy,lr,seconds,skipped_batches"
    losses, scores = figures[-1].axes
    assert scores.get_title() == "test accuracy"
    assert [t.get_text() for t in losses.get_legend().get_texts()] == ["train", "test"]
    for axes in (losses, scores):  # whole epochs only, even for a 2-epoch run
        ticks = [t for t in axes.get_xticks() if 1 <= t <= 2]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
