"""Optimizers and schedulers, step for step against torch.optim: 20 steps on the same
parameters with the same gradient sequence give the same parameters (1e-6 relative, float64)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DEVICES, requires_torch, torch

import minigrad as mg

SHAPES = [(3, 4), (4,), (2, 2, 2)]


def run_steps(lib, make_optimizer, steps=20, seed=0, groups=None, scheduler=None, **on):
    """Parameters after `steps` optimizer steps with a fixed random gradient sequence (on
    the device `on` names, for minigrad)."""
    rng = np.random.default_rng(seed)
    initial = [rng.standard_normal(s) for s in SHAPES]
    gradients = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    params = [lib.tensor(p, dtype=lib.float64, requires_grad=True, **on) for p in initial]
    spec = params if groups is None else [dict(g, params=[params[i] for i in g["params"]])
                                          for g in groups]
    optimizer = make_optimizer(lib, spec)
    schedule = scheduler(lib, optimizer) if scheduler else None
    lrs = []
    for step_grads in gradients:
        for p, g in zip(params, step_grads):
            p.grad = lib.tensor(g, dtype=lib.float64, **on)
        optimizer.step()
        if schedule:
            schedule.step()
        lrs.append([group["lr"] for group in optimizer.param_groups])
    return [p.detach().numpy() for p in params], lrs


OPTIMIZERS = {
    "sgd": lambda lib, p: lib.optim.SGD(p, lr=0.1),
    "sgd_momentum": lambda lib, p: lib.optim.SGD(p, lr=0.05, momentum=0.9),
    "sgd_dampening_weight_decay": lambda lib, p: lib.optim.SGD(p, lr=0.05, momentum=0.8,
                                                               dampening=0.3, weight_decay=0.01),
    "sgd_nesterov": lambda lib, p: lib.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True,
                                                 weight_decay=1e-3),
    "adam": lambda lib, p: lib.optim.Adam(p, lr=0.01),
    "adam_weight_decay": lambda lib, p: lib.optim.Adam(p, lr=0.01, betas=(0.8, 0.99),
                                                       eps=1e-6, weight_decay=0.1),
    "adamw": lambda lib, p: lib.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    "adam_amsgrad": lambda lib, p: lib.optim.Adam(p, lr=0.01, amsgrad=True, weight_decay=0.01),
    "adamw_amsgrad_maximize": lambda lib, p: lib.optim.AdamW(p, lr=0.01, amsgrad=True,
                                                             maximize=True),
    "rmsprop": lambda lib, p: lib.optim.RMSprop(p, lr=0.01),
    "rmsprop_centered_momentum": lambda lib, p: lib.optim.RMSprop(
        p, lr=0.01, alpha=0.9, momentum=0.8, centered=True, weight_decay=0.01),
    "adagrad": lambda lib, p: lib.optim.Adagrad(p, lr=0.1, lr_decay=0.01, weight_decay=0.01,
                                                initial_accumulator_value=0.1),
    "adadelta": lambda lib, p: lib.optim.Adadelta(p, lr=0.5, rho=0.8, weight_decay=0.01),
    "adadelta_maximize": lambda lib, p: lib.optim.Adadelta(p, maximize=True),
}

GROUPS = [{"params": [0, 1], "lr": 0.02}, {"params": [2], "lr": 0.3, "momentum": 0.5}]


@requires_torch
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_matches_torch_over_20_steps(name, device):
    ours, _ = run_steps(mg, OPTIMIZERS[name], device=device)
    theirs, _ = run_steps(torch(), OPTIMIZERS[name])
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)


@requires_torch
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["sgd_momentum", "adam", "adamw"])
def test_parameter_groups_with_their_own_learning_rates_match_torch(name, device):
    ours, _ = run_steps(mg, OPTIMIZERS[name], groups=GROUPS, device=device)
    theirs, _ = run_steps(torch(), OPTIMIZERS[name], groups=GROUPS)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)


SCHEDULERS = {
    "step": lambda lib, o: lib.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
    "multistep": lambda lib, o: lib.optim.lr_scheduler.MultiStepLR(o, [2, 5, 11], gamma=0.3),
    "cosine": lambda lib, o: lib.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=1e-3),
    "exponential": lambda lib, o: lib.optim.lr_scheduler.ExponentialLR(o, gamma=0.8),
    "lambda": lambda lib, o: lib.optim.lr_scheduler.LambdaLR(o, lambda e: 1 / (1 + e)),
    "lambda_per_group": lambda lib, o: lib.optim.lr_scheduler.LambdaLR(
        o, [lambda e: 0.9**e, lambda e: 1 + (e % 3)]),
}


@requires_torch
@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_scheduler_gives_torch_s_learning_rates_and_parameters(name):
    ours, our_lrs = run_steps(mg, OPTIMIZERS["sgd_momentum"], groups=GROUPS,
                              scheduler=SCHEDULERS[name])
    theirs, their_lrs = run_steps(torch(), OPTIMIZERS["sgd_momentum"], groups=GROUPS,
                                  scheduler=SCHEDULERS[name])
    np.testing.assert_allclose(our_lrs, their_lrs, rtol=1e-9)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)


@requires_torch
@pytest.mark.parametrize("settings", [
    dict(),
    dict(mode="max", factor=0.5, patience=1, threshold=0.1, threshold_mode="abs", cooldown=2),
    dict(patience=2, cooldown=1, min_lr=0.01, factor=0.3),
])
def test_reduce_lr_on_plateau_follows_torch(settings):
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.89, 0.9, 0.9, 0.9, 0.9, 0.9, 0.7, 0.7, 0.7, 0.7] * 2
    results = []
    for lib in (mg, torch()):
        p = lib.tensor(np.ones(2), requires_grad=True)
        optimizer = lib.optim.SGD([p], lr=1.0)
        scheduler = lib.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **settings)
        lrs = []
        for value in metrics:
            scheduler.step(value)
            lrs.append(optimizer.param_groups[0]["lr"])
        results.append(lrs)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)
    assert min(results[0]) < 1.0  # the schedule did reduce


def test_optimizer_state_survives_a_checkpoint(tmp_path):
    """10 steps, save, restore into a new optimizer, 10 more == 20 steps straight."""
    def make(lib, p):
        return lib.optim.Adam(p, lr=0.01, weight_decay=0.01)

    straight, _ = run_steps(mg, make, steps=20)
    rng = np.random.default_rng(0)
    initial = [rng.standard_normal(s) for s in SHAPES]
    gradients = [[rng.standard_normal(s) for s in SHAPES] for _ in range(20)]
    params = [mg.tensor(p, dtype=mg.float64, requires_grad=True) for p in initial]
    optimizer = make(mg, params)
    for step, step_grads in enumerate(gradients):
        if step == 10:
            mg.save({"optimizer": optimizer.state_dict(), "params": [p.numpy() for p in params]},
                    tmp_path / "checkpoint.npz")
            checkpoint = mg.load(tmp_path / "checkpoint.npz")
            params = [mg.tensor(p, requires_grad=True) for p in checkpoint["params"]]
            optimizer = make(mg, params)
            optimizer.load_state_dict(checkpoint["optimizer"])
        for p, g in zip(params, step_grads):
            p.grad = mg.tensor(g)
        optimizer.step()
    for a, b in zip(params, straight):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-12)


def test_updates_are_in_place_float32_and_record_no_graph():
    p = mg.randn(3, requires_grad=True)
    data = p.array
    p.grad = mg.ones(3)
    for optimizer in (mg.optim.SGD([p], lr=0.1, momentum=0.9), mg.optim.Adam([p])):
        optimizer.step()
        optimizer.step()
    assert p.array is data and p.dtype == mg.float32 and p.grad_fn is None
    state = optimizer.state[p]
    assert state["exp_avg"].dtype == np.float32 and state["exp_avg_sq"].dtype == np.float32
    optimizer.zero_grad()
    assert p.grad is None


def test_optimizers_refuse_bad_parameters_and_settings():
    with pytest.raises(ValueError, match="empty parameter list"):
        mg.optim.SGD([], lr=0.1)
    x = mg.randn(2, requires_grad=True)
    with pytest.raises(TypeError, match="leaf"):
        mg.optim.SGD([x * 2], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        mg.optim.SGD([x], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="two groups"):
        mg.optim.SGD([{"params": [x]}, {"params": [x]}], lr=0.1)


def _lrs_over_epochs(lib, make_schedulers, epochs=14, set_by_hand=None):
    """The lr after each epoch of SGD with the given schedulers stepped in order."""
    parameter = lib.zeros(2, requires_grad=True)
    optimizer = lib.optim.SGD([parameter], lr=0.1, momentum=0.9)
    schedulers = make_schedulers(lib, optimizer)
    lrs = []
    for epoch in range(epochs):
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
        if set_by_hand is not None and epoch == set_by_hand:
            optimizer.param_groups[0]["lr"] = 0.5
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


@requires_torch
@pytest.mark.parametrize("combination", [
    lambda lib, o: [lib.optim.lr_scheduler.StepLR(o, 3, 0.5),
                    lib.optim.lr_scheduler.MultiStepLR(o, [2, 5, 5], 0.3)],
    lambda lib, o: [lib.optim.lr_scheduler.CosineAnnealingLR(o, 4, 1e-3),
                    lib.optim.lr_scheduler.StepLR(o, 5, 0.1)],
], ids=["step+multistep", "cosine+step"])
def test_several_schedulers_on_one_optimizer_compose_as_in_pytorch(combination):
    ours, theirs = (_lrs_over_epochs(lib, combination) for lib in (mg, torch()))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@requires_torch
@pytest.mark.parametrize("name", [n for n in SCHEDULERS if n != "lambda_per_group"])
def test_an_lr_set_by_hand_is_kept_and_scheduled_on_as_in_pytorch(name):
    def make(lib, optimizer):
        return [SCHEDULERS[name](lib, optimizer)]

    ours, theirs = (_lrs_over_epochs(lib, make, set_by_hand=4) for lib in (mg, torch()))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert ours[4] == 0.5  # the hand-set value was not overwritten


def _schedule_trace(lib, make_optimizer, make_scheduler, steps):
    """(lr, momentum or beta1) of each group after each scheduler step."""
    params = [lib.zeros(2, requires_grad=True), lib.zeros(3, requires_grad=True)]
    optimizer = make_optimizer(lib, [{"params": [params[0]]}, {"params": [params[1]],
                                                               "lr": 0.05}])
    scheduler = make_scheduler(lib, optimizer)
    trace = []
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        trace.append([(g["lr"], g.get("momentum", g.get("betas", (0,))[0]))
                      for g in optimizer.param_groups])
    return np.array(trace, dtype=float)


def SGD_MOMENTUM(lib, params):  # noqa: N802 - a constant of the table below
    return lib.optim.SGD(params, lr=0.1, momentum=0.9)


def ADAM(lib, params):  # noqa: N802
    return lib.optim.Adam(params, lr=0.1)


@requires_torch
@pytest.mark.parametrize("make_optimizer, make_scheduler, steps", [
    (SGD_MOMENTUM, lambda lib, o: lib.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        o, T_0=3, T_mult=2, eta_min=1e-3), 20),
    (SGD_MOMENTUM, lambda lib, o: lib.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, 4), 13),
    (SGD_MOMENTUM, lambda lib, o: lib.optim.lr_scheduler.SequentialLR(
        o, [lib.optim.lr_scheduler.ExponentialLR(o, 0.9),
            lib.optim.lr_scheduler.StepLR(o, 3, 0.5)], milestones=[4]), 14),
    (SGD_MOMENTUM, lambda lib, o: lib.optim.lr_scheduler.OneCycleLR(
        o, max_lr=[0.1, 0.2], total_steps=20), 19),
    (ADAM, lambda lib, o: lib.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.1, epochs=3, steps_per_epoch=5, anneal_strategy="linear",
        three_phase=True), 14),
    (SGD_MOMENTUM, lambda lib, o: lib.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.1, total_steps=10, pct_start=0.5, cycle_momentum=False), 9),
], ids=["warm-restarts-tmult2", "warm-restarts", "sequential", "one-cycle-sgd",
        "one-cycle-adam-3phase-linear", "one-cycle-no-momentum"])
def test_more_schedulers_follow_torch(make_optimizer, make_scheduler, steps):
    ours = _schedule_trace(mg, make_optimizer, make_scheduler, steps)
    theirs = _schedule_trace(torch(), make_optimizer, make_scheduler, steps)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-15)
