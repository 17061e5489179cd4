"""Train LeNet5 on Fashion-MNIST and report its test accuracy.

    python examples/lenet5_fashion_mnist.py [--epochs 10] [--batch-size 64] [--lr 0.002]
        [--optimizer adam|sgd] [--schedule cosine|none] [--device cpu] [--data-dir DIR]
        [--out runs/lenet5] [--seed 0] [--subset N] [--resume] [--debug]

The learning rate follows a cosine from --lr down to 0 over the epochs (--schedule cosine).

The data comes from --data-dir, ~/.cache/minigrad/fashion-mnist, Debian's package
(apt-get install dataset-fashion-mnist), or a download. Writes history.json/.csv, curves.png,
last.npz (the checkpoint; run again with --resume to continue) and best.npz to --out.
Ctrl-C saves last.npz at the step it stopped at; --resume continues from there.
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
from minigrad.models import LeNet5
from minigrad.training import evaluate, fit

MEAN, STD = 0.2860, 0.3530  # of the Fashion-MNIST training images


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=cli.positive_int, default=10,
                        help="passes over the training set")
    parser.add_argument("--batch-size", type=cli.positive_int, default=64,
                        help="images per training step")
    parser.add_argument("--lr", type=cli.positive_float, default=2e-3,
                        help="learning rate (where the cosine schedule starts)")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                        help="Adam, or SGD with momentum 0.9")
    parser.add_argument("--schedule", choices=["cosine", "none"], default="cosine",
                        help="cosine: the lr falls from --lr to 0 over the epochs")
    parser.add_argument("--device", default="cpu",
                        help="cpu, or cuda (needs CuPy and an NVIDIA GPU)")
    cli.add_precision_argument(parser)
    parser.add_argument("--data-dir", default=None,
                        help="folder with the four Fashion-MNIST IDX .gz files (default: "
                             "~/.cache/minigrad/fashion-mnist, the Debian package's folder, "
                             "else a download)")
    parser.add_argument("--out", default="runs/lenet5", help="where results and checkpoints go")
    parser.add_argument("--seed", type=cli.seed, default=0, help="seed of weights and shuffling")
    parser.add_argument("--subset", type=cli.positive_int, default=None,
                        help="train and test on the first N images only (a quick smoke run)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/last.npz (where Ctrl-C or the last epoch left "
                             "it); more --epochs than before extends the run")
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

    model = LeNet5().to(args.device)
    if args.optimizer == "adam":
        optimizer = mg.optim.Adam(model.parameters(), lr=args.lr)
    else:
        optimizer = mg.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    scheduler = None
    if args.schedule == "cosine":
        scheduler = mg.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    loss_fn = nn.CrossEntropyLoss()
    print(f"LeNet5 on Fashion-MNIST: {len(train)} training and {len(test)} test images, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters, {args.optimizer} "
          f"lr {args.lr} ({args.schedule}), batch {args.batch_size}, device {args.device}")
    amp = cli.apply_precision(args.precision, args.device)

    started = time.perf_counter()
    with cli.training_errors(args):
        history = fit(model, optimizer, loss_fn, train_loader, test_loader, epochs=args.epochs,
                      device=args.device, metric=accuracy, metric_name="accuracy",
                      scheduler=scheduler, out_dir=args.out, resume=args.resume,
                      progress=not args.no_progress, val_label="test", amp=amp)
    _, outputs, targets = evaluate(model, test_loader, loss_fn, args.device, amp=amp)
    seconds = np.mean([r["seconds"] for r in history]) if history else 0.0
    print(f"test accuracy {accuracy(outputs, targets):.2%} after {len(history)} epochs; "
          f"{seconds:.1f} s per epoch ({time.perf_counter() - started:.0f} s in all)")
    if history.trained:
        print(f"wrote {args.out}/history.json, history.csv, curves.png, last.npz and best.npz")


if __name__ == "__main__":
    cli.run(main)
