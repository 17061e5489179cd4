"""Compare architectures on the same data for the same budget: size, cost, time and accuracy.

    python examples/architecture_study.py [--models preact_resnet18 resnet18 densenet121 vgg16]
        [--data cifar10|fashion-mnist|synthetic] [--data-dir DIR] [--download] [--epochs 5]
        [--batch-size 128] [--lr 0.05] [--width 1.0] [--subset N] [--device cpu]
        [--out runs/architecture_study] [--seed 0] [--resume]

The course's first project: "study the compromise between architecture size, performance and
training time". Each model is trained for --epochs epochs of SGD with momentum (cosine
schedule) on the same images in the same order, then measured: parameters and multiply-adds
(`mg.utils.summary` on one 3x32x32 image), seconds per epoch on this machine, test accuracy.

The models are the 32x32 forms: `preact_resnet18` (He et al. 2016), `resnet18` (the original
block, a 3x3 stem), `densenet121` (torchvision's layout; its stem leaves 8x8 maps) and
`vgg16` (13 convs with BN, one linear layer). --width scales their channels (and DenseNet's
growth rate) for runs on a CPU.

Data (--data): CIFAR-10 from --data-dir or ~/.cache/minigrad/cifar10 (--download fetches it,
170 MB, MD5-checked); fashion-mnist: its images padded to 32x32 and repeated over 3 channels;
synthetic: a small CIFAR-shaped tree written to OUT/synthetic_cifar (no download). Writes,
under --out: one folder per model (fit's history, curves.png, last.npz and best.npz; --resume
continues each), and study.json, study.csv, study.md and study.png (the table and its plot).
Ctrl-C stops the model in training (its last.npz keeps the step) and writes the table of the
models finished so far.
"""

from __future__ import annotations

import minigrad as mg  # first, before NumPy loads OpenBLAS: README, "Speed on the CPU"

# isort: split

import csv
import io
import json
import time
from pathlib import Path

import numpy as np

import minigrad.nn as nn
from minigrad import cli, models
from minigrad.data import DataLoader, Subset
from minigrad.data import transforms as T
from minigrad.metrics import accuracy
from minigrad.serialization import atomic_write_text
from minigrad.training import TrainingInterrupted, evaluate, fit, pyplot, save_figure

CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]


def densenet121(num_classes: int, width: float) -> nn.Module:
    return models.DenseNet(growth_rate=max(1, round(32 * width)), block_config=(6, 12, 24, 16),
                           num_init_features=max(2, round(64 * width)), num_classes=num_classes)


