"""`fit`: the training loop the examples share, small enough to read in one sitting.

Per epoch: train over the loader (a tqdm progress bar shows the loss and images/s), evaluate
on the validation loader (loss and a metric), step the scheduler, record the epoch in the
history (JSON and CSV), redraw the learning curves (PNG, when matplotlib is installed), and
write a checkpoint (model, optimizer, scheduler, epoch, history, random state) with
`minigrad.save`. `resume=True` continues from that checkpoint and ends exactly where an
uninterrupted run would. Early stopping watches the validation metric (higher is better) or,
without a metric, the validation loss; the best model is saved as best.npz.

Ctrl-C finishes the step in flight, saves last.npz at that step (mid-epoch) and raises
TrainingInterrupted; `resume=True` then continues from that very step and ends exactly as an
uninterrupted run would (on the CPU; a GPU's dropout draws are not saved). A second Ctrl-C
stops at once. Resuming with more epochs than the run was planned for stretches a cosine
schedule over the new total, and says so.

A NaN or infinite loss stops training with NonFiniteLossError naming the epoch and step, and
leaves the files as the last good epoch wrote them (`skip_nonfinite=True` skips such batches
instead, counting them). On a GPU the check costs no extra wait: a flag stays on the device
and is read with the loss the progress bar reads anyway (every `log_every` steps).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minigrad import backend
from minigrad.amp import GradScaler, autocast
from minigrad.autograd import no_grad
from minigrad.nn.module import Module
from minigrad.optim.lr_scheduler import CosineAnnealingLR, ReduceLROnPlateau
from minigrad.serialization import (
    CheckpointError,
    atomic_write,
    atomic_write_text,
    load,
    save,
    writable_folder,
)
from minigrad.tensor import Tensor

HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "val_metric", "lr", "seconds",
                  "skipped_batches")
WAYS_OUT = ("Ways out: a lower learning rate; gradient clipping "
            "(minigrad.nn.utils.clip_grad_norm_(model.parameters(), 1.0) before "
            "optimizer.step()); inputs checked for NaN or inf; or fit(..., skip_nonfinite=True) "
            "to skip such batches (they are counted and reported).")


class NonFiniteLossError(FloatingPointError):
    """A training or validation loss became NaN or infinite."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped `fit` between two steps; `checkpoint` is the last.npz it saved (None
    without an out_dir), `epoch` (1-based) and `step` (steps done in it) where it stopped."""

    def __init__(self, message: str, checkpoint, epoch: int, step: int):
        super().__init__(message)
        self.checkpoint, self.epoch, self.step = checkpoint, epoch, step


class ResumeError(ValueError):
    """`fit(resume=True)` cannot go on from last.npz: it cannot be read (permissions), or it
    is a sound checkpoint of another run (another model, optimizer or schedule); the message
    names the file and what stands in the way. (A damaged file raises CheckpointError.)"""


class History(list):
    """fit's history (a list of per-epoch dicts) that also says how many epochs this call
    trained (`trained`: 0 when a resumed run had already done them all)."""

    trained = 0


@dataclass
class EpochProgress:
    """Where an epoch's training stands: the next batch, the sum of loss * batch size over
    the batches done (where the loss lives), how many samples that is, and the batches
    skipped for a non-finite loss."""

    batch: int = 0
    total: Tensor | None = None
    count: int = 0
    skipped: list = field(default_factory=list)


class _Stopped(Exception):
    """Raised between steps when Ctrl-C asked training to stop."""


class _CtrlC:
    """While training: the first Ctrl-C (SIGINT) asks the loop to stop after the step in
    flight, a second one interrupts at once. Signals reach the main thread only, so in any
    other thread Ctrl-C keeps its usual effect."""

    def __init__(self):
        self.requested, self._previous = False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this step and saving (Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


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
            raise _non_finite(float(self.value), where, int(self.step))


def _non_finite(value: float, where: str, step: int) -> NonFiniteLossError:
    return NonFiniteLossError(f"the training loss is {value} at {where}, step {step} (batch "
                              f"{step + 1})")


def _as_tensor(batch, device) -> Tensor:
    return batch.to(device) if isinstance(batch, Tensor) else Tensor(np.asarray(batch)).to(device)


def train_one_epoch(model: Module, loader, loss_fn: Callable, optimizer, device,
                    progress: bool = True, description: str = "", log_every: int = 20, *,
                    skip_nonfinite: bool = False, state: EpochProgress | None = None,
                    should_stop: Callable[[], bool] | None = None,
                    scaler: GradScaler | None = None) -> float:
    """One pass over `loader`; returns the mean training loss per sample.

    The loss is summed where it lives (on the GPU for device="cuda") and read back to the host
    only every `log_every` batches, for the progress bar and the check that no loss was NaN
    or infinite, and at the end: reading it after every step would make each step wait for
    the GPU. A non-finite loss raises NonFiniteLossError (on the CPU before that step's
    update; on a GPU at the next read, so the model in memory may hold up to `log_every`
    bad updates). With skip_nonfinite=True such a batch is skipped instead (no update) and
    its step number appended to state.skipped; that reads each step's loss, so each step
    waits.

    state: an EpochProgress to continue from (its batch is where `loader` starts: see
    DataLoader.set_epoch) and to keep up to date. should_stop(): asked after each step; when
    it answers True the pass stops there (raising _Stopped, the state telling where).
    scaler: mixed precision: the forward and the loss run under mg.autocast (float16) and the
    step goes through this GradScaler (skipped, and the scale halved, on an inf gradient).
    """
    model.train()
    state = state if state is not None else EpochProgress()
    start, done_before = time.perf_counter(), state.count
    device_type = backend.Device(device).type
    watch, on_cpu = _FirstNonFinite(), device_type == "cpu"
    bar = _progress(loader, progress, description, initial=state.batch)
    for batch, (images, targets) in enumerate(bar, start=state.batch):
        images, targets = _as_tensor(images, device), _as_tensor(targets, device)
        with autocast(device_type, enabled=scaler is not None):
            loss = loss_fn(model(images), targets)
        # the CPU reads the loss for free, before the update; a GPU keeps a flag (see above)
        finite = math.isfinite(loss.item()) if on_cpu or skip_nonfinite else True
        if skip_nonfinite and not finite:
            state.skipped.append(batch)
        else:
            if not finite:
                raise _non_finite(loss.item(), description, batch)
            if not on_cpu and not skip_nonfinite:
                watch.update(loss.detach(), batch)
            optimizer.zero_grad()
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            weighted = loss.detach() * len(images)
            state.total = weighted if state.total is None else state.total + weighted
            state.count += len(images)
        state.batch = batch + 1
        if batch % log_every == 0:
            watch.raise_if_found(description)
            if progress and state.count:
                rate = (state.count - done_before) / (time.perf_counter() - start)
                bar.set_postfix(loss=f"{state.total.item() / state.count:.4f}",
                                img_s=f"{rate:.0f}")
        if should_stop is not None and should_stop():
            watch.raise_if_found(description)
            raise _Stopped
    watch.raise_if_found(description)
    return state.total.item() / state.count if state.count else math.nan


@no_grad()
def evaluate(model: Module, loader, loss_fn: Callable, device,
             should_stop: Callable[[], bool] | None = None,
             output_transform: Callable | None = None, amp: bool = False):
    """(mean loss, all outputs, all targets) of `model` in eval mode over `loader`;
    should_stop() is asked after each batch (raising _Stopped when it answers True);
    output_transform(outputs) is applied to each batch's outputs (a host array) before they
    are kept (argmax over classes keeps a segmentation's labels, not all of its scores);
    amp: the model and loss run under mg.autocast (float16)."""
    model.eval()
    total, count, outputs, targets = None, 0, [], []
    for images, batch_targets in loader:
        if should_stop is not None and should_stop():
            raise _Stopped
        images, batch_targets = _as_tensor(images, device), _as_tensor(batch_targets, device)
        with autocast(backend.Device(device).type, enabled=amp):
            output = model(images)
            weighted = loss_fn(output, batch_targets) * len(images)
        total = weighted if total is None else total + weighted
        count += len(images)
        kept = output.numpy()  # the metric is computed on the host, once per epoch
        outputs.append(kept if output_transform is None else output_transform(kept))
        targets.append(batch_targets.numpy())
    return total.item() / count, np.concatenate(outputs), np.concatenate(targets)


def fit(model: Module, optimizer, loss_fn: Callable, train_loader, val_loader=None, *,
        epochs: int, device="cpu", metric: Callable | None = None, metric_name: str = "metric",
        scheduler=None, out_dir=None, resume: bool = False, patience: int | None = None,
        on_validation: Callable | None = None, progress: bool = True,
        skip_nonfinite: bool = False, val_label: str = "validation",
        output_transform: Callable | None = None, amp: bool = False,
        scaler: GradScaler | None = None) -> History:
    """Train `model` for `epochs` epochs and return the history (one dict per epoch).

    metric(outputs, targets) -> float, higher is better (accuracy, mAP), on the validation set.
    out_dir: where history.json/.csv, curves.png, last.npz and best.npz go.
    resume: continue from out_dir/last.npz if it exists (from the very step a Ctrl-C stopped
        at); without one, say so and start from scratch.
    patience: stop after this many epochs without a better validation score.
    on_validation(outputs, targets): called after each evaluation (e.g. to print per-class AP).
    skip_nonfinite: skip batches whose loss is NaN or infinite (counted in the history's
    skipped_batches and reported) instead of stopping with NonFiniteLossError.
    val_label: what val_loader holds, as the printout, the plot and history.csv name it
    ("test" when the test set is evaluated each epoch).
    output_transform(outputs): applied to each validation batch's outputs before metric and
    on_validation see them (e.g. lambda scores: scores.argmax(1) for segmentation).
    amp: mixed precision (mg.autocast in float16 for the forward passes and the losses, the
    parameters kept float32) with dynamic loss scaling through `scaler` (a GradScaler made
    here if none is given); the scaler's state is saved in last.npz and resumed with it.
    Ctrl-C: saves last.npz at the step it stopped at and raises TrainingInterrupted.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"fit: epochs must be an integer >= 1, got {epochs!r}")
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:  # before any training: a folder that cannot be written fails now
        writable_folder(out, "fit: out_dir")
    if scaler is not None and not amp:
        raise ValueError("fit: a scaler was given without amp=True; pass amp=True for mixed "
                         "precision (or no scaler for float32)")
    if amp and scaler is None:
        scaler = GradScaler(backend.Device(device).type)
    history = History()
    best, bad_epochs, start_epoch, position = -np.inf, 0, 0, None
    if resume and out is not None and (out / "last.npz").exists():
        state = _restore(out / "last.npz", model, optimizer, scheduler, scaler, device)
        history.extend(state["history"])
        best, bad_epochs = state["best"], state["bad_epochs"]
        start_epoch, position = state["epoch"] + 1, state.get("position")
        if position is not None:
            start_epoch = position["epoch"]
            print(f"resuming from {out / 'last.npz'} in epoch {start_epoch + 1}, after step "
                  f"{position['batch']} of {_length(train_loader)}")
        else:
            print(f"resuming from {out / 'last.npz'} after epoch {start_epoch}")
        _extend_schedule(scheduler, state.get("epochs"), epochs)
        if start_epoch >= epochs:
            print(f"{out / 'last.npz'} already holds all {epochs} epochs: nothing to train "
                  f"(ask for more epochs to go on)")
    elif resume:
        where = out / "last.npz" if out is not None else "(no out_dir)"
        print(f"no checkpoint to resume from at {where}: starting from scratch")

    with _CtrlC() as ctrl_c:
        for epoch in range(start_epoch, epochs):
            started = time.perf_counter()
            progress_state = _progress_state(position, device)
            position = None
            batches = _epoch_batches(train_loader, epoch, progress_state.batch)
            stop = (lambda: ctrl_c.requested)  # noqa: E731
            phase = "train"
            try:
                train_loss = train_one_epoch(model, batches, loss_fn, optimizer, device,
                                             progress, f"epoch {epoch + 1}/{epochs}",
                                             skip_nonfinite=skip_nonfinite,
                                             state=progress_state, should_stop=stop,
                                             scaler=scaler)
                skipped = progress_state.skipped
                if skipped:
                    print(f"epoch {epoch + 1}: skipped {len(skipped)} batch(es) with a NaN or "
                          f"infinite loss (steps {', '.join(map(str, skipped[:10]))}"
                          f"{', ...' if len(skipped) > 10 else ''})", flush=True)
                    if math.isnan(train_loss):
                        raise NonFiniteLossError(
                            f"fit: every batch of epoch {epoch + 1} had a NaN or infinite loss. "
                            f"{_files_left(out)} {WAYS_OUT}")
                record = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": None,
                          "val_metric": None, "lr": optimizer.param_groups[0]["lr"]}
                score = -train_loss
                if val_loader is not None:
                    phase = "validate"
                    val_loss, outputs, targets = evaluate(model, val_loader, loss_fn, device,
                                                          should_stop=stop,
                                                          output_transform=output_transform,
                                                          amp=amp)
                    if not math.isfinite(val_loss):
                        raise NonFiniteLossError(
                            f"fit: the validation loss is {val_loss} after epoch {epoch + 1} "
                            f"(the training loss was {train_loss:.4g}): the model gives NaN or "
                            f"infinite outputs. Training stopped; {_files_left(out)} "
                            f"{WAYS_OUT}")
                    record["val_loss"] = val_loss
                    score = -val_loss
                    if metric is not None:
                        record["val_metric"] = score = float(metric(outputs, targets))
                    if on_validation is not None:
                        on_validation(outputs, targets)
            except NonFiniteLossError as error:
                if str(error).startswith("fit: "):
                    raise
                raise NonFiniteLossError(f"fit: {error}. Training stopped; "
                                         f"{_files_left(out)} {WAYS_OUT}") from None
            except _Stopped:
                raise _interrupted(model, optimizer, scheduler, out, history, best,
                                   bad_epochs, epoch, epochs, progress_state, phase,
                                   _length(train_loader), scaler) from None
            if isinstance(scheduler, ReduceLROnPlateau):
                scheduler.step(-score if metric is None else score)
            elif scheduler is not None:
                scheduler.step()
            record["seconds"] = time.perf_counter() - started
            record["skipped_batches"] = len(progress_state.skipped)
            history.append(record)
            history.trained += 1
            improved = score > best  # a NaN score never improves
            if improved:
                best, bad_epochs = score, 0
            else:
                bad_epochs += 1
            _report(record, metric_name, val_label)
            if out is not None:  # checkpoints first: the history never lists an unsaved epoch
                if improved:
                    save(model.state_dict(), out / "best.npz")
                save(_checkpoint(model, optimizer, scheduler, epoch, epochs, history, best,
                                 bad_epochs, None, scaler), out / "last.npz")
                _write_history(out, history, metric_name, val_label)
            if patience is not None and bad_epochs >= patience:
                print(f"early stopping: no better validation score for {patience} epochs")
                break
    return history


