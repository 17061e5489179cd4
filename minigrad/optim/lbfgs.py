"""L-BFGS, step for step as torch.optim.LBFGS: a quasi-Newton method that builds an estimate
of the inverse Hessian from the last `history_size` pairs (s, y) of steps and gradient
changes, and needs a closure (the loss is evaluated several times per step):

    def closure():
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss
    optimizer.step(closure)

Each iteration: the direction d = -H g by the two-loop recursion over the history (H's
starting scale is y.s / y.y of the newest pair); a step t along d, either lr (the very first
one scaled down to at most 1 / sum|g|) or one found by a line search satisfying the strong
Wolfe conditions (line_search_fn="strong_wolfe": bracket a step, then zoom in by cubic
interpolation, Nocedal & Wright's algorithms 3.5 and 3.6). It stops after max_iter
iterations or max_eval evaluations, or when the gradient, the step or the loss change falls
under its tolerance. The parameters are treated as one flat vector; one parameter group.
"""

from __future__ import annotations

from minigrad import checks
from minigrad.autograd import bump_version, no_grad
from minigrad.backend import get_array_module
from minigrad.optim.optimizer import Optimizer


class LBFGS(Optimizer):
    def __init__(self, params, lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, line_search_fn: str | None = None):
        checks.number("LBFGS", "lr", lr, low=0)
        max_iter = checks.integer("LBFGS", "max_iter", max_iter, minimum=1)
        max_eval = max_iter * 5 // 4 if max_eval is None else checks.integer(
            "LBFGS", "max_eval", max_eval, minimum=1)
        history_size = checks.integer("LBFGS", "history_size", history_size, minimum=1)
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: line_search_fn must be None or 'strong_wolfe', got "
                             f"{line_search_fn!r}")
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                                      tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change,
                                      history_size=history_size, line_search_fn=line_search_fn))
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")

    # -- the parameters as one flat vector ----------------------------------------------------
    @property
    def _params(self) -> list:
        return self.param_groups[0]["params"]

    def _flat_grad(self):
        xp = get_array_module(self._params[0].array)
        return xp.concatenate([xp.zeros(p.numel(), dtype=p.dtype) if p.grad is None
                               else p.grad.array.reshape(-1) for p in self._params])

    def _move(self, t: float, d) -> None:
        """params += t * d."""
        start = 0
        for p in self._params:
            p.array += t * d[start : start + p.numel()].reshape(p.shape)
            bump_version(p.array)
            start += p.numel()

    def _evaluate_at(self, closure, start: list, t: float, d) -> tuple:
        """(loss, flat gradient) at start + t * d; the parameters are put back at start."""
        self._move(t, d)
        loss = float(self._loss_of(closure))
        grad = self._flat_grad()
        for p, values in zip(self._params, start):
            p.array[...] = values
            bump_version(p.array)
        return loss, grad

    # -- the step -----------------------------------------------------------------------------
    @no_grad()
    def step(self, closure=None):
        if closure is None:
            raise RuntimeError("LBFGS.step needs a closure: a function that clears the "
                               "gradients, computes the loss, calls backward and returns it")
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        state = self.state.setdefault(self._params[0], {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        first_loss = self._loss_of(closure)
        loss, evals = float(first_loss), 1
        state["func_evals"] += 1
        grad = self._flat_grad()
        xp = get_array_module(grad)
        if float(xp.abs(grad).max()) <= tol_grad:  # already at a stationary point
            return first_loss

        d, t = state.get("d"), state.get("t")
        dirs, steps, rho = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        h_diag, grad_prev = state.get("H_diag"), state.get("prev_flat_grad")
        loss_prev = state.get("prev_loss")
        iteration = 0
        while iteration < max_iter:
            iteration += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:  # steepest descent, and an empty history
                d, dirs, steps, rho, h_diag = -grad, [], [], [], 1.0
            else:
                y, s = grad - grad_prev, d * t
                ys = float(y @ s)
                if ys > 1e-10:  # (only pairs with positive curvature keep H positive definite)
                    if len(dirs) == group["history_size"]:
                        dirs.pop(0), steps.pop(0), rho.pop(0)
                    dirs.append(y), steps.append(s), rho.append(1.0 / ys)
                    h_diag = ys / float(y @ y)
                d = self._direction(grad, dirs, steps, rho, h_diag)
            grad_prev, loss_prev = grad.copy(), loss
            t = min(1.0, 1.0 / float(xp.abs(grad).sum())) * lr if state["n_iter"] == 1 else lr
            slope = float(grad @ d)  # the loss's slope along d
            if slope > -tol_change:  # d is no descent direction (any more)
                break
            used, small_grad = 0, False
            if group["line_search_fn"] == "strong_wolfe":
                start = [p.array.copy() for p in self._params]
                # (the line search's own tolerance stays 1e-9 whatever the group's, as torch's)
                def along(step, start=start, d=d):
                    return self._evaluate_at(closure, start, step, d)

                loss, grad, t, used = _strong_wolfe(along, t, d, loss, grad, slope, 1e-9,
                                                    max_eval - evals)
                self._move(t, d)
                small_grad = float(xp.abs(grad).max()) <= tol_grad
            else:
                self._move(t, d)
                if iteration != max_iter:  # (the last iteration's loss is the next step's)
                    loss, grad, used = float(self._loss_of(closure)), self._flat_grad(), 1
                    small_grad = float(xp.abs(grad).max()) <= tol_grad
            evals += used
            state["func_evals"] += used
            if (iteration == max_iter or evals >= max_eval or small_grad
                    or float(xp.abs(d * t).max()) <= tol_change
                    or abs(loss - loss_prev) < tol_change):
                break
        state.update(d=d, t=t, old_dirs=dirs, old_stps=steps, ro=rho, H_diag=h_diag,
                     prev_flat_grad=grad_prev, prev_loss=loss_prev)
        return first_loss

    @staticmethod
    def _direction(grad, dirs: list, steps: list, rho: list, h_diag: float):
        """-H grad by the two-loop recursion: H is the inverse-Hessian estimate that the
        history's pairs (s_i, y_i) define, starting from h_diag times the identity."""
        q, alpha = -grad, [0.0] * len(dirs)
        for i in range(len(dirs) - 1, -1, -1):
            alpha[i] = float(steps[i] @ q) * rho[i]
            q = q - alpha[i] * dirs[i]
        r = q * h_diag
        for i in range(len(dirs)):
            beta = float(dirs[i] @ r) * rho[i]
            r = r + (alpha[i] - beta) * steps[i]
        return r


def _cubic_minimum(x1, f1, g1, x2, f2, g2, bounds=None) -> float:
    """The minimiser of the cubic through (x1, f1) and (x2, f2) with slopes g1 and g2,
    clipped to `bounds` (default: between x1 and x2); their middle if the cubic has none."""
    low, high = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    square = d1 * d1 - g1 * g2
    if square < 0:
        return (low + high) / 2.0
    d2 = square**0.5
    if x1 <= x2:
        at = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        at = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(at, low), high)


def _strong_wolfe(evaluate, t, d, loss, grad, slope, tol_change, max_ls=25, c1=1e-4, c2=0.9):
    """A step t along d with sufficient decrease (f(t) <= f + c1 t slope) and a small slope
    (|f'(t)| <= c2 |slope|): (loss, gradient, t, evaluations). First the step grows until a
    bracket holds a point satisfying both; then the bracket shrinks around it."""
    xp = get_array_module(d)
    d_size = float(xp.abs(d).max())
    new_loss, new_grad = evaluate(t)
    evals, tries = 1, 0
    new_slope = float(new_grad @ d)
    t_prev, loss_prev, grad_prev, slope_prev = 0.0, loss, grad.copy(), slope
    done = False
    while tries < max_ls:  # bracketing
        if new_loss > loss + c1 * t * slope or (tries > 1 and new_loss >= loss_prev):
            bracket = [t_prev, t]
            b_loss, b_grad, b_slope = [loss_prev, new_loss], [grad_prev, new_grad.copy()], \
                [slope_prev, new_slope]
            break
        if abs(new_slope) <= -c2 * slope:  # both conditions hold at t
            bracket, b_loss, b_grad, done = [t], [new_loss], [new_grad], True
            break
        if new_slope >= 0:  # past a minimum along d
            bracket = [t_prev, t]
            b_loss, b_grad, b_slope = [loss_prev, new_loss], [grad_prev, new_grad.copy()], \
                [slope_prev, new_slope]
            break
        grown = _cubic_minimum(t_prev, loss_prev, slope_prev, t, new_loss, new_slope,
                               bounds=(t + 0.01 * (t - t_prev), t * 10))
        t_prev, loss_prev, grad_prev, slope_prev = t, new_loss, new_grad.copy(), new_slope
        t = grown
        new_loss, new_grad = evaluate(t)
        evals += 1
        new_slope = float(new_grad @ d)
        tries += 1
    if tries == max_ls:
        bracket, b_loss, b_grad = [0, t], [loss, new_loss], [grad, new_grad]

    stuck = False  # zooming: the last cut made too little progress
    low, high = (0, 1) if b_loss[0] <= b_loss[-1] else (1, 0)
    while not done and tries < max_ls:
        if abs(bracket[1] - bracket[0]) * d_size < tol_change:
            break
        t = _cubic_minimum(bracket[0], b_loss[0], b_slope[0], bracket[1], b_loss[1],
                           b_slope[1])
        # keep t off the bracket's ends, where the cubic's guess is least worth an evaluation
        margin = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < margin:
            if stuck or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - margin if abs(t - max(bracket)) < abs(t - min(bracket)) \
                    else min(bracket) + margin
                stuck = False
            else:
                stuck = True
        else:
            stuck = False
        new_loss, new_grad = evaluate(t)
        evals += 1
        new_slope = float(new_grad @ d)
        tries += 1
        if new_loss > loss + c1 * t * slope or new_loss >= b_loss[low]:
            bracket[high], b_loss[high], b_grad[high], b_slope[high] = \
                t, new_loss, new_grad.copy(), new_slope
            low, high = (0, 1) if b_loss[0] <= b_loss[1] else (1, 0)
        else:
            if abs(new_slope) <= -c2 * slope:
                done = True
            elif new_slope * (bracket[high] - bracket[low]) >= 0:
                bracket[high], b_loss[high], b_grad[high], b_slope[high] = \
                    bracket[low], b_loss[low], b_grad[low], b_slope[low]
            bracket[low], b_loss[low], b_grad[low], b_slope[low] = \
                t, new_loss, new_grad.copy(), new_slope
    return b_loss[low], b_grad[low], bracket[low], evals
