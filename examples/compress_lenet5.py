"""Make a trained LeNet5 smaller four ways, and measure what each costs in accuracy.

    python examples/compress_lenet5.py [--epochs 10] [--finetune-epochs 2]
        [--sparsities 0.5 0.8 0.9] [--energies 0.9 0.97] [--finetune-lr 2e-4]
        [--data-dir DIR] [--subset N]
        [--out runs/compress_lenet5] [--seed 0] [--resume]

1. Train the teacher, LeNet5 on Fashion-MNIST (Adam, cosine; --resume continues it).
2. Prune: global L1 unstructured pruning at each --sparsities share of the weights (of all the
   conv and linear layers ranked together), fine-tuned for --finetune-epochs with the mask
   held, then made permanent (nn.utils.prune).
3. Quantize to int8: dynamic (the linear layers) and static (convs and linears, conv+ReLU
   and linear+ReLU fused, calibrated on 10 training batches) (mg.quantization).
4. Factorize: every conv and linear layer by a truncated SVD keeping --energies of its
   squared singular values, then fine-tuned (mg.compression.factorize_model).
5. Distil: a student with a quarter of the teacher's parameters, trained as long as the
   teacher alone and then from the teacher's soft targets (--temperature 2, --alpha 0.5),
   both from the same start, both reported.

For each: parameters (nonzero ones for pruning), bytes of its state_dict saved with mg.save
(int8 for quantized weights; pruned weights are still stored dense), multiply-adds per image
(mg.utils.summary; the nonzero share for pruning), CPU inference time over the test set, and
test accuracy. Writes compression.json, compression.md and compression.png to --out, and the
teacher's and the students' checkpoints in its subfolders.
"""

from __future__ import annotations

import minigrad as mg  # first, before NumPy loads OpenBLAS: README, "Speed on the CPU"

# isort: split

import copy
import json
import time
from pathlib import Path

import numpy as np

import minigrad.nn as nn
from minigrad import cli, compression, quantization
from minigrad.data import DataLoader
from minigrad.data import transforms as T
from minigrad.metrics import accuracy
from minigrad.models import LeNet5
from minigrad.nn.utils import prune
from minigrad.serialization import atomic_write_text
from minigrad.training import evaluate, fit, pyplot, save_figure

MEAN, STD = 0.2860, 0.3530


