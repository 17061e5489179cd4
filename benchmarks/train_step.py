"""A whole training step (forward, loss, backward, SGD-momentum step) and inference, minigrad
against PyTorch in the same run. One command:

    python benchmarks/train_step.py [--repeats 7] [--only lenet vgg course] [--write]

LeNet5 (1x28x28) at batch 64, 128 and 256, training and inference; VGG16 (configuration D,
full width) at batch 4 on 3x64x64 and batch 2 on 3x224x224, training; `--only course`: an
LSTM reading 28-step rows, a small U-Net's layers and a Linear-GELU-LayerNorm stack. Times
alternate between the libraries in blocks (see common.py); the ratio is minigrad / torch. Peak
memory (RSS) is measured for each library and case in a fresh process of its own.
"""

from __future__ import annotations

import minigrad  # noqa: F401  first, before NumPy loads OpenBLAS: README, "Speed on the CPU"

# isort: split

import argparse
import json
import subprocess
import sys

import numpy as np
from common import compare, machine, table, write_section

TITLE = "## Training step (benchmarks/train_step.py)"

# name -> (model, batch, image shape, training?, calls per block)
CASES = {
    "lenet": [
        ("LeNet5 train step, batch 64", "lenet", 64, (1, 28, 28), True, 10),
        ("LeNet5 train step, batch 128", "lenet", 128, (1, 28, 28), True, 10),
        ("LeNet5 train step, batch 256", "lenet", 256, (1, 28, 28), True, 5),
        ("LeNet5 inference, batch 64", "lenet", 64, (1, 28, 28), False, 20),
        ("LeNet5 inference, batch 256", "lenet", 256, (1, 28, 28), False, 10),
    ],
    "vgg": [
        ("VGG16 train step, batch 4, 64x64", "vgg16", 4, (3, 64, 64), True, 2),
        ("VGG16 train step, batch 2, 224x224", "vgg16", 2, (3, 224, 224), True, 1),
    ],
    # the parts of the course's other networks (issue 19): an LSTM reading Fashion-MNIST rows,
    # a small U-Net's layers, a transformer-style MLP block
    "course": [
        ("LSTM 28->128 + Linear, 28 steps, batch 128", "lstm", 128, (28, 28), True, 5),
        ("U-Net block (conv-BN-ReLU x2, pool, conv-BN, ConvTranspose2d, conv-BN, avg-pool, "
         "Linear), 8x3x64x64", "unet-block", 8, (3, 64, 64), True, 3),
        ("Linear-GELU-LayerNorm x2, 32x64x128", "gelu-ln", 32, (64, 128), True, 10),
    ],
}


def course_model(lib, model_name: str, classes: int = 10):
    """The networks of the "course" cases, written once for both libraries (minigrad's nn has
    torch's names)."""
    nn = lib.nn

    def conv_bn(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out)]

    if model_name == "lstm":
        class RowReader(nn.Module):  # examples/lstm_sequence.py's network
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(28, 128, batch_first=True)
                self.head = nn.Linear(128, classes)

            def forward(self, rows):
                _, (h_n, _) = self.lstm(rows)
                return self.head(h_n[-1])

        return RowReader()
    if model_name == "unet-block":
        return nn.Sequential(*conv_bn(3, 16), nn.ReLU(), *conv_bn(16, 16), nn.ReLU(),
                             nn.MaxPool2d(2), *conv_bn(16, 32), nn.ReLU(),
                             nn.ConvTranspose2d(32, 16, 2, stride=2), *conv_bn(16, 16),
                             nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(16, classes))
    if model_name == "gelu-ln":
        class Head(nn.Module):  # the last position's features -> classes
            def __init__(self):
                super().__init__()
                self.linear = nn.Linear(128, classes)

            def forward(self, x):
                return self.linear(x[:, -1])

        return nn.Sequential(nn.Linear(128, 256), nn.GELU(), nn.LayerNorm(256),
                             nn.Linear(256, 128), nn.GELU(), nn.LayerNorm(128), Head())
    raise ValueError(model_name)


