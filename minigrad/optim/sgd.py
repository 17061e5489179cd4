"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay, step for
step as torch.optim.SGD:

    d = grad + weight_decay * p
    buf = d                                   (first step)
    buf = momentum * buf + (1 - dampening) * d (later steps)
    d = d + momentum * buf if nesterov else buf
    p = p - lr * d

(maximize=True climbs: d starts from -grad.)
"""

from __future__ import annotations

from minigrad import checks
from minigrad.autograd import no_grad
from minigrad.optim.optimizer import Optimizer


class SGD(Optimizer):
    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False):
        for name, value in (("lr", lr), ("momentum", momentum), ("dampening", dampening),
                            ("weight_decay", weight_decay)):
            checks.number("SGD", name, value)
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got {lr}, "
                             f"{momentum}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        loss = self._loss_of(closure)
        for group in self.param_groups:
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            weight_decay, nesterov = group["weight_decay"], group["nesterov"]
            for p in self._params_with_grad(group):
                d = -p.grad.array if group.get("maximize", False) else p.grad.array
                if weight_decay:
                    d = d + weight_decay * p.array
                if momentum:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = d.copy()
                    else:
                        buf *= momentum
                        buf += (1 - dampening) * d if dampening else d
                    d = d + momentum * buf if nesterov else buf
                p.array -= lr * d
        return loss
