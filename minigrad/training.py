"""`fit`: the training loop the examples share, small enough to read in one sitting.

Per epoch: train over the loader (a tqdm progress bar shows the loss and images/s), evaluate
on the validation loader (loss and a metric), step the scheduler, record the epoch in the
history (JSON and CSV), redraw the learning curves (PNG, when matplotlib is installed), and
write a checkpoint (model, optimizer, scheduler, epoch, history, random state) with
`minigrad.save`. `resume=True` continues from that checkpoint and ends exactly where an
uninterrupted run would. Early stopping watches the validation metric (higher is better) or,
without a metric, the validation loss; the best model is saved as best.npz.

A NaN or infinite loss stops training with NonFiniteLossError naming the epoch and step, and
leaves the files as the last good epoch wrote them (`skip_nonfinite=True` skips such batches
instead, counting them). On a GPU the check costs no extra wait: a flag stays on the device
and is read with the loss the progress bar reads anyway (every `log_every` steps).
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from minigrad import backend
from minigrad.autograd import no_grad
from minigrad.nn.module import Module
from minigrad.optim.lr_scheduler import ReduceLROnPlateau
from minigrad.serialization import atomic_write_text, load, save
from minigrad.tensor import Tensor

HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "val_metric", "lr", "seconds",
                  "skipped_batches")
WAYS_OUT = ("Ways out: a lower learning rate; gradient clipping "
            "(minigrad.nn.utils.clip_grad_norm_(model.parameters(), 1.0) before "
            "optimizer.step()); inputs checked for NaN or inf; or fit(..., skip_nonfinite=True) "
            "to skip such batches (they are counted and reported).")


class NonFiniteLossError(FloatingPointError):
    """A training or validation loss became NaN or infinite."""


class _FirstNonFinite:
    """The first step whose loss is NaN or infinite, and that loss, kept where the loss lives:
    on a GPU each step adds to a flag there instead of waiting to read the loss back."""

    def __init__(self):
        self.step = self.value = None

    def update(self, loss: Tensor, step: int) -> None:
        xp = backend.get_array_module(loss.array)
        bad = ~xp.isfinite(loss.array)
        if self.step is None:
            self.step, self.value = xp.where(bad, step, -1), loss.array.copy()
        else:
            first = bad & (self.step < 0)
            self.step = xp.where(first, step, self.step)
            self.value = xp.where(first, loss.array, self.value)

    def raise_if_found(self, where: str) -> None:
        """Read the flag (one host read) and raise if a step went bad."""
        if self.step is not None and int(self.step) >= 0:
            step = int(self.step)
            raise NonFiniteLossError(f"the training loss is {float(self.value)} at {where}, step "
                                     f"{step} (batch {step + 1})")


def _as_tensor(batch, device) -> Tensor:
    return batch.to(device) if isinstance(batch, Tensor) else Tensor(np.asarray(batch)).to(device)


def train_one_epoch(model: Module, loader, loss_fn: Callable, optimizer, device,
                    progress: bool = True, description: str = "", log_every: int = 20, *,
                    skip_nonfinite: bool = False, skipped: list | None = None) -> float:
    """One pass over `loader`; returns the mean training loss per sample.

    The loss is summed where it lives (on the GPU for device="cuda") and read back to the host
    only every `log_every` batches, for the progress bar and the check that no loss was NaN
    or infinite, and at the end: reading it after every step would make each step wait for
    the GPU. A non-finite loss raises NonFiniteLossError (on the CPU before that step's
    update; on a GPU at the next read, so the model in memory may hold up to `log_every`
    bad updates). With skip_nonfinite=True such a batch is skipped instead (no update) and
    its step number appended to `skipped`; that reads each step's loss, so each step waits.
    """
    model.train()
    total, count, start = None, 0, time.perf_counter()
    watch, on_cpu = _FirstNonFinite(), backend.Device(device).type == "cpu"
    bar = _progress(loader, progress, description)
    for batch, (images, targets) in enumerate(bar):
        images, targets = _as_tensor(images, device), _as_tensor(targets, device)
        loss = loss_fn(model(images), targets)
        if skip_nonfinite:
            if not math.isfinite(loss.item()):
                if skipped is not None:
                    skipped.append(batch)
                continue
        else:
            watch.update(loss.detach(), batch)
            if on_cpu:
                watch.raise_if_found(description)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        weighted = loss.detach() * len(images)
        total = weighted if total is None else total + weighted
        count += len(images)
        if batch % log_every == 0:
            watch.raise_if_found(description)
            if progress:
                bar.set_postfix(loss=f"{total.item() / count:.4f}",
                                img_s=f"{count / (time.perf_counter() - start):.0f}")
    watch.raise_if_found(description)
    return total.item() / count if count else math.nan


@no_grad()
def evaluate(model: Module, loader, loss_fn: Callable, device):
    """(mean loss, all outputs, all targets) of `model` in eval mode over `loader`."""
    model.eval()
    total, count, outputs, targets = None, 0, [], []
    for images, batch_targets in loader:
        images, batch_targets = _as_tensor(images, device), _as_tensor(batch_targets, device)
        output = model(images)
        weighted = loss_fn(output, batch_targets) * len(images)
        total = weighted if total is None else total + weighted
        count += len(images)
        outputs.append(output.numpy())  # the metric is computed on the host, once per epoch
        targets.append(batch_targets.numpy())
    return total.item() / count, np.concatenate(outputs), np.concatenate(targets)


def fit(model: Module, optimizer, loss_fn: Callable, train_loader, val_loader=None, *,
        epochs: int, device="cpu", metric: Callable | None = None, metric_name: str = "metric",
        scheduler=None, out_dir=None, resume: bool = False, patience: int | None = None,
        on_validation: Callable | None = None, progress: bool = True,
        skip_nonfinite: bool = False) -> list[dict]:
    """Train `model` for `epochs` epochs and return the history (one dict per epoch).

    metric(outputs, targets) -> float, higher is better (accuracy, mAP), on the validation set.
    out_dir: where history.json/.csv, curves.png, last.npz and best.npz go.
    resume: continue from out_dir/last.npz if it exists.
    patience: stop after this many epochs without a better validation score.
    on_validation(outputs, targets): called after each evaluation (e.g. to print per-class AP).
    skip_nonfinite: skip batches whose loss is NaN or infinite (counted in the history's
    skipped_batches and reported) instead of stopping with NonFiniteLossError.
    """
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    history: list[dict] = []
    best, bad_epochs, start_epoch = -np.inf, 0, 0
    if resume and out is not None and (out / "last.npz").exists():
        state = load(out / "last.npz")
        model.load_state_dict(state["model"])
        model.to(device)
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        backend.generator("cpu").bit_generator.state = state["rng"]
        history, best, bad_epochs = state["history"], state["best"], state["bad_epochs"]
        start_epoch = state["epoch"] + 1
        print(f"resuming from {out / 'last.npz'} after epoch {start_epoch}")

    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        skipped: list[int] = []
        try:
            train_loss = train_one_epoch(model, train_loader, loss_fn, optimizer, device,
                                         progress, f"epoch {epoch + 1}/{epochs}",
                                         skip_nonfinite=skip_nonfinite, skipped=skipped)
        except NonFiniteLossError as error:
            raise NonFiniteLossError(f"fit: {error}. Training stopped; "
                                     f"{_files_left(out)} {WAYS_OUT}") from None
        if skipped:
            print(f"epoch {epoch + 1}: skipped {len(skipped)} batch(es) with a NaN or infinite "
                  f"loss (steps {', '.join(map(str, skipped[:10]))}"
                  f"{', ...' if len(skipped) > 10 else ''})", flush=True)
            if math.isnan(train_loss):
                raise NonFiniteLossError(f"fit: every batch of epoch {epoch + 1} had a NaN or "
                                         f"infinite loss. {_files_left(out)} {WAYS_OUT}")
        record = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": None,
                  "val_metric": None, "lr": optimizer.param_groups[0]["lr"]}
        score = -train_loss
        if val_loader is not None:
            val_loss, outputs, targets = evaluate(model, val_loader, loss_fn, device)
            if not math.isfinite(val_loss):
                raise NonFiniteLossError(
                    f"fit: the validation loss is {val_loss} after epoch {epoch + 1} (the "
                    f"training loss was {train_loss:.4g}): the model gives NaN or infinite "
                    f"outputs. Training stopped; {_files_left(out)} {WAYS_OUT}")
            record["val_loss"] = val_loss
            score = -val_loss
            if metric is not None:
                record["val_metric"] = score = float(metric(outputs, targets))
            if on_validation is not None:
                on_validation(outputs, targets)
        if isinstance(scheduler, ReduceLROnPlateau):
            scheduler.step(-score if metric is None else score)
        elif scheduler is not None:
            scheduler.step()
        record["seconds"] = time.perf_counter() - started
        record["skipped_batches"] = len(skipped)
        history.append(record)
        improved = score > best  # a NaN score never improves
        if improved:
            best, bad_epochs = score, 0
        else:
            bad_epochs += 1
        _report(record, metric_name)
        if out is not None:  # the checkpoints first: the history never lists an unsaved epoch
            if improved:
                save(model.state_dict(), out / "best.npz")
            save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                  "scheduler": scheduler.state_dict() if scheduler is not None else None,
                  "epoch": epoch, "history": history, "best": best, "bad_epochs": bad_epochs,
                  "rng": backend.generator("cpu").bit_generator.state}, out / "last.npz")
            _write_history(out, history, metric_name)
        if patience is not None and bad_epochs >= patience:
            print(f"early stopping: no better validation score for {patience} epochs")
            break
    return history


def _files_left(out: Path | None) -> str:
    if out is None:
        return "no files were written (no out_dir)."
    return (f"the files in {out} (last.npz, best.npz, history) are as the last good epoch left "
            "them.")


def _progress(loader, enabled: bool, description: str):
    if not enabled:
        return loader
    from tqdm import tqdm

    return tqdm(loader, desc=description, unit="batch", leave=False, dynamic_ncols=True)


def _report(record: dict, metric_name: str) -> None:
    parts = [f"epoch {record['epoch']}", f"train loss {record['train_loss']:.4f}"]
    if record["val_loss"] is not None:
        parts.append(f"val loss {record['val_loss']:.4f}")
    if record["val_metric"] is not None:
        parts.append(f"val {metric_name} {record['val_metric']:.4f}")
    parts += [f"lr {record['lr']:.3g}", f"{record['seconds']:.1f} s"]
    print(" | ".join(parts), flush=True)


def _write_history(out: Path, history: list[dict], metric_name: str) -> None:
    """history.json (strict JSON: a NaN or infinite number is written as null) and
    history.csv, each replaced whole, then the curves."""
    safe = [{key: _finite_or_none(value) for key, value in record.items()} for record in history]
    atomic_write_text(out / "history.json", json.dumps(safe, indent=1, allow_nan=False))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=HISTORY_FIELDS, restval="")
    writer.writeheader()
    writer.writerows(safe)
    atomic_write_text(out / "history.csv", text.getvalue())
    plot_history(history, out / "curves.png", metric_name)


def _finite_or_none(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def plot_history(history: list[dict], path, metric_name: str = "metric") -> bool:
    """Draw train/val loss and the val metric per epoch to a PNG; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    epochs = [r["epoch"] for r in history]
    figure, (losses, scores) = plt.subplots(1, 2, figsize=(10, 4))
    losses.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    if any(r["val_loss"] is not None for r in history):
        losses.plot(epochs, [r["val_loss"] for r in history], "o-", label="validation")
    losses.set(xlabel="epoch", ylabel="loss", title="loss")
    losses.legend()
    if any(r["val_metric"] is not None for r in history):
        scores.plot(epochs, [r["val_metric"] for r in history], "o-", color="tab:green")
    scores.set(xlabel="epoch", ylabel=metric_name, title=f"validation {metric_name}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
