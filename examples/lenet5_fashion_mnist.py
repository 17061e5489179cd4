"""Train LeNet5 on Fashion-MNIST and report its test accuracy.

    python examples/lenet5_fashion_mnist.py [--epochs 10] [--batch-size 64] [--lr 0.002]
        [--optimizer adam|sgd] [--schedule cosine|none] [--device cpu] [--data-dir DIR]
        [--out runs/lenet5] [--seed 0] [--subset N] [--resume]

The learning rate follows a cosine from --lr down to 0 over the epochs (--schedule cosine).

The data comes from --data-dir, ~/.cache/minigrad/fashion-mnist, Debian's package
(apt-get install dataset-fashion-mnist), or a download. Writes history.json/.csv, curves.png,
last.npz (the checkpoint; run again with --resume to continue) and best.npz to --out.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import minigrad as mg
import minigrad.nn as nn
from minigrad.data import DataLoader, FashionMNIST, Subset
from minigrad.data import transforms as T
from minigrad.metrics import accuracy
from minigrad.models import LeNet5
from minigrad.training import evaluate, fit

MEAN, STD = 0.2860, 0.3530  # of the Fashion-MNIST training images


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--schedule", choices=["cosine", "none"], default="cosine")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default=None, help="folder with the four IDX .gz files")
    parser.add_argument("--out", default="runs/lenet5", help="where results and checkpoints go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subset", type=int, default=None,
                        help="train and test on the first N images only (a quick smoke run)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.npz")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    mg.manual_seed(args.seed)
    pipeline = T.Compose([T.ToArray(), T.Normalize([MEAN], [STD])])
    train = FashionMNIST(args.data_dir, train=True, transform=pipeline)
    test = FashionMNIST(args.data_dir, train=False, transform=pipeline)
    if args.subset:
        train, test = Subset(train, range(args.subset)), Subset(test, range(args.subset))
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

    started = time.perf_counter()
    history = fit(model, optimizer, loss_fn, train_loader, test_loader, epochs=args.epochs,
                  device=args.device, metric=accuracy, metric_name="accuracy",
                  scheduler=scheduler, out_dir=args.out,
                  resume=args.resume, progress=not args.no_progress)
    _, outputs, targets = evaluate(model, test_loader, loss_fn, args.device)
    seconds = np.mean([r["seconds"] for r in history]) if history else 0.0
    print(f"test accuracy {accuracy(outputs, targets):.2%} after {len(history)} epochs; "
          f"{seconds:.1f} s per epoch ({time.perf_counter() - started:.0f} s in all)")
    print(f"wrote {args.out}/history.json, history.csv, curves.png, last.npz and best.npz")


if __name__ == "__main__":
    main()
