"""The Rosenblatt perceptron, exactly as it is taught, in NumPy (no autograd: that is the point).

Each input vector gets a bias input x0 = 1, whose weight w0 plays the role of the threshold.
The output is the Heaviside step of the weighted sum:
    h(x) = 1 if w . x >= 0 else 0
After each pattern, the error moves every weight by the same rule:
    delta = lr * (y - h(x))          w_i = w_i + x_i * delta
so a weight whose input was 0 does not change, and nothing changes when the output was right.
Patterns are presented in order, one at a time, until a whole pass changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Step:
    """One presented pattern: the weights in use then (w0 first), the output and the delta."""

    pattern: int  # 1-based position of the pattern in the table
    inputs: tuple
    target: int
    weights: tuple
    output: int
    delta: float


class Perceptron:
    def __init__(self, n_inputs: int, lr: float = 1.0, weights=None):
        if n_inputs < 1:
            raise ValueError(f"Perceptron: n_inputs must be >= 1, got {n_inputs}")
        self.n_inputs, self.lr = n_inputs, lr
        if weights is None:
            self.weights = np.zeros(n_inputs + 1)
        else:
            self.weights = np.array(weights, dtype=np.float64)
            if self.weights.shape != (n_inputs + 1,):
                raise ValueError(f"Perceptron: expected {n_inputs + 1} weights (w0 first), got "
                                 f"{self.weights.shape}")
        self.converged = False
        self.epochs = 0

    def _with_bias(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_inputs:
            raise ValueError(f"Perceptron: expected patterns of shape (n, {self.n_inputs}), got "
                             f"{X.shape}")
        return np.hstack([np.ones((len(X), 1)), X])  # x0 = 1 for the threshold weight w0

    def predict(self, X) -> np.ndarray:
        """h(x) for each pattern: 1 where w . x >= 0, else 0."""
        return (self._with_bias(X) @ self.weights >= 0).astype(int)

    def fit(self, X, y, max_epochs: int = 100) -> list[Step]:
        """Present the patterns in order until a pass changes nothing (or max_epochs passes);
        return one Step per presented pattern. `converged` says whether it learned them."""
        inputs = self._with_bias(X)
        targets = np.asarray(y).astype(int)
        if targets.shape != (len(inputs),) or not np.isin(targets, (0, 1)).all():
            raise ValueError(f"Perceptron: targets must be {len(inputs)} values of 0 or 1")
        history = []
        self.converged, self.epochs = False, 0
        while self.epochs < max_epochs and not self.converged:
            self.epochs += 1
            changed = False
            for number, (x, target) in enumerate(zip(inputs, targets), start=1):
                output = int(self.weights @ x >= 0)
                delta = self.lr * (target - output)
                history.append(Step(number, tuple(x[1:].tolist()), int(target),
                                    tuple(self.weights.tolist()), output, float(delta)))
                if delta:
                    self.weights = self.weights + x * delta
                    changed = True
            self.converged = not changed
        return history
