"""Seconds per epoch of the CPU examples, minigrad's script against a PyTorch script of the
same recipe, and the accuracy each reaches. One command:

    python benchmarks/examples_epoch.py [--example lenet5|lstm] [--epochs N] [--write]

minigrad: examples/lenet5_fashion_mnist.py (LeNet5, Adam 2e-3 with a cosine schedule, batch 64,
10 epochs) and examples/lstm_sequence.py (an LSTM of 128 over the 28 rows, Adam 3e-3 cosine,
batch 128, 5 epochs), run as a user runs them, in a process of their own; their "s per epoch"
(training and the test pass) and test accuracy are read from what they print.

PyTorch: the same network, initialisation scheme aside (each library's defaults, which are
PyTorch's), the same optimizer, schedule, batch size, epochs, shuffling every epoch, per-image
normalisation in the Dataset (as torchvision's ToTensor + Normalize), and a test pass after
each epoch; timed the same way. Needs Fashion-MNIST (apt-get install dataset-fashion-mnist or
--data-dir).
"""

from __future__ import annotations

import minigrad  # noqa: F401  first, before NumPy loads OpenBLAS: README, "Speed on the CPU"

# isort: split

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
TITLE = "## Examples' seconds per epoch against PyTorch (benchmarks/examples_epoch.py)"
MEAN, STD = 0.2860, 0.3530
RECIPES = {"lenet5": dict(script="lenet5_fashion_mnist.py", epochs=10, batch=64, lr=2e-3),
           "lstm": dict(script="lstm_sequence.py", epochs=5, batch=128, lr=3e-3)}


def run_minigrad(example: str, epochs: int, data_dir):
    """(seconds per epoch, test accuracy) of the example script, from its last line."""
    recipe = RECIPES[example]
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, str(ROOT / "examples" / recipe["script"]), "--epochs",
                   str(epochs), "--out", out, "--no-progress"]
        if data_dir:
            command += ["--data-dir", data_dir]
        result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    found = re.search(r"test accuracy ([\d.]+)% after \d+ epochs; ([\d.]+) s per epoch",
                      result.stdout)
    if found is None:
        raise RuntimeError(f"{recipe['script']} printed no summary:\n{result.stdout[-2000:]}")
    return float(found.group(2)), float(found.group(1)) / 100


def _fashion_mnist(data_dir):
    """The four IDX files as uint8 arrays, read with minigrad's loader (the same bytes both
    libraries train on)."""
    from minigrad.data import FashionMNIST

    train, test = FashionMNIST(data_dir, train=True), FashionMNIST(data_dir, train=False)
    return (train.data, train.targets), (test.data, test.targets)


def run_torch(example: str, epochs: int, data_dir):
    import torch
    import torch.nn as tnn

    recipe = RECIPES[example]
    torch.manual_seed(0)
    (train_x, train_y), (test_x, test_y) = _fashion_mnist(data_dir)

    class Images(torch.utils.data.Dataset):
        def __init__(self, images, labels):
            self.images, self.labels = images, labels

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, k):  # ToTensor + Normalize, per image
            image = torch.from_numpy(self.images[k].astype(np.float32) / 255)
            return ((image - MEAN) / STD).unsqueeze(0), int(self.labels[k])

    train = torch.utils.data.DataLoader(Images(train_x, train_y), recipe["batch"], shuffle=True)
    test = torch.utils.data.DataLoader(Images(test_x, test_y), 1000)
    if example == "lenet5":
        model = tnn.Sequential(
            tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(6, 16, 5),
            tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(),
            tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))
    else:
        class RowReader(tnn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = tnn.LSTM(28, 128, batch_first=True)
                self.head = tnn.Linear(128, 10)

            def forward(self, images):
                _, (h_n, _) = self.lstm(images.reshape(images.shape[0], 28, 28))
                return self.head(h_n[-1])

        model = RowReader()
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    loss_fn = tnn.CrossEntropyLoss()
    seconds, accuracy = [], 0.0
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        for images, labels in train:
            loss = loss_fn(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in test:
                correct += int((model(images).argmax(1) == labels).sum())
        scheduler.step()
        seconds.append(time.perf_counter() - started)
        accuracy = correct / len(test.dataset)
    return float(np.mean(seconds)), accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", choices=sorted(RECIPES), action="append")
    parser.add_argument("--epochs", type=int, help="fewer epochs than the recipe's (a quick "
                                                   "look; the accuracies are then not the "
                                                   "recipe's)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rows = []
    for example in args.example or list(RECIPES):
        epochs = args.epochs or RECIPES[example]["epochs"]
        ours = run_minigrad(example, epochs, args.data_dir)
        theirs = run_torch(example, epochs, args.data_dir)
        rows.append(f"| {RECIPES[example]['script']}, {epochs} epochs | {ours[0]:.1f} s, "
                    f"{ours[1]:.2%} | {theirs[0]:.1f} s, {theirs[1]:.2%} | "
                    f"{ours[0] / theirs[0]:.2f} |")
        print(rows[-1], flush=True)
    report = "\n".join([
        TITLE, "", f"Machine: {machine()}.",
        "Command: `python benchmarks/examples_epoch.py --write`. Seconds per epoch (training "
        "and the test pass, the mean over the epochs) and the final test accuracy; the PyTorch "
        "script follows the same recipe (see the script's docstring).", "",
        "| example | minigrad | PyTorch | minigrad / PyTorch (time) |", "|---|---|---|---|",
        *rows, ""])
    print(report)
    if args.write:
        write_section(TITLE, report)


if __name__ == "__main__":
    main()