def _checkpoint(model, optimizer, scheduler, epoch, epochs, history, best, bad_epochs,
                position, scaler=None) -> dict:
    """last.npz: everything a resumed run needs. `epoch` is the last finished epoch (0-based,
    -1 for none); `position`, when Ctrl-C stopped an epoch, where in it."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scheduler_class": type(scheduler).__name__ if scheduler is not None else None,
            "optimizer_class": type(optimizer).__name__,
            "epoch": epoch, "epochs": epochs, "history": list(history), "best": best,
            "bad_epochs": bad_epochs, "rng": backend.generator("cpu").bit_generator.state,
            "position": position, "scaler": scaler.state_dict() if scaler is not None else None}


def _restore(path: Path, model, optimizer, scheduler, scaler, device) -> dict:
    """Load last.npz into the model, optimizer, schedule and scaler, and return it. A file
    that cannot be read raises OSError or CheckpointError (naming it); a checkpoint of another
    model, optimizer or schedule raises ResumeError naming it and what does not fit."""
    if path.is_dir():
        raise ResumeError(f"fit: cannot resume from {path}: it is a folder, not a checkpoint; "
                          "move it away, or train into another out_dir")
    try:
        state = load(path)
    except OSError as error:  # (not a damaged file: one that cannot be read, as permissions)
        raise ResumeError(f"fit: cannot resume from {path}: {error.strerror or error}; make it "
                          "readable, or train into another out_dir") from None
    missing = [key for key in ("model", "optimizer", "scheduler", "epoch", "history", "best",
                               "bad_epochs", "rng") if not isinstance(state, dict)
               or key not in state]
    if missing:
        raise CheckpointError(f"fit: {path} is a minigrad file but not fit's checkpoint (it "
                              f"lacks {', '.join(missing)})")

    def restore(what: str, load_into: Callable, saved) -> None:
        try:
            load_into(saved)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
            raise ResumeError(f"fit: cannot resume from {path}: it holds the {what} of another "
                              f"run ({type(error).__name__}: {error}). Resume with the same "
                              f"{what} as the run that wrote it, or train into another out_dir"
                              ) from None

    restore("model", model.load_state_dict, state["model"])
    model.to(device)
    given_lrs = [group["lr"] for group in optimizer.param_groups]
    saved_optimizer = state.get("optimizer_class")
    if saved_optimizer not in (None, type(optimizer).__name__):
        raise ResumeError(f"fit: cannot resume from {path}: it was trained with {saved_optimizer}"
                          f", and this run's optimizer is {type(optimizer).__name__}. Resume with "
                          "the same optimizer, or train into another out_dir")
    restore("optimizer", optimizer.load_state_dict, state["optimizer"])
    saved_class = state.get("scheduler_class")
    if scheduler is not None and saved_class not in (None, type(scheduler).__name__):
        raise ResumeError(f"fit: cannot resume from {path}: it was trained with a "
                          f"{saved_class} schedule, and this run's is {type(scheduler).__name__}."
                          " Resume with the same schedule (or none), or train into another "
                          "out_dir")
    if scheduler is not None and state["scheduler"] is not None:
        restore("learning-rate schedule", scheduler.load_state_dict, state["scheduler"])
    elif scheduler is None and state["scheduler"] is not None:
        # the schedule left its last lr in the optimizer (0 at a cosine's end): without a
        # schedule now, train on at the lr this run's optimizer was given
        for group, lr in zip(optimizer.param_groups, given_lrs):
            group["lr"] = lr
        print(f"{path} was trained with a learning-rate schedule and this run has none: "
              f"lr {given_lrs[0]:.3g} from here on")
    if scaler is not None and state.get("scaler"):
        restore("GradScaler", scaler.load_state_dict, state["scaler"])
    try:
        backend.generator("cpu").bit_generator.state = state["rng"]
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"fit: {path}: its random generator's state is damaged ({error})"
                              ) from None
    return state


def _progress_state(position, device) -> EpochProgress:
    if position is None:
        return EpochProgress()
    total = None if position["total"] is None else Tensor(position["total"]).to(device)
    return EpochProgress(position["batch"], total, position["count"], list(position["skipped"]))


def _interrupted(model, optimizer, scheduler, out, history, best, bad_epochs, epoch, epochs,
                 state: EpochProgress, phase: str, steps, scaler=None) -> TrainingInterrupted:
    """Save last.npz where Ctrl-C stopped epoch `epoch` and make the exception that says so."""
    where = (f"epoch {epoch + 1}/{epochs} after step {state.batch} of {steps}" if phase == "train"
             else f"epoch {epoch + 1}/{epochs} while validating (its training is saved)")
    if out is None:
        return TrainingInterrupted(f"interrupted in {where}; nothing saved (no out_dir)", None,
                                   epoch + 1, state.batch)
    position = {"epoch": epoch, "batch": state.batch,
                "total": None if state.total is None else state.total.numpy(),
                "count": state.count, "skipped": list(state.skipped)}
    path = out / "last.npz"
    save(_checkpoint(model, optimizer, scheduler, epoch - 1, epochs, history, best, bad_epochs,
                     position, scaler), path)
    return TrainingInterrupted(f"interrupted in {where}; saved {path}", path, epoch + 1,
                               state.batch)


def _extend_schedule(scheduler, planned, epochs: int) -> None:
    """A run planned for `planned` epochs resumed for `epochs`: a cosine schedule that spanned
    the plan is stretched over the new total (from the epoch it stands at), and says so."""
    if planned is None or planned == epochs or not isinstance(scheduler, CosineAnnealingLR):
        return
    if scheduler.T_max != planned:
        return  # a schedule set up for its own span, not the run's
    scheduler.T_max = epochs
    for group, base_lr in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = scheduler.lr_at(base_lr, scheduler.last_epoch)
    print(f"the run was planned for {planned} epochs and now goes to {epochs}: its cosine "
          f"schedule now spans {epochs} epochs (T_max {planned} -> {epochs}; lr now "
          f"{scheduler.optimizer.param_groups[0]['lr']:.3g})")


def _epoch_batches(loader, epoch: int, start: int):
    """`loader` set to epoch `epoch` from its batch `start` on: DataLoader skips the batches
    before it without loading them; any other iterable is read past them."""
    if hasattr(loader, "set_epoch"):
        if start == 0:
            loader.set_epoch(epoch)
            return loader
        try:
            loader.set_epoch(epoch, start_batch=start)
            return loader
        except TypeError:  # a set_epoch(epoch) of its own
            loader.set_epoch(epoch)
    return itertools.islice(loader, start, None) if start else loader


def _length(loader) -> int | str:
    return len(loader) if hasattr(loader, "__len__") else "?"


def _files_left(out: Path | None) -> str:
    if out is None:
        return "no files were written (no out_dir)."
    return (f"the files in {out} (last.npz, best.npz, history) are as the last good epoch left "
            "them.")


def _progress(loader, enabled: bool, description: str, initial: int = 0):
    if not enabled:
        return loader
    from tqdm import tqdm

    total = len(loader) if hasattr(loader, "__len__") else None
    return tqdm(loader, desc=description, unit="batch", leave=False, dynamic_ncols=True,
                initial=initial, total=total)


def _short(val_label: str) -> str:
    return "val" if val_label == "validation" else val_label


def _report(record: dict, metric_name: str, val_label: str = "validation") -> None:
    parts = [f"epoch {record['epoch']}", f"train loss {record['train_loss']:.4f}"]
    if record["val_loss"] is not None:
        parts.append(f"{_short(val_label)} loss {record['val_loss']:.4f}")
    if record["val_metric"] is not None:
        parts.append(f"{_short(val_label)} {metric_name} {record['val_metric']:.4f}")
    parts += [f"lr {record['lr']:.3g}", f"{record['seconds']:.1f} s"]
    print(" | ".join(parts), flush=True)


def _write_history(out: Path, history: list[dict], metric_name: str,
                   val_label: str = "validation") -> None:
    """history.json (strict JSON: a NaN or infinite number is written as null) and
    history.csv (whose columns name the metric: val_accuracy, not val_metric), each replaced
    whole, then the curves."""
    safe = [{key: _finite_or_none(value) for key, value in record.items()} for record in history]
    atomic_write_text(out / "history.json", json.dumps(safe, indent=1, allow_nan=False))
    columns = {"val_loss": f"{_short(val_label)}_loss",
               "val_metric": f"{_short(val_label)}_{metric_name}"}
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=[columns.get(f, f) for f in HISTORY_FIELDS],
                            restval="")
    writer.writeheader()
    writer.writerows({columns.get(k, k): v for k, v in record.items()} for record in safe)
    atomic_write_text(out / "history.csv", text.getvalue())
    plot_history(history, out / "curves.png", metric_name, val_label)


def _finite_or_none(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def pyplot():
    """matplotlib.pyplot drawing to files (the Agg backend), or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(figure, path) -> None:
    """Write `figure` to path atomically (its suffix gives the format: .png, .pdf) and close
    it."""
    try:
        kind = Path(path).suffix.lstrip(".").lower() or "png"  # (curves.pdf is a PDF)
        atomic_write(path, lambda file: figure.savefig(file, format=kind, dpi=100))
    finally:
        pyplot().close(figure)


def plot_history(history: list[dict], path, metric_name: str = "metric",
                 val_label: str = "validation") -> bool:
    """Draw train/val loss and the val metric per epoch to a PNG (whole-numbered epoch ticks);
    False without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in history]
    figure, (losses, scores) = plt.subplots(1, 2, figsize=(10, 4))
    losses.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    if any(r["val_loss"] is not None for r in history):
        losses.plot(epochs, [r["val_loss"] for r in history], "o-", label=val_label)
    losses.set(xlabel="epoch", ylabel="loss", title="loss")
    losses.legend()
    if any(r["val_metric"] is not None for r in history):
        scores.plot(epochs, [r["val_metric"] for r in history], "o-", color="tab:green")
    scores.set(xlabel="epoch", ylabel=metric_name, title=f"{val_label} {metric_name}")
    for axes in (losses, scores):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.tight_layout()
    save_figure(figure, path)
    return True
