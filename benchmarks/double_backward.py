"""What a second derivative costs, next to PyTorch, and that the first-order pass did not pay
for it. One command:

    python benchmarks/double_backward.py [--repeats 9] [--write]

Cases (minigrad and torch alternating in blocks, see common.py), float32 on the CPU:
- hvp: a Hessian-vector product of an MLP's loss (784-256-10, tanh, batch 64), as
  torch.autograd.functional.vhp computes it: a gradient with create_graph, then its vjp.
- gradient penalty: WGAN-GP's term on a small conv critic (conv-LeakyReLU x2, linear, batch
  32 of 3x16x16): ||d critic / d x|| computed with create_graph, then backward to the weights.
- first order, for comparison: the same critic's plain forward and backward.
With --write the table replaces its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import minigrad as mg  # first, before NumPy loads OpenBLAS: README, "Speed on the CPU"

# isort: split

import argparse

import numpy as np
from common import compare, machine, table, write_section

TITLE = "## Second derivatives (benchmarks/double_backward.py)"


def _functional(lib):
    return mg.nn.functional if lib is mg else lib.nn.functional


def make_cases(lib):
    F = _functional(lib)
    rng = np.random.default_rng(0)

    def t(shape, scale=1.0, grad=False):
        return lib.tensor((rng.standard_normal(shape) * scale).astype(np.float32),
                          requires_grad=grad)

    x, labels = t((64, 784)), lib.tensor(rng.integers(0, 10, 64))
    w1, w2 = t((784, 256), 0.05, True), t((256, 10), 0.05, True)
    v1, v2 = t((784, 256)), t((256, 10))

    def hvp():
        logits = lib.tanh(x @ w1) @ w2
        loss = F.cross_entropy(logits, labels)
        g1, g2 = lib.autograd.grad(loss, (w1, w2), create_graph=True)
        lib.autograd.grad((g1 * v1).sum() + (g2 * v2).sum(), (w1, w2))

    images = t((32, 3, 16, 16))
    c1, c2, head = t((16, 3, 3, 3), 0.2, True), t((32, 16, 3, 3), 0.1, True), \
        t((32 * 4 * 4, 1), 0.05, True)

    def critic(z):
        h = F.leaky_relu(F.conv2d(z, c1, stride=2, padding=1), 0.2)
        h = F.leaky_relu(F.conv2d(h, c2, stride=2, padding=1), 0.2)
        return h.reshape(z.shape[0], -1) @ head

    def penalty():
        z = images.detach().requires_grad_(True)
        (g,) = lib.autograd.grad(critic(z).sum(), z, create_graph=True)
        ((g.reshape(32, -1) ** 2).sum(1).sqrt() - 1).pow(2).mean().backward()
        for p in (c1, c2, head):
            p.grad = None

    def first_order():
        critic(images).mean().backward()
        for p in (c1, c2, head):
            p.grad = None

    return {
        "hvp, MLP 784-256-10, batch 64": hvp,
        "gradient penalty, conv critic, batch 32x3x16x16": penalty,
        "first order, the same critic": first_order,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="blocks per library and case")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    import torch

    ours, theirs = make_cases(mg), make_cases(torch)
    rows = [(name, *compare(ours[name], theirs[name], args.repeats, calls=5)) for name in ours]
    report = "\n".join([
        TITLE, "",
        f"Machine: {machine()}.",
        f"Command: `python benchmarks/double_backward.py --repeats {args.repeats} --write`",
        "", *table(rows), "",
    ])
    print(report)
    if args.write:
        write_section(TITLE, report)


if __name__ == "__main__":
    main()