def build(library: str, model_name: str, classes: int = 10):
    """The same network in minigrad or torch (torch's written with torch.nn)."""
    if library == "minigrad":
        import minigrad as mg

        mg.manual_seed(0)
        if model_name in ("lstm", "unet-block", "gelu-ln"):
            return mg, course_model(mg, model_name, classes)
        model = mg.models.LeNet5(classes) if model_name == "lenet" else mg.models.vgg16(classes)
        return mg, model
    import torch
    import torch.nn as tnn

    torch.manual_seed(0)
    if model_name in ("lstm", "unet-block", "gelu-ln"):
        return torch, course_model(torch, model_name, classes)
    if model_name == "lenet":
        model = tnn.Sequential(
            tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(6, 16, 5),
            tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(),
            tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, classes))
    else:
        layers, channels = [], 3
        for item in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                     512, 512, 512, "M"):
            if item == "M":
                layers.append(tnn.MaxPool2d(2))
            else:
                layers += [tnn.Conv2d(channels, item, 3, padding=1), tnn.ReLU()]
                channels = item
        model = tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d((7, 7)), tnn.Flatten(),
                               tnn.Linear(25088, 4096), tnn.ReLU(), tnn.Dropout(),
                               tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Dropout(),
                               tnn.Linear(4096, classes))
    return torch, model


def make_step(library: str, model_name: str, batch: int, shape: tuple, training: bool):
    lib, model = build(library, model_name)
    rng = np.random.default_rng(0)
    images = lib.tensor(rng.standard_normal((batch, *shape), dtype=np.float32))
    labels = lib.tensor(rng.integers(0, 10, batch))
    loss_fn = lib.nn.CrossEntropyLoss()
    optimizer = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if not training:
        model.eval()

        def infer():
            with lib.no_grad():
                model(images)

        return infer

    def step():
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def peak_rss(library: str, model_name: str, batch: int, shape, training: bool) -> float:
    """Peak resident memory (MiB) of a fresh process that builds the case and runs 3 steps."""
    # VmHWM is this process's own high-water mark (ru_maxrss would include the parent's,
    # which Linux carries across fork and exec)
    code = (
        "import sys; sys.path.insert(0, 'benchmarks')\n"
        "from train_step import make_step\n"
        f"step = make_step({library!r}, {model_name!r}, {batch}, {tuple(shape)}, {training})\n"
        "for _ in range(3): step()\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1]) / 1024  # VmHWM is in KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="blocks per library and case")
    parser.add_argument("--only", choices=sorted(CASES), nargs="+",
                        help="run these groups of cases only")
    parser.add_argument("--no-memory", action="store_true", help="skip the RSS measurements")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    rows, memory = [], []
    for group in args.only or list(CASES):
        for name, model_name, batch, shape, training, calls in CASES[group]:
            ours = make_step("minigrad", model_name, batch, shape, training)
            theirs = make_step("torch", model_name, batch, shape, training)
            rows.append((name, *compare(ours, theirs, args.repeats, calls)))
            del ours, theirs
            print(table(rows[-1:])[-1], flush=True)
            if not args.no_memory:
                ours_mb, theirs_mb = (peak_rss(lib, model_name, batch, shape, training)
                                      for lib in ("minigrad", "torch"))
                memory.append(f"| {name} | {ours_mb:.0f} MiB | {theirs_mb:.0f} MiB | "
                              f"{ours_mb / theirs_mb:.2f} |")
                print(memory[-1], flush=True)
    only = f" --only {' '.join(args.only)}" if args.only else ""
    report = [TITLE, "", f"Machine: {machine()}.",
              f"Command: `python benchmarks/train_step.py --repeats {args.repeats}{only} "
              "--write`. float32, SGD with momentum, cross-entropy; time per step, median of "
              "the blocks (interquartile range).", "", *table(rows), ""]
    if memory:
        report += ["Peak resident memory of a fresh process running 3 steps of the case:", "",
                   "| case | minigrad | torch | minigrad / torch |", "|---|---|---|---|",
                   *memory, ""]
    print("\n".join(report))
    if args.write:
        write_section(TITLE, "\n".join(report))


if __name__ == "__main__":
    main()