MODELS = {  # name -> (title, make(num_classes, width))
    "preact_resnet18": ("PreAct ResNet-18",
                        lambda classes, w: models.preact_resnet18(classes, width_mult=w)),
    "resnet18": ("ResNet-18 (32x32)",
                 lambda classes, w: models.cifar_resnet18(classes, width_mult=w)),
    "densenet121": ("DenseNet-121", densenet121),
    "vgg16": ("VGG16-BN (32x32)", lambda classes, w: models.cifar_vgg16(classes, width_mult=w)),
}


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                        help="the architectures to train, in this order")
    parser.add_argument("--data", choices=["cifar10", "fashion-mnist", "synthetic"],
                        default="cifar10", help="what they train on (see above)")
    parser.add_argument("--data-dir", default=None,
                        help="the folder holding cifar-10-batches-py (or Fashion-MNIST's files)")
    parser.add_argument("--download", action="store_true",
                        help="fetch CIFAR-10 (170 MB, MD5-checked) into --data-dir (or the "
                             "cache) first, unless it is already there")
    parser.add_argument("--synthetic-size", type=cli.positive_int, default=600,
                        help="training images of --data synthetic (and a fifth as many test)")
    parser.add_argument("--epochs", type=cli.positive_int, default=5,
                        help="the budget: passes over the training set, the same for each model")
    parser.add_argument("--batch-size", type=cli.positive_int, default=128)
    parser.add_argument("--lr", type=cli.positive_float, default=0.05,
                        help="SGD's learning rate (momentum 0.9, weight decay 5e-4, cosine)")
    parser.add_argument("--width", type=cli.positive_float, default=1.0,
                        help="scale of every model's channels (0.25 for a CPU run)")
    parser.add_argument("--subset", type=cli.positive_int, default=None,
                        help="train and test on the first N images only (a quick run)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, or cuda (needs CuPy and an NVIDIA GPU)")
    parser.add_argument("--out", default="runs/architecture_study",
                        help="where the models' folders and the study's table go")
    parser.add_argument("--seed", type=cli.seed, default=0, help="seed of weights and shuffling")
    parser.add_argument("--resume", action="store_true",
                        help="continue each model from OUT/MODEL/last.npz; a model already "
                             "trained for --epochs is only measured")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def datasets(args):
    """(train, test, number of classes), every image a normalised (3, 32, 32) float32 array."""
    if args.data == "fashion-mnist":
        pad = T.Compose([T.ToArray(), T.Normalize([0.2860], [0.3530]),
                         lambda x: np.repeat(np.pad(x, ((0, 0), (2, 2), (2, 2))), 3, axis=0)])
        train, test = cli.fashion_mnist(args, pad)
        return train, test, 10
    transform = T.Compose([T.ToArray(), T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    if args.data == "synthetic":
        root = Path(args.out) / "synthetic_cifar"
        mg.data.make_synthetic_cifar(root, n_train=args.synthetic_size,
                                     n_test=max(10, args.synthetic_size // 5), seed=args.seed)
        print(f"wrote {args.synthetic_size} synthetic CIFAR-10-shaped images to {root}")
    else:
        root = cli.existing_folder("--data-dir", args.data_dir) if args.data_dir else None
    try:
        train = mg.data.CIFAR10(root, train=True, transform=transform, download=args.download)
        test = mg.data.CIFAR10(root, train=False, transform=transform)
    except (FileNotFoundError, ValueError, OSError) as error:
        flag = "--data-dir" + (f" {args.data_dir}" if args.data_dir else "")
        raise cli.UsageError(f"{flag}: {error}; --download fetches CIFAR-10, --data "
                             "fashion-mnist or synthetic needs none") from None
    if args.subset:
        train = Subset(train, range(min(args.subset, len(train))))
        test = Subset(test, range(min(args.subset, len(test))))
    return train, test, 10


def study_one(name: str, args, train, test, classes: int) -> dict:
    """Train one model for the budget and measure it; its row of the table."""
    title, make = MODELS[name]
    mg.manual_seed(args.seed)  # each model starts from the same seed and sees the same order
    model = make(classes, args.width).to(args.device)
    stats = mg.utils.summary(model, input_size=(1, 3, 32, 32), device=args.device, verbose=0)
    print(f"\n{title}: {stats.total_params:,} parameters, "
          f"{stats.total_mult_adds / 1e6:,.1f} M multiply-adds per image")
    optimizer = mg.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    scheduler = mg.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    train_loader = DataLoader(train, args.batch_size, shuffle=True, seed=args.seed)
    test_loader = DataLoader(test, 500)
    loss_fn = nn.CrossEntropyLoss()
    out = Path(args.out) / name
    with cli.training_errors(args):
        history = fit(model, optimizer, loss_fn, train_loader, test_loader, epochs=args.epochs,
                      device=args.device, metric=accuracy, metric_name="accuracy",
                      scheduler=scheduler, out_dir=out, resume=args.resume,
                      progress=not args.no_progress, val_label="test")
    _, outputs, targets = evaluate(model, test_loader, loss_fn, args.device)
    seconds = [r["seconds"] for r in history]
    return {
        "model": name, "title": title, "parameters": stats.total_params,
        "mult_adds": stats.total_mult_adds,
        "seconds_per_epoch": float(np.median(seconds)) if seconds else None,
        "epochs": len(history), "test_accuracy": float(accuracy(outputs, targets)),
        "best_test_accuracy": max((r["val_metric"] for r in history
                                   if r["val_metric"] is not None), default=None),
    }


def table(rows: list[dict], args) -> str:
    lines = [f"Architecture study: {args.data}, {args.epochs} epochs, batch {args.batch_size}, "
             f"width x{args.width}, device {args.device}", "",
             "| model | parameters | multiply-adds / image | s / epoch | test accuracy |",
             "|---|---|---|---|---|"]
    for r in rows:
        seconds = "--" if r["seconds_per_epoch"] is None else f"{r['seconds_per_epoch']:.1f}"
        lines.append(f"| {r['title']} | {r['parameters']:,} | {r['mult_adds'] / 1e6:,.1f} M | "
                     f"{seconds} | {r['test_accuracy']:.2%} |")
    return "\n".join(lines)


def write_study(rows: list[dict], args) -> None:
    out = Path(args.out)
    atomic_write_text(out / "study.json", json.dumps(rows, indent=1))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "study.csv", text.getvalue())
    atomic_write_text(out / "study.md", table(rows, args) + "\n")
    plot(rows, out / "study.png")


def plot(rows: list[dict], path: Path) -> bool:
    """Test accuracy against parameters, multiply-adds and seconds per epoch."""
    plt = pyplot()
    if plt is None:
        return False
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, key, label in zip(axes, ("parameters", "mult_adds", "seconds_per_epoch"),
                              ("parameters (M)", "multiply-adds per image (M)",
                               "seconds per epoch")):
        for r in rows:
            x = r[key] if key == "seconds_per_epoch" else r[key] / 1e6
            if x is None:
                continue
            ax.scatter(x, 100 * r["test_accuracy"], s=40)
            ax.annotate(r["title"], (x, 100 * r["test_accuracy"]), fontsize=8,
                        textcoords="offset points", xytext=(4, 4))
        ax.set(xlabel=label, ylabel="test accuracy (%)")
        ax.grid(alpha=0.3)
    figure.suptitle("size, cost and time against accuracy, the same budget for each")
    figure.tight_layout()
    save_figure(figure, path)
    return True


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    cli.check_device("--device", args.device)
    cli.output_folder("--out", args.out)
    train, test, classes = datasets(args)
    print(f"{len(args.models)} models on {args.data}: {len(train)} training and {len(test)} "
          f"test images, {args.epochs} epochs each")
    rows = []
    started = time.perf_counter()
    try:
        for name in args.models:
            rows.append(study_one(name, args, train, test, classes))
    except (TrainingInterrupted, KeyboardInterrupt):  # (in fit, or between two models)
        if rows:
            write_study(rows, args)
            print(f"wrote the table of the {len(rows)} models finished to {args.out}/study.md")
        raise
    write_study(rows, args)
    print("\n" + table(rows, args))
    print(f"\n{time.perf_counter() - started:.0f} s in all; wrote {args.out}/study.json, "
          "study.csv, study.md and study.png")


if __name__ == "__main__":
    cli.run(main)
