"""Learning-rate schedules, as torch.optim.lr_scheduler: call `scheduler.step()` once per
epoch (after `optimizer.step()`); ReduceLROnPlateau's `step(metric)` takes the validation
metric instead. Each sets the 'lr' of every parameter group."""

from __future__ import annotations

import bisect
import math

from minigrad import checks
from minigrad.optim.optimizer import Optimizer


class _Scheduler:
    """What every schedule has: the current learning rates and a state to checkpoint."""

    optimizer: Optimizer

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)


class LRScheduler(_Scheduler):
    """Schedules of the epoch, in PyTorch's chainable form: each step takes the lr that a group
    has *now* to the next one (`next_lr`), so two schedulers on one optimizer compose and an lr
    set by hand is kept and scheduled on from. `lr_at` is the same schedule in closed form
    from the base lr, used when a schedule starts at a given `last_epoch` (resuming)."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        if last_epoch == -1:
            self.step()
        else:
            self._resume()

    def _resume(self) -> None:
        """Start at last_epoch + 1 from the closed form, as PyTorch's first step then does."""
        self.last_epoch += 1
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base_lr, self.last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        raise NotImplementedError

    def step(self, epoch: int | None = None) -> None:
        """The next epoch's lr; `step(epoch)` jumps to that epoch's closed form instead (what
        SequentialLR does when it hands over to the next schedule)."""
        if epoch is not None:
            self.last_epoch = epoch
            for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
                group["lr"] = self.lr_at(base_lr, epoch)
            return
        self.last_epoch += 1
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.next_lr(group["lr"], base_lr, self.last_epoch)


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size): times gamma every step_size epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1):
        step_size = checks.integer("StepLR", "step_size", step_size, minimum=1)
        self.step_size, self.gamma = step_size, checks.number("StepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        return lr * self.gamma if epoch > 0 and epoch % self.step_size == 0 else lr


class MultiStepLR(LRScheduler):
    """lr = base_lr * gamma ** (number of milestones reached): times gamma at each one."""

    def __init__(self, optimizer: Optimizer, milestones, gamma: float = 0.1,
                 last_epoch: int = -1):
        self.milestones = sorted(checks.integer("MultiStepLR", "milestones", m, minimum=0)
                                 for m in milestones)
        self.gamma = checks.number("MultiStepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        return lr * self.gamma ** self.milestones.count(epoch)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2, stepped as the
    ratio of two consecutive values of that curve (PyTorch's recursive form)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,  # noqa: N803
                 last_epoch: int = -1):
        if checks.number("CosineAnnealingLR", "T_max", T_max) < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        cosine = (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        return self.eta_min + (base_lr - self.eta_min) * cosine

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        if epoch == 0:
            return lr
        if (epoch - 1 - self.T_max) % (2 * self.T_max) == 0:  # the curve's lowest point
            return lr + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
        ratio = ((1 + math.cos(math.pi * epoch / self.T_max))
                 / (1 + math.cos(math.pi * (epoch - 1) / self.T_max)))
        return ratio * (lr - self.eta_min) + self.eta_min


class ExponentialLR(LRScheduler):
    """lr = base_lr * gamma ** epoch: times gamma every epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = checks.number("ExponentialLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** epoch

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        return lr * self.gamma if epoch > 0 else lr


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(epoch), one function for all groups or one per group; as in
    PyTorch this is a closed form, so it sets the lr rather than chaining onto it."""

    def __init__(self, optimizer: Optimizer, lr_lambda, last_epoch: int = -1):
        groups = len(optimizer.param_groups)
        self.lr_lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else (
            [lr_lambda] * groups)
        if len(self.lr_lambdas) != groups:
            raise ValueError(f"LambdaLR: {len(self.lr_lambdas)} functions for {groups} groups")
        super().__init__(optimizer, last_epoch)

    def step(self, epoch: int | None = None) -> None:
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        for group, base_lr, fn in zip(self.optimizer.param_groups, self.base_lrs,
                                      self.lr_lambdas):
            group["lr"] = base_lr * fn(self.last_epoch)

    def _resume(self) -> None:
        self.step()  # step() is the closed form already

    def state_dict(self) -> dict:
        """Everything but the functions (which cannot be saved), as PyTorch's."""
        return {k: v for k, v in super().state_dict().items() if k != "lr_lambdas"}


class MultiplicativeLR(LRScheduler):
    """lr times lr_lambda(epoch) at every epoch after the first (one function for all groups
    or one per group): a product of factors, so chained, with no closed form."""

    def __init__(self, optimizer: Optimizer, lr_lambda, last_epoch: int = -1):
        groups = len(optimizer.param_groups)
        self.lr_lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else (
            [lr_lambda] * groups)
        if len(self.lr_lambdas) != groups:
            raise ValueError(f"MultiplicativeLR: {len(self.lr_lambdas)} functions for {groups} "
                             "groups")
        super().__init__(optimizer, last_epoch)

    def step(self, epoch: int | None = None) -> None:
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self.last_epoch > 0:
            for group, fn in zip(self.optimizer.param_groups, self.lr_lambdas):
                group["lr"] = group["lr"] * fn(self.last_epoch)

    def _resume(self) -> None:
        self.step()

    def state_dict(self) -> dict:
        return {k: v for k, v in super().state_dict().items() if k != "lr_lambdas"}


class ConstantLR(LRScheduler):
    """lr = base_lr * factor for the first total_iters epochs, then base_lr."""

    def __init__(self, optimizer: Optimizer, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1):
        if not 0 <= checks.number("ConstantLR", "factor", factor) <= 1:
            raise ValueError(f"ConstantLR: factor must be between 0 and 1, got {factor}")
        self.factor = factor
        self.total_iters = checks.integer("ConstantLR", "total_iters", total_iters, minimum=0)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * (self.factor + (epoch >= self.total_iters) * (1 - self.factor))

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        if epoch == 0:
            return lr * self.factor
        return lr * (1.0 / self.factor) if epoch == self.total_iters else lr


class LinearLR(LRScheduler):
    """The lr's factor goes in a straight line from start_factor to end_factor over
    total_iters epochs, then stays: lr = base_lr * (start + (end - start) * min(epoch,
    total_iters) / total_iters), stepped as the ratio of consecutive factors."""

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, total_iters: int = 5, last_epoch: int = -1):
        if not 0 < checks.number("LinearLR", "start_factor", start_factor) <= 1:
            raise ValueError(f"LinearLR: start_factor must be in (0, 1], got {start_factor}")
        if not 0 <= checks.number("LinearLR", "end_factor", end_factor) <= 1:
            raise ValueError(f"LinearLR: end_factor must be in [0, 1], got {end_factor}")
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = checks.integer("LinearLR", "total_iters", total_iters, minimum=1)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        progress = min(self.total_iters, epoch) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        if epoch == 0:
            return lr * self.start_factor
        if epoch > self.total_iters:
            return lr
        change = self.end_factor - self.start_factor
        return lr * (1.0 + change / (self.total_iters * self.start_factor + (epoch - 1) * change))


class PolynomialLR(LRScheduler):
    """lr = base_lr * (1 - min(epoch, total_iters) / total_iters) ** power: down to 0 at
    total_iters, stepped as the ratio of consecutive values."""

    def __init__(self, optimizer: Optimizer, total_iters: int = 5, power: float = 1.0,
                 last_epoch: int = -1):
        self.total_iters = checks.integer("PolynomialLR", "total_iters", total_iters, minimum=1)
        self.power = checks.number("PolynomialLR", "power", power)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * (1.0 - min(self.total_iters, epoch) / self.total_iters) ** self.power

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        if epoch == 0 or epoch > self.total_iters:
            return lr
        return lr * ((1.0 - epoch / self.total_iters)
                     / (1.0 - (epoch - 1) / self.total_iters)) ** self.power


class CyclicLR(LRScheduler):
    """The cyclical learning rate (Smith, 2017), stepped once per batch: up from base_lr to
    max_lr over step_size_up batches, down over step_size_down, again and again; mode
    "triangular" keeps the height, "triangular2" halves it every cycle, "exp_range" scales it
    by gamma ** batch (or scale_fn of the cycle or batch: scale_mode). The momentum (SGD's
    momentum or Adam's beta1) cycles the other way, between max_momentum and base_momentum."""

    def __init__(self, optimizer: Optimizer, base_lr, max_lr, step_size_up: int = 2000,
                 step_size_down: int | None = None, mode: str = "triangular",
                 gamma: float = 1.0, scale_fn=None, scale_mode: str = "cycle",
                 cycle_momentum: bool = True, base_momentum=0.8, max_momentum=0.9,
                 last_epoch: int = -1):
        groups = optimizer.param_groups
        base_lrs = _per_group("CyclicLR", "base_lr", base_lr, groups)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, groups):
                group["lr"] = lr
        self.max_lrs = _per_group("CyclicLR", "max_lr", max_lr, groups)
        up = float(checks.number("CyclicLR", "step_size_up", step_size_up, low=1))
        down = up if step_size_down is None else float(
            checks.number("CyclicLR", "step_size_down", step_size_down, low=1))
        self.total_size, self.step_ratio = up + down, up / (up + down)
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError(f"CyclicLR: mode must be 'triangular', 'triangular2' or "
                             f"'exp_range' (or give scale_fn), got {mode!r}")
        self.mode, self.gamma = mode, gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode if scale_fn is not None else (
            "iterations" if mode == "exp_range" else "cycle")
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("CyclicLR: optimizer must support momentum or beta1 with "
                                 "`cycle_momentum` option enabled")
            self.use_beta1 = "betas" in optimizer.defaults
            self.base_momentums = _per_group("CyclicLR", "base_momentum", base_momentum, groups)
            self.max_momentums = _per_group("CyclicLR", "max_momentum", max_momentum, groups)
            if last_epoch == -1:
                for high, low, group in zip(self.max_momentums, self.base_momentums, groups):
                    _set_momentum(group, high, self.use_beta1)
                    group["max_momentum"], group["base_momentum"] = high, low
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def scale_fn(self, x) -> float:
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma**x

    def _resume(self) -> None:
        self.step()

    def step(self, epoch: int | None = None) -> None:
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle  # how far into this cycle
        rise = x / self.step_ratio if x <= self.step_ratio else (x - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else self.last_epoch)
        for group, base_lr, max_lr in zip(self.optimizer.param_groups, self.base_lrs,
                                          self.max_lrs):
            group["lr"] = base_lr + (max_lr - base_lr) * rise * scale
        if self.cycle_momentum:
            for group, low, high in zip(self.optimizer.param_groups, self.base_momentums,
                                        self.max_momentums):
                _set_momentum(group, high - (high - low) * rise * scale, self.use_beta1)

    def state_dict(self) -> dict:
        return {k: v for k, v in super().state_dict().items() if k != "_scale_fn_custom"}


def _per_group(owner: str, name: str, value, groups: list) -> list:
    """One value per parameter group: a list of them, or one for all."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(groups):
            raise ValueError(f"{owner}: expected {len(groups)} values of {name}, got "
                             f"{len(value)}")
        return list(value)
    return [value] * len(groups)


def _set_momentum(group: dict, momentum: float, use_beta1: bool) -> None:
    if use_beta1:
        group["betas"] = (momentum, *group["betas"][1:])
    else:
        group["momentum"] = momentum


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing from base_lr to eta_min over T_0 epochs, then a restart; each period
    T_mult times the one before (SGDR)."""

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1,  # noqa: N803
                 eta_min: float = 0.0, last_epoch: int = -1):
        if T_0 < 1 or T_mult < 1 or not isinstance(T_mult, int):
            raise ValueError(f"CosineAnnealingWarmRestarts: expected T_0 >= 1 and an integer "
                             f"T_mult >= 1, got {T_0}, {T_mult}")
        self.T_0, self.T_i, self.T_mult, self.eta_min = T_0, T_0, T_mult, eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def _resume(self) -> None:
        self.step(self.last_epoch + 1)

    def step(self, epoch: int | None = None) -> None:
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur += 1
            if self.T_cur >= self.T_i:
                self.T_cur, self.T_i = self.T_cur - self.T_i, self.T_i * self.T_mult
        elif epoch >= self.T_0 and self.T_mult == 1:
            self.T_cur = epoch % self.T_0
        elif epoch >= self.T_0:  # which period holds `epoch`, and how far into it
            n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
            self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
            self.T_i = self.T_0 * self.T_mult**n
        else:
            self.T_i, self.T_cur = self.T_0, epoch
        self.last_epoch = epoch
        cosine = (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.eta_min + (base_lr - self.eta_min) * cosine


class SequentialLR(_Scheduler):
    """One schedule after another: schedulers[i] from epoch milestones[i - 1] on, each
    starting from its own epoch 0."""

    def __init__(self, optimizer: Optimizer, schedulers: list, milestones: list,
                 last_epoch: int = -1):
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR: {len(schedulers)} schedulers need "
                             f"{len(schedulers) - 1} milestones, got {len(milestones)}")
        if any(s.optimizer is not optimizer for s in schedulers):
            raise ValueError("SequentialLR: every scheduler must drive the same optimizer")
        self.optimizer, self._schedulers = optimizer, list(schedulers)
        self._milestones, self.last_epoch = list(milestones), last_epoch + 1
        for group in optimizer.param_groups:  # undo the first steps the schedulers took
            group["lr"] = group["initial_lr"]
        for scheduler in self._schedulers:
            scheduler.last_epoch -= 1
        self._schedulers[0].step()

    def step(self) -> None:
        self.last_epoch += 1
        index = bisect.bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler.step(0)
        else:
            scheduler.step()

    def state_dict(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        for scheduler, saved in zip(self._schedulers, state.pop("_schedulers")):
            scheduler.load_state_dict(saved)
        self.__dict__.update(state)


class OneCycleLR(_Scheduler):
    """The 1cycle policy, stepped once per batch: the lr rises from max_lr / div_factor to
    max_lr over pct_start of total_steps, then anneals (cos or linear) to
    initial / final_div_factor (three_phase: back to the initial lr first); the momentum (SGD's
    momentum or Adam's beta1) cycles the other way between max_momentum and base_momentum."""

    def __init__(self, optimizer: Optimizer, max_lr, total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum=0.85, max_momentum=0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False, last_epoch: int = -1):
        for value in (max_lr if isinstance(max_lr, (list, tuple)) else [max_lr]):
            checks.number("OneCycleLR", "max_lr", value, low=0, low_open=True)
        if total_steps is None:
            if not epochs or not steps_per_epoch:
                raise ValueError("OneCycleLR: give total_steps, or epochs and steps_per_epoch")
            total_steps = epochs * steps_per_epoch
        if total_steps < 1 or not 0 <= pct_start <= 1 or anneal_strategy not in ("cos",
                                                                                 "linear"):
            raise ValueError(f"OneCycleLR: bad total_steps={total_steps}, pct_start={pct_start} "
                             f"or anneal_strategy={anneal_strategy!r}")
        self.optimizer, self.total_steps = optimizer, total_steps
        self.anneal_strategy, self.cycle_momentum = anneal_strategy, cycle_momentum
        groups = optimizer.param_groups

        def per_group(value):
            return list(value) if isinstance(value, (list, tuple)) else [value] * len(groups)

        peak = pct_start * total_steps - 1
        phases = [(peak, "initial_lr", "max_lr", "max_momentum", "base_momentum")]
        if three_phase:
            phases += [(2 * pct_start * total_steps - 2, "max_lr", "initial_lr",
                        "base_momentum", "max_momentum")]
        phases += [(total_steps - 1, phases[-1][2], "min_lr", phases[-1][4], "max_momentum")]
        self._phases = phases
        self._uses_betas = "betas" in groups[0]
        if cycle_momentum and "momentum" not in groups[0] and not self._uses_betas:
            raise ValueError("OneCycleLR: cycle_momentum needs an optimizer with momentum or "
                             "betas")
        for group, top, low, high in zip(groups, per_group(max_lr), per_group(base_momentum),
                                         per_group(max_momentum)):
            if last_epoch == -1:
                group["initial_lr"] = top / div_factor
                group["lr"] = group["initial_lr"]
            group["max_lr"], group["min_lr"] = top, group["initial_lr"] / final_div_factor
            if cycle_momentum:
                group["max_momentum"], group["base_momentum"] = high, low
                self._set_momentum(group, high)
        self.last_epoch = last_epoch
        self.step()

    def _set_momentum(self, group, value) -> None:
        if self._uses_betas:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start: float, end: float, fraction: float) -> float:
        if self.anneal_strategy == "linear":
            return (end - start) * fraction + start
        return end + (start - end) / 2 * (math.cos(math.pi * fraction) + 1)

    def step(self) -> None:
        self.last_epoch += 1
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {step} times, more than total_steps "
                             f"{self.total_steps}")
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for end_step, lr_from, lr_to, momentum_from, momentum_to in self._phases:
                if step <= end_step or end_step == self._phases[-1][0]:
                    fraction = (step - start_step) / (end_step - start_step)
                    group["lr"] = self._anneal(group[lr_from], group[lr_to], fraction)
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(
                            group[momentum_from], group[momentum_to], fraction))
                    break
                start_step = end_step


class ReduceLROnPlateau(_Scheduler):
    """Multiply the lr by `factor` when the metric has not improved for `patience` epochs
    (improved: better than the best by `threshold`, relative or absolute), then wait
    `cooldown` epochs; never below `min_lr`."""

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr=0.0, eps: float = 1e-8):
        checks.integer("ReduceLROnPlateau", "patience", patience, minimum=0)
        checks.integer("ReduceLROnPlateau", "cooldown", cooldown, minimum=0)
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: bad mode {mode!r} or threshold_mode "
                             f"{threshold_mode!r}")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1, got {factor}")
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.eps = cooldown, eps
        groups = len(optimizer.param_groups)
        self.min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * groups
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    def _is_better(self, value: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return value < self.best * (1 - self.threshold)
        if self.mode == "min":
            return value < self.best - self.threshold
        if self.threshold_mode == "rel":
            return value > self.best * (1 + self.threshold)
        return value > self.best + self.threshold

    def step(self, metrics: float) -> None:
        value = float(metrics)
        self.last_epoch += 1
        if self._is_better(value):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new_lr = max(group["lr"] * self.factor, min_lr)
                if group["lr"] - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
