"""Adamax, NAdam and RAdam: Adam with another norm, with Nesterov momentum, and with its
variance rectified, step for step as torch.optim's (g = grad + weight_decay * p, or a decay
of the weights themselves where decoupled_weight_decay; t the step, m and v as in Adam):

    Adamax: m = b1 m + (1-b1) g;   u = max(b2 u, |g| + eps);   p -= lr / (1 - b1^t) * m / u
    NAdam:  mu_t = b1 (1 - 0.5 * 0.96^(t psi)) (psi = momentum_decay), prod_t = mu_1...mu_t;
            p -= lr (1 - mu_t) / (1 - prod_t) * g / d + lr mu_{t+1} / (1 - prod_t mu_{t+1}) * m / d
            with d = sqrt(v / (1 - b2^t)) + eps
    RAdam:  rho_inf = 2 / (1 - b2) - 1;   rho_t = rho_inf - 2 t b2^t / (1 - b2^t);
            m_hat = m / (1 - b1^t);
            if rho_t > 5: p -= lr m_hat r_t sqrt(1 - b2^t) / (sqrt(v) + eps), with
            r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t)),
            else (the first steps, while v says too little) p -= lr m_hat
"""

from __future__ import annotations

import math

from minigrad import checks
from minigrad.autograd import no_grad
from minigrad.backend import get_array_module
from minigrad.optim.optimizer import Optimizer


def _checked(name: str, lr, betas, eps, weight_decay) -> tuple:
    for what, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay)):
        checks.number(name, what, value)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{name}: betas must be a pair of numbers, got {betas!r}")
    if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
        raise ValueError(f"{name}: invalid lr={lr}, betas={betas}, eps={eps} or "
                         f"weight_decay={weight_decay}")
    return tuple(betas)


class _AdamLike(Optimizer):
    """The steps the three share: the gradient (negated to maximize, plus an L2 penalty or a
    decoupled decay of the weights) and the moving average m."""

    def _gradient(self, p, group):
        grad = -p.grad.array if group["maximize"] else p.grad.array
        if group["weight_decay"]:
            if group.get("decoupled_weight_decay", False):
                p.array *= 1 - group["lr"] * group["weight_decay"]
            else:
                grad = grad + group["weight_decay"] * p.array
        return grad

    @staticmethod
    def _moments(state: dict, grad, beta1: float, beta2: float) -> tuple:
        """Adam's moving averages, updated in place: m of the gradient, v of its square."""
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        return m, v

    def _state(self, p, *names: str) -> dict:
        state = self.state.setdefault(p, {})
        if not state:
            state["step"] = 0
            for name in names:
                state[name] = get_array_module(p.array).zeros_like(p.array)
        return state


class Adamax(_AdamLike):
    def __init__(self, params, lr: float = 2e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, *, maximize: bool = False):
        betas = _checked("Adamax", lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        loss = self._loss_of(closure)
        for group in self.param_groups:
            (beta1, beta2), eps = group["betas"], group["eps"]
            for p in self._params_with_grad(group):
                xp = get_array_module(p.array)
                grad = self._gradient(p, group)
                state = self._state(p, "exp_avg", "exp_inf")
                state["step"] += 1
                m, u = state["exp_avg"], state["exp_inf"]
                m *= beta1
                m += (1 - beta1) * grad
                u *= beta2
                xp.maximum(u, xp.abs(grad) + eps, out=u)
                p.array -= group["lr"] / (1 - beta1 ** state["step"]) * m / u
        return loss


class NAdam(_AdamLike):
    def __init__(self, params, lr: float = 2e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, maximize: bool = False):
        betas = _checked("NAdam", lr, betas, eps, weight_decay)
        checks.number("NAdam", "momentum_decay", momentum_decay, low=0)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        loss = self._loss_of(closure)
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            psi = group["momentum_decay"]
            for p in self._params_with_grad(group):
                xp = get_array_module(p.array)
                grad = self._gradient(p, group)
                state = self._state(p, "exp_avg", "exp_avg_sq")
                state.setdefault("mu_product", 1.0)
                state["step"] += 1
                t = state["step"]
                mu = beta1 * (1 - 0.5 * 0.96 ** (t * psi))
                mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
                state["mu_product"] *= mu
                product = state["mu_product"]
                m, v = self._moments(state, grad, beta1, beta2)
                denominator = xp.sqrt(v / (1 - beta2**t)) + eps
                p.array -= lr * (1 - mu) / (1 - product) * grad / denominator
                p.array -= lr * mu_next / (1 - product * mu_next) * m / denominator
        return loss


class RAdam(_AdamLike):
    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled_weight_decay: bool = False, *,
                 maximize: bool = False):
        betas = _checked("RAdam", lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        loss = self._loss_of(closure)
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            rho_inf = 2 / (1 - beta2) - 1
            for p in self._params_with_grad(group):
                xp = get_array_module(p.array)
                grad = self._gradient(p, group)
                state = self._state(p, "exp_avg", "exp_avg_sq")
                state["step"] += 1
                t = state["step"]
                m, v = self._moments(state, grad, beta1, beta2)
                m_hat = m / (1 - beta1**t)
                rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
                if rho_t > 5:
                    rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                                     / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                    adaptive = math.sqrt(1 - beta2**t) / (xp.sqrt(v) + eps)
                    p.array -= m_hat * lr * adaptive * rect
                else:
                    p.array -= m_hat * lr
        return loss
