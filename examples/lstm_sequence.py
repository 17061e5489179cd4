"""An LSTM reads Fashion-MNIST images row by row, as 28-step sequences of 28 pixels, and
classifies them from its last hidden state: the classic first exercise with recurrent nets.

    python examples/lstm_sequence.py [--epochs 5] [--hidden 128] [--batch-size 128]
        [--lr 0.003] [--device cpu] [--data-dir DIR] [--out runs/lstm] [--subset N] [--resume]

The data comes from --data-dir, ~/.cache/minigrad/fashion-mnist, Debian's package
(apt-get install dataset-fashion-mnist), or a download. Writes history.json/.csv, curves.png,
last.npz and best.npz to --out; Ctrl-C saves last.npz at the step it stopped at, and
--resume continues from there.
"""

from __future__ import annotations

import minigrad as mg  # first, before NumPy loads OpenBLAS: README, "Speed on the CPU"

# isort: split

import time

import numpy as np

import minigrad.nn as nn
from minigrad import cli
from minigrad.data import DataLoader
from minigrad.data import transforms as T
from minigrad.metrics import accuracy
from minigrad.training import fit

MEAN, STD = 0.2860, 0.3530


class RowReader(nn.Module):
    """(N, 1, 28, 28) images -> 28 steps of 28 pixels -> LSTM -> last hidden state -> classes."""

    def __init__(self, hidden: int = 128, layers: int = 1, classes: int = 10):
        super().__init__()
        self.lstm = nn.LSTM(28, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, images):
        rows = images.reshape(images.shape[0], 28, 28)  # (N, T=28, 28 pixels)
        _, (h_n, _) = self.lstm(rows)
        return self.head(h_n[-1])  # the last layer's final hidden state


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=cli.positive_int, default=5,
                        help="passes over the training set")
    parser.add_argument("--hidden", type=cli.positive_int, default=128, help="LSTM units")
    parser.add_argument("--layers", type=cli.positive_int, default=1, help="stacked LSTM layers")
    parser.add_argument("--batch-size", type=cli.positive_int, default=128,
                        help="images per training step")
    parser.add_argument("--lr", type=cli.positive_float, default=3e-3,
                        help="Adam's learning rate (the cosine schedule's start)")
    cli.add_precision_argument(parser)
    parser.add_argument("--device", default="cpu",
                        help="cpu, or cuda (needs CuPy and an NVIDIA GPU)")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the four Fashion-MNIST IDX .gz files (default: "
                             "~/.cache/minigrad/fashion-mnist, the Debian package's folder, "
                             "else a download)")
    parser.add_argument("--out", default="runs/lstm", help="where results and checkpoints go")
    parser.add_argument("--seed", type=cli.seed, default=0, help="seed of weights and shuffling")
    parser.add_argument("--subset", type=cli.positive_int, default=None,
                        help="train and test on the first N images only (a quick smoke run)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/last.npz (where Ctrl-C or the last epoch left "
                             "it)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    cli.check_device("--device", args.device)
    cli.output_folder("--out", args.out)
    mg.manual_seed(args.seed)
    train, test = cli.fashion_mnist(args, T.Compose([T.ToArray(), T.Normalize([MEAN], [STD])]))
    train_loader = DataLoader(train, args.batch_size, shuffle=True, seed=args.seed)
    test_loader = DataLoader(test, 1000)
    model = RowReader(args.hidden, args.layers).to(args.device)
    optimizer = mg.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = mg.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    print(f"LSTM ({args.layers} x {args.hidden}) over the 28 rows of {len(train)} training "
          f"images; {sum(p.numel() for p in model.parameters()):,} parameters; device "
          f"{args.device}")
    amp = cli.apply_precision(args.precision, args.device)
    started = time.perf_counter()
    with cli.training_errors(args):
        history = fit(model, optimizer, nn.CrossEntropyLoss(), train_loader, test_loader,
                      epochs=args.epochs, device=args.device, metric=accuracy,
                      metric_name="accuracy", scheduler=scheduler, out_dir=args.out,
                      resume=args.resume, progress=not args.no_progress, val_label="test",
                      amp=amp)
    if history:
        print(f"test accuracy {history[-1]['val_metric']:.2%} after {len(history)} epochs; "
              f"{np.mean([r['seconds'] for r in history]):.1f} s per epoch "
              f"({time.perf_counter() - started:.0f} s in all)")
    if history.trained:
        print(f"wrote {args.out}/history.json, history.csv, curves.png, last.npz and best.npz")


if __name__ == "__main__":
    cli.run(main)