class SmallLeNet(nn.Module):
    """LeNet5's layout at about a quarter of its parameters (3 and 8 filters, 60 and 42
    units): the distillation student."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 3, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(3, 8, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(8 * 5 * 5, 60), nn.ReLU(),
                                        nn.Linear(60, 42), nn.ReLU(), nn.Linear(42, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=cli.positive_int, default=10,
                        help="the teacher's epochs (and the student's)")
    parser.add_argument("--finetune-epochs", type=cli.positive_int, default=2,
                        help="fine-tuning after pruning and after factorizing")
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.8, 0.9],
                        help="shares of the weights pruned, one run each")
    parser.add_argument("--energies", type=float, nargs="+", default=[0.9, 0.97],
                        help="shares of the singular values' energy each factorization keeps")
    parser.add_argument("--temperature", type=cli.positive_float, default=2.0,
                        help="distillation's T (the best of 2, 4 and 8 tried here)")
    parser.add_argument("--alpha", type=float, default=0.5,
                        help="distillation's weight of the soft targets, in [0, 1]")
    parser.add_argument("--batch-size", type=cli.positive_int, default=64)
    parser.add_argument("--lr", type=cli.positive_float, default=2e-3, help="Adam's lr")
    parser.add_argument("--finetune-lr", type=cli.positive_float, default=2e-4,
                        help="Adam's lr when fine-tuning a trained network (small: it starts "
                             "from a good point)")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the Fashion-MNIST IDX files (default: the cache, the "
                             "Debian package's folder, else a download)")
    parser.add_argument("--subset", type=cli.positive_int, default=None,
                        help="train and test on the first N images only (a quick run)")
    parser.add_argument("--out", default="runs/compress_lenet5")
    parser.add_argument("--seed", type=cli.seed, default=0)
    parser.add_argument("--resume", action="store_true",
                        help="continue the teacher from OUT/teacher/last.npz")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def test_accuracy(model, loader) -> float:
    _, outputs, targets = evaluate(model, loader, nn.CrossEntropyLoss(), "cpu")
    return float(accuracy(outputs, targets))


def measure(name: str, model, loader, out: Path, nonzero_share: float = 1.0,
            mult_adds: int | None = None) -> dict:
    """One row: parameters, bytes saved, multiply-adds, inference seconds, accuracy.
    (mult_adds: for quantized layers, which summary has no formula for, the float model's.)"""
    model.eval()
    state = {k: np.asarray(v) for k, v in model.state_dict().items()}
    path = out / "sizes" / f"{name.replace(' ', '_').replace('%', '').replace(',', '')}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    mg.save(state, path)
    floats = [p for p in model.parameters()]
    params = sum(p.numel() for p in floats) + sum(
        v.size for k, v in state.items() if k.endswith("weight_int8"))
    nonzero = sum(int(np.count_nonzero(p.numpy())) for p in floats) + sum(
        int(np.count_nonzero(v)) for k, v in state.items() if k.endswith("weight_int8"))
    macs = mult_adds if mult_adds is not None else mg.utils.summary(
        model, input_size=(1, 1, 28, 28), verbose=0).total_mult_adds
    started = time.perf_counter()
    acc = test_accuracy(model, loader)
    seconds = time.perf_counter() - started
    row = {"name": name, "parameters": params, "nonzero_parameters": nonzero,
           "bytes": path.stat().st_size, "mult_adds": int(macs * nonzero_share),
           "inference_seconds": seconds, "test_accuracy": acc}
    print(f"{name}: {acc:.2%} test accuracy, {nonzero:,} nonzero of {params:,} parameters, "
          f"{row['bytes']:,} bytes, {seconds:.2f} s over the test set")
    return row


def train(model, loader, test_loader, epochs, args, out, loss_fn=None, parameters=None,
          resume=False, lr=None):
    optimizer = mg.optim.Adam(parameters if parameters is not None else model.parameters(),
                              lr=args.lr if lr is None else lr)
    scheduler = mg.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    with cli.training_errors(args):
        return fit(model, optimizer, loss_fn or nn.CrossEntropyLoss(), loader, test_loader,
                   epochs=epochs, metric=accuracy, metric_name="accuracy",
                   scheduler=scheduler, out_dir=out, resume=resume,
                   progress=not args.no_progress, val_label="test")


def prunable(model) -> list:
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    for share in args.sparsities + args.energies:
        if not 0 < share < 1 or share != share:
            raise cli.UsageError(f"--sparsities/--energies: {share} must lie in (0, 1)")
    cli.output_folder("--out", args.out)
    out = Path(args.out)
    mg.manual_seed(args.seed)
    train_set, test_set = cli.fashion_mnist(
        args, T.Compose([T.ToArray(), T.Normalize([MEAN], [STD])]))
    loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed)
    test_loader = DataLoader(test_set, 1000)
    rows = []

    print("1. the teacher")
    teacher = LeNet5()
    train(teacher, loader, test_loader, args.epochs, args, out / "teacher", resume=args.resume)
    rows.append(measure("float LeNet5", teacher, test_loader, out))
    float_acc = rows[0]["test_accuracy"]

    print("\n2. pruning (global L1 unstructured, then fine-tuned)")
    for share in args.sparsities:
        pruned = copy.deepcopy(teacher)
        prune.global_unstructured(prunable(pruned), pruning_method=prune.L1Unstructured,
                                  amount=share)
        train(pruned, loader, test_loader, args.finetune_epochs, args,
              out / f"pruned_{round(share * 100)}", lr=args.finetune_lr)
        for module, name in prunable(pruned):
            prune.remove(module, name)
        rows.append(measure(f"pruned {share:.0%}", pruned, test_loader, out,
                            nonzero_share=1 - share))

    print("\n3. int8 quantization")
    float_macs = rows[0]["mult_adds"]
    rows.append(measure("int8 dynamic (linears)", quantization.quantize_dynamic(teacher),
                        test_loader, out, mult_adds=float_macs))
    fused = quantization.fuse_modules(teacher.eval(), [
        ["features.0", "features.1"], ["features.3", "features.4"],
        ["classifier.1", "classifier.2"], ["classifier.3", "classifier.4"]])
    prepared = quantization.prepare(fused)
    with mg.no_grad():
        for i, (images, _) in enumerate(loader):  # calibration
            prepared(images)
            if i == 9:
                break
    rows.append(measure("int8 static", quantization.convert(prepared), test_loader, out,
                        mult_adds=float_macs))

    print("\n4. low-rank factorization (then fine-tuned)")
    for energy in args.energies:
        factored = copy.deepcopy(teacher)
        ranks = compression.factorize_model(factored, energy=energy)
        print(f"energy {energy}: ranks {ranks}")
        train(factored, loader, test_loader, args.finetune_epochs, args,
              out / f"factorized_{round(energy * 100)}", lr=args.finetune_lr)
        rows.append(measure(f"factorized, energy {energy}", factored, test_loader, out))

    print("\n5. distillation into a student of a quarter of the parameters")
    mg.manual_seed(args.seed)
    alone = SmallLeNet()
    student = copy.deepcopy(alone)  # the same start for both
    train(alone, loader, test_loader, args.epochs, args, out / "student_alone")
    rows.append(measure("student alone", alone, test_loader, out))
    distiller = compression.Distiller(student, teacher)
    train(distiller, loader, test_loader, args.epochs, args, out / "student_distilled",
          loss_fn=compression.DistillationLoss(T=args.temperature, alpha=args.alpha),
          parameters=student.parameters())
    rows.append(measure("student distilled", student, test_loader, out))

    for row in rows:
        row["accuracy_change_points"] = 100 * (row["test_accuracy"] - float_acc)
    atomic_write_text(out / "compression.json", json.dumps(rows, indent=1))
    text = table(rows)
    atomic_write_text(out / "compression.md", text + "\n")
    plot(rows, out / "compression.png")
    print("\n" + text)
    print(f"\nwrote {out}/compression.json, compression.md and compression.png")


