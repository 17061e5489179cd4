"""Train a tiny two-layer network on generated data and watch its loss fall.

The data: 512 points in the plane, labelled by whether they lie inside the unit circle, a
boundary no straight line can draw. The network: 2 -> 32 (tanh) -> 2, trained with plain
gradient descent on the cross-entropy, written with nothing but minigrad's Tensor and autograd:

    python examples/demo.py [--steps 300] [--lr 0.5] [--device cpu]
"""

from __future__ import annotations

import math

import minigrad as mg
from minigrad import cli


def make_data(n: int, device: str):
    points = mg.rand(n, 2, device=device) * 4 - 2  # uniform in [-2, 2)^2
    inside = (points * points).sum(dim=1) < 1.0
    return points, inside.long()


def cross_entropy(logits: mg.Tensor, labels: mg.Tensor) -> mg.Tensor:
    """Mean of -log softmax(logits)[label] over the batch."""
    log_probs = logits.log_softmax(dim=1)
    return -log_probs[mg.arange(len(labels), device=labels.device), labels].mean()


def main(argv=None) -> None:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=cli.positive_int, default=300,
                        help="gradient-descent steps")
    parser.add_argument("--lr", type=cli.positive_float, default=0.5, help="learning rate")
    parser.add_argument("--hidden", type=cli.positive_int, default=32, help="hidden units")
    parser.add_argument("--device", default="cpu",
                        help="cpu, or cuda (needs CuPy and an NVIDIA GPU)")
    parser.add_argument("--seed", type=cli.seed, default=0, help="seed of the data and weights")
    args = parser.parse_args(argv)
    cli.check_device("--device", args.device)

    mg.manual_seed(args.seed)
    points, labels = make_data(512, args.device)
    # Parameters, initialised like PyTorch's Linear: uniform in +-1/sqrt(fan_in)
    w1 = ((mg.rand(2, args.hidden, device=args.device) * 2 - 1) / math.sqrt(2)).requires_grad_()
    b1 = mg.zeros(args.hidden, device=args.device, requires_grad=True)
    w2 = ((mg.rand(args.hidden, 2, device=args.device) * 2 - 1) / math.sqrt(args.hidden))
    w2.requires_grad_()
    b2 = mg.zeros(2, device=args.device, requires_grad=True)
    parameters = [w1, b1, w2, b2]

    print(f"{'step':>5}  {'loss':>7}  {'accuracy':>8}")
    for step in range(args.steps + 1):
        logits = (points @ w1 + b1).tanh() @ w2 + b2
        loss = cross_entropy(logits, labels)
        for p in parameters:
            p.grad = None
        loss.backward()
        with mg.no_grad():
            for p in parameters:
                p.data -= args.lr * p.grad.data
        if step % (args.steps // 10 or 1) == 0:
            accuracy = (logits.argmax(dim=1) == labels).float().mean().item()
            print(f"{step:>5}  {loss.item():7.4f}  {accuracy:8.1%}")


if __name__ == "__main__":
    cli.run(main)
