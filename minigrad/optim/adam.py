"""Adam and AdamW, step for step as torch.optim:

    m = beta1 * m + (1 - beta1) * g          v = beta2 * v + (1 - beta2) * g^2
    p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

Adam adds weight decay to the gradient (g = grad + wd * p, an L2 penalty); AdamW decays the
weights directly (p = p * (1 - lr * wd)) before the update, which is what "decoupled" means.
amsgrad uses the largest v seen so far in the denominator; maximize climbs the gradient.
"""

from __future__ import annotations

import math

from minigrad import checks
from minigrad.autograd import no_grad
from minigrad.backend import get_array_module
from minigrad.optim.optimizer import Optimizer


class Adam(Optimizer):
    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False):
        name = type(self).__name__
        for what, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay)):
            checks.number(name, what, value)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{name}: betas must be a pair of numbers, got {betas!r}")
        for beta in betas:
            checks.number(name, "betas", beta)
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"{type(self).__name__}: invalid lr={lr}, betas={betas}, eps={eps} "
                             f"or weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        loss = self._loss_of(closure)
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            weight_decay, amsgrad = group["weight_decay"], group.get("amsgrad", False)
            for p in self._params_with_grad(group):
                xp = get_array_module(p.array)
                grad = -p.grad.array if group.get("maximize", False) else p.grad.array
                state = self.state.setdefault(p, {})
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = xp.zeros_like(p.array)
                    state["exp_avg_sq"] = xp.zeros_like(p.array)
                    if amsgrad:
                        state["max_exp_avg_sq"] = xp.zeros_like(p.array)
                state["step"] += 1
                if weight_decay and self.decoupled:
                    p.array *= 1 - lr * weight_decay
                elif weight_decay:
                    grad = grad + weight_decay * p.array
                m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
                m *= beta1
                m += (1 - beta1) * grad
                v *= beta2
                v += (1 - beta2) * grad * grad
                if amsgrad:
                    xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
                    v = state["max_exp_avg_sq"]
                denominator = xp.sqrt(v) / math.sqrt(1 - beta2**t) + eps
                p.array -= (lr / (1 - beta1**t)) * m / denominator
        return loss


class AdamW(Adam):
    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