def table(rows) -> str:
    lines = ["| model | parameters (nonzero) | bytes saved | multiply-adds | CPU s, test set | "
             "test accuracy | change (points) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        macs = f"{r['mult_adds'] / 1e6:.2f} M"
        lines.append(f"| {r['name']} | {r['parameters']:,} ({r['nonzero_parameters']:,}) | "
                     f"{r['bytes']:,} | {macs} | {r['inference_seconds']:.2f} | "
                     f"{r['test_accuracy']:.2%} | {r['accuracy_change_points']:+.2f} |")
    return "\n".join(lines)


def plot(rows, path: Path) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    figure, (by_size, by_params) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in rows:
        for ax, x in ((by_size, r["bytes"] / 1e3), (by_params, r["nonzero_parameters"] / 1e3)):
            ax.scatter(x, 100 * r["test_accuracy"], s=40)
            ax.annotate(r["name"], (x, 100 * r["test_accuracy"]), fontsize=7,
                        textcoords="offset points", xytext=(4, 3))
    by_size.set(xlabel="saved state_dict (kB)", ylabel="test accuracy (%)")
    by_params.set(xlabel="nonzero parameters (thousands)", ylabel="test accuracy (%)")
    for ax in (by_size, by_params):
        ax.grid(alpha=0.3)
    figure.suptitle("LeNet5 on Fashion-MNIST, made smaller")
    figure.tight_layout()
    save_figure(figure, path)
    return True


if __name__ == "__main__":
    cli.run(main)
