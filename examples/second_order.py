"""Second derivatives at work: Newton's method in 1-D and on a network's loss, and a gradient
penalty. Each needs a gradient that is itself differentiated (create_graph=True):

    python examples/second_order.py [--newton-steps 8] [--penalty-steps 30] [--seed 0]

1. Newton's method on f(x) = x^4 - 3x^2 + x: x <- x - f'(x) / f''(x), both derivatives by
   autograd (f'' is the gradient of f', computed with create_graph=True). The step count to
   a minimum is a handful, where gradient descent needs hundreds.
2. Newton's method on the loss of logistic regression with a small L2 term (a network
   with no hidden layer, whose loss is convex): the Hessian of the loss with respect to the
   weights (mg.autograd.functional.hessian), then w <- w - H^-1 g. Beside it, gradient
   descent for as many steps, to show the quadratic convergence.
3. A gradient penalty (WGAN-GP): a small critic is trained so that the norm of its gradient
   with respect to its input is 1 at points between real and generated samples; the penalty
   (||d critic / d x|| - 1)^2 is a function of a gradient, and its backward is a second
   derivative.
"""

from __future__ import annotations

import numpy as np

import minigrad as mg
from minigrad import cli


def newton_1d(x0: float, steps: int) -> list[tuple[float, float]]:
    """(x, f(x)) after each Newton step on f(x) = x^4 - 3x^2 + x, from x0."""
    x = mg.tensor([x0], dtype=mg.float64, requires_grad=True)
    path = []
    for _ in range(steps):
        f = x**4 - 3 * x**2 + x
        (slope,) = mg.autograd.grad(f.sum(), x, create_graph=True)  # f'(x), in a graph
        (curvature,) = mg.autograd.grad(slope.sum(), x)  # f''(x): the gradient of f'
        with mg.no_grad():
            x = (x - slope / curvature).detach().requires_grad_()
        path.append((x.item(), (x**4 - 3 * x**2 + x).item()))
    return path


def logistic_data(rng: np.random.Generator, n: int = 200, features: int = 5):
    w_true = rng.standard_normal(features)
    x = rng.standard_normal((n, features))
    y = (x @ w_true + 0.5 * rng.standard_normal(n) > 0).astype(np.float64)
    return mg.tensor(x), mg.tensor(y)


def logistic_loss(w, x, y, l2: float = 1e-2):
    return mg.nn.functional.binary_cross_entropy_with_logits(x @ w, y) + l2 * (w * w).sum()


def newton_vs_gradient_descent(x, y, steps: int, lr: float = 1.0):
    """The loss after each step of Newton's method and of gradient descent, from w = 0."""
    features = x.shape[1]
    newton, descent = [], []
    w = mg.zeros(features, dtype=mg.float64, requires_grad=True)
    for _ in range(steps):
        loss = logistic_loss(w, x, y)
        (g,) = mg.autograd.grad(loss, w)
        hessian = mg.autograd.functional.hessian(lambda v: logistic_loss(v, x, y), w)
        step = np.linalg.solve(hessian.numpy(), g.numpy())  # H d = g
        w = mg.tensor(w.numpy() - step, requires_grad=True)
        newton.append(logistic_loss(w, x, y).item())
    w = mg.zeros(features, dtype=mg.float64, requires_grad=True)
    for _ in range(steps):
        (g,) = mg.autograd.grad(logistic_loss(w, x, y), w)
        w = mg.tensor(w.numpy() - lr * g.numpy(), requires_grad=True)
        descent.append(logistic_loss(w, x, y).item())
    return newton, descent


def gradient_penalty(critic, real, fake, rng: np.random.Generator):
    """WGAN-GP's term: (||d critic(x_hat) / d x_hat|| - 1)^2, averaged over x_hat, points on
    the segments between real and generated samples."""
    t = mg.tensor(rng.uniform(size=(real.shape[0], 1)).astype(np.float32))
    between = (t * real + (1 - t) * fake).detach().requires_grad_()
    (slope,) = mg.autograd.grad(critic(between).sum(), between, create_graph=True)
    return ((slope.norm(dim=1) - 1) ** 2).mean()


def train_with_penalty(steps: int, rng: np.random.Generator) -> list[float]:
    """Train a critic on two 2-D clouds with the Wasserstein loss plus 10 x the penalty;
    the penalty after each step."""
    critic = mg.nn.Sequential(mg.nn.Linear(2, 32), mg.nn.LeakyReLU(0.2), mg.nn.Linear(32, 32),
                              mg.nn.LeakyReLU(0.2), mg.nn.Linear(32, 1))
    optimizer = mg.optim.Adam(critic.parameters(), lr=1e-2, betas=(0.5, 0.9))
    penalties = []
    for _ in range(steps):
        real = mg.tensor((rng.standard_normal((64, 2)) * 0.3 + [2, 0]).astype(np.float32))
        fake = mg.tensor((rng.standard_normal((64, 2)) * 0.3 - [2, 0]).astype(np.float32))
        penalty = gradient_penalty(critic, real, fake, rng)
        loss = critic(fake).mean() - critic(real).mean() + 10 * penalty
        optimizer.zero_grad()
        loss.backward()  # through the penalty's gradient: second derivatives
        optimizer.step()
        penalties.append(penalty.item())
    return penalties


def build_parser():
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--newton-steps", type=cli.positive_int, default=8,
                        help="Newton steps (and gradient-descent steps to compare)")
    parser.add_argument("--penalty-steps", type=cli.positive_int, default=30,
                        help="training steps of the critic with a gradient penalty")
    parser.add_argument("--seed", type=cli.seed, default=0, help="seed of the data and weights")
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    mg.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    print("1. Newton's method on f(x) = x^4 - 3x^2 + x, from x = 2")
    for k, (x, f) in enumerate(newton_1d(2.0, args.newton_steps), 1):
        print(f"   step {k}: x = {x:.12f}  f(x) = {f:.12f}")

    print("2. logistic regression: loss after each step")
    x, y = logistic_data(rng)
    newton, descent = newton_vs_gradient_descent(x, y, args.newton_steps)
    print(f"   {'step':>4}  {'Newton':>14}  {'gradient descent':>16}")
    for k, (a, b) in enumerate(zip(newton, descent), 1):
        print(f"   {k:>4}  {a:>14.10f}  {b:>16.10f}")

    print("3. a critic trained with a gradient penalty (WGAN-GP): the penalty")
    penalties = train_with_penalty(args.penalty_steps, rng)
    for k in range(0, len(penalties), max(1, len(penalties) // 6)):
        print(f"   step {k + 1:>3}: {penalties[k]:.6f}")
    print(f"   step {len(penalties):>3}: {penalties[-1]:.6f}")


if __name__ == "__main__":
    cli.run(main)
