"""Where the CPU kernels' tanh and erf come from (minigrad/kernels/cpu.py). One command:

    python benchmarks/rational_fits.py

NumPy's tanh and exp are SIMD code, but inside a compiled loop (Numba) math.tanh, math.exp and
math.erf are calls into the C library, one element at a time: 4 to 20 ns each, slower than
NumPy. A rational function x * P(x^2) / Q(x^2) is only multiplications, additions and one
division, which the compiler vectorizes. This fits P and Q for tanh on [0, 9] (beyond, tanh is
1 in float32) and erf on [0, 4] (likewise), by weighted least squares on (P - f Q), iterated
with Lawson's reweighting towards the smallest largest error, and prints the coefficients and
the largest error against the exact function (evaluated in float64, as the kernels do).
"""

from __future__ import annotations

import math

import numpy as np


def fit(f, limit: float, p_degree: int, q_degree: int, iterations: int = 30):
    """Coefficients (lowest power first) of P and Q (Q(0) = 1) with f(x) ~ x P(x^2) / Q(x^2)
    on (0, limit], and the largest absolute error on the fitting grid."""
    x = limit * (1 - np.cos(np.linspace(0, np.pi / 2, 4000)))  # dense near 0 and the end
    x = np.unique(np.concatenate([x, np.linspace(0, limit, 4000)]))[1:]
    s, y = x * x, f(x) / x
    q_previous, weight = np.ones_like(s), np.ones_like(s)
    for _ in range(iterations):
        a = np.concatenate([s[:, None] ** np.arange(p_degree + 1),
                            -y[:, None] * s[:, None] ** np.arange(1, q_degree + 1)], axis=1)
        w = (weight * x / q_previous)[:, None]  # the error of f itself is x (P - y Q) / Q
        c, *_ = np.linalg.lstsq(a * w, y * w[:, 0], rcond=None)
        p, q = c[:p_degree + 1], np.concatenate([[1.0], c[p_degree + 1:]])
        q_previous = np.polyval(q[::-1], s)
        error = np.abs(x * np.polyval(p[::-1], s) / q_previous - f(x))
        weight = weight * (1 + 4 * error / error.max())
    return p, q, error.max()


def main() -> None:
    erf = np.vectorize(math.erf)
    grid = np.linspace(-12, 12, 2_000_001)
    for name, f, limit in (("TANH", np.tanh, 9.0), ("ERF", erf, 4.0)):
        p, q, _ = fit(f, limit, 6, 6 if name == "TANH" else 5)
        clipped = np.clip(grid, -limit, limit)
        s = clipped * clipped
        values = np.clip(clipped * np.polyval(p[::-1], s) / np.polyval(q[::-1], s), -1, 1)
        print(f"{name}_P = {tuple(p.tolist())}")
        print(f"{name}_Q = {tuple(q.tolist())}")
        print(f"# largest error on [-12, 12]: {np.abs(values - f(grid)).max():.2e}")


if __name__ == "__main__":
    main()
