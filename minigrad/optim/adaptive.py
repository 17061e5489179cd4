"""RMSprop, Adagrad and Adadelta: per-element step sizes from running sums of squared
gradients, step for step as torch.optim's (g = grad + weight_decay * p in each):

    RMSprop:  s = alpha*s + (1-alpha) g^2;  p -= lr g / (sqrt(s) + eps)   (centered: s - mean(g)^2;
              with momentum: b = momentum*b + g / (sqrt(s) + eps); p -= lr b)
    Adagrad:  s += g^2;  p -= lr / (1 + (t-1) lr_decay) * g / (sqrt(s) + eps)
    Adadelta: s = rho*s + (1-rho) g^2;  d = sqrt(u + eps) / sqrt(s + eps) * g;
              u = rho*u + (1-rho) d^2;  p -= lr d
"""

from __future__ import annotations

from minigrad import checks
from minigrad.autograd import no_grad
from minigrad.backend import get_array_module
from minigrad.optim.optimizer import Optimizer


def _check(name: str, **values) -> None:
    for what, value in values.items():
        checks.number(name, what, value)
    if "rho" in values:
        checks.number(name, "rho", values["rho"], low=0, high=1)
    bad = {k: v for k, v in values.items() if v < 0}
    if bad:
        raise ValueError(f"{name}: these must be >= 0: {bad}")


def _gradient(p, group):
    grad = -p.grad.array if group.get("maximize", False) else p.grad.array
    return grad + group["weight_decay"] * p.array if group["weight_decay"] else grad


class RMSprop(Optimizer):
    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False):
        _check("RMSprop", lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
               momentum=momentum)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        loss = self._loss_of(closure)
        for group in self.param_groups:
            alpha, eps, momentum = group["alpha"], group["eps"], group["momentum"]
            for p in self._params_with_grad(group):
                xp, grad = get_array_module(p.array), _gradient(p, group)
                state = self.state.setdefault(p, {})
                if not state:
                    state["step"] = 0
                    state["square_avg"] = xp.zeros_like(p.array)
                    if momentum:
                        state["momentum_buffer"] = xp.zeros_like(p.array)
                    if group["centered"]:
                        state["grad_avg"] = xp.zeros_like(p.array)
                state["step"] += 1
                square_avg = state["square_avg"]
                square_avg *= alpha
                square_avg += (1 - alpha) * grad * grad
                if group["centered"]:
                    grad_avg = state["grad_avg"]
                    grad_avg *= alpha
                    grad_avg += (1 - alpha) * grad
                    avg = xp.sqrt(square_avg - grad_avg * grad_avg) + eps
                else:
                    avg = xp.sqrt(square_avg) + eps
                if momentum:
                    buf = state["momentum_buffer"]
                    buf *= momentum
                    buf += grad / avg
                    p.array -= group["lr"] * buf
                else:
                    p.array -= group["lr"] * grad / avg
        return loss


class Adagrad(Optimizer):
    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, maximize: bool = False):
        _check("Adagrad", lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
               initial_accumulator_value=initial_accumulator_value)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        loss = self._loss_of(closure)
        for group in self.param_groups:
            for p in self._params_with_grad(group):
                xp, grad = get_array_module(p.array), _gradient(p, group)
                state = self.state.setdefault(p, {})
                if not state:
                    state["step"] = 0
                    state["sum"] = xp.full_like(p.array, group["initial_accumulator_value"])
                state["step"] += 1
                step_size = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
                state["sum"] += grad * grad
                p.array -= step_size * grad / (xp.sqrt(state["sum"]) + group["eps"])
        return loss


class Adadelta(Optimizer):
    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, *, maximize: bool = False):
        _check("Adadelta", lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        loss = self._loss_of(closure)
        for group in self.param_groups:
            rho, eps = group["rho"], group["eps"]
            for p in self._params_with_grad(group):
                xp, grad = get_array_module(p.array), _gradient(p, group)
                state = self.state.setdefault(p, {})
                if not state:
                    state["step"] = 0
                    state["square_avg"] = xp.zeros_like(p.array)
                    state["acc_delta"] = xp.zeros_like(p.array)
                state["step"] += 1
                square_avg, acc_delta = state["square_avg"], state["acc_delta"]
                square_avg *= rho
                square_avg += (1 - rho) * grad * grad
                delta = xp.sqrt(acc_delta + eps) / xp.sqrt(square_avg + eps) * grad
                acc_delta *= rho
                acc_delta += (1 - rho) * delta * delta
                p.array -= group["lr"] * delta
        return loss
