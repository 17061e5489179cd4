"""The Rosenblatt perceptron learning "is it a nice day?", step by step; then XOR, which it
cannot learn, and a two-layer network trained with autograd, which can.

    python examples/perceptron.py
"""

from __future__ import annotations

import minigrad as mg  # first, before NumPy loads OpenBLAS: README, "Speed on the CPU"

# isort: split

import numpy as np

import minigrad.nn as nn
from minigrad import cli
from minigrad.models import Perceptron

# x1: windy, x2: cloudy; only the calm, clear day is a nice day
NICE_DAY_X = np.array([[1, 1], [0, 1], [1, 0], [0, 0]])
NICE_DAY_Y = np.array([0, 0, 0, 1])
XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
XOR_Y = np.array([0, 1, 1, 0])


def print_history(history) -> None:
    header = ("pattern", "windy", "cloudy", "nice day", "w0", "w_windy", "w_cloudy", "h(x)",
              "delta")
    print(" ".join(f"{h:>8}" for h in header))
    for step in history:
        row = (step.pattern, *step.inputs, step.target, *step.weights, step.output, step.delta)
        print(" ".join(f"{v:>8g}" for v in row))


def train_mlp_on_xor(epochs: int = 500):
    """A 2-4-1 network with tanh, trained by gradient descent on the BCE: autograd does the
    calculus the perceptron rule cannot, through a hidden layer."""
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    optimizer = mg.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    x, y = mg.tensor(XOR_X, dtype=mg.float32), mg.tensor(XOR_Y[:, None], dtype=mg.float32)
    for _ in range(epochs):
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with mg.no_grad():
        predictions = (model(x).numpy()[:, 0] > 0).astype(int)
    return predictions, loss.item()


def main(argv=None) -> None:
    cli.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " ")).parse_args(argv)
    print("1. The perceptron learns 'is it a nice day?' from weights [1, 1, 1], lr 1\n")
    perceptron = Perceptron(2, lr=1.0, weights=[1, 1, 1])
    history = perceptron.fit(NICE_DAY_X, NICE_DAY_Y)
    print_history(history)
    print(f"\nconverged after {perceptron.epochs} passes; final weights (w0, w_windy, w_cloudy) "
          f"= {perceptron.weights.tolist()}; predictions {perceptron.predict(NICE_DAY_X).tolist()}"
          f" for targets {NICE_DAY_Y.tolist()}\n")

    print("2. XOR is not linearly separable: no line splits {(0,1), (1,0)} from {(0,0), (1,1)}")
    xor = Perceptron(2)
    xor.fit(XOR_X, XOR_Y, max_epochs=100)
    print(f"   the perceptron stops at max_epochs={xor.epochs} without converging "
          f"(converged={xor.converged}); it predicts {xor.predict(XOR_X).tolist()} for "
          f"{XOR_Y.tolist()}")
    predictions, loss = train_mlp_on_xor()
    print(f"   a 2-4-1 MLP trained with autograd predicts {predictions.tolist()} (loss {loss:.4f})")


if __name__ == "__main__":
    cli.run(main)
