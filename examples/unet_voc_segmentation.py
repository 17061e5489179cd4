"""Train a U-Net for semantic segmentation on Pascal VOC 2012: a class for every pixel.

    python examples/unet_voc_segmentation.py --voc-root data/voc --download --device cuda
        [--epochs 50] [--batch-size 8] [--lr 0.001] [--image-size 256] [--width 32]
        [--depth 4] [--out runs/unet_voc] [--resume]

    python examples/unet_voc_segmentation.py --synthetic 64 --image-size 32 --width 8 --epochs 2

21 classes (background and VOC's 20); the void border (255) around objects counts in neither
the loss nor the metric. Training pairs are cropped, resized and flipped together (the mask
by nearest neighbour); validation pairs resized and centre-cropped. After each epoch the
per-class IoU and the mIoU are printed. With --synthetic N a VOC-layout tree of N drawn images
with their masks is written to OUT/synthetic_voc first. Ctrl-C saves OUT/last.npz at the step
it stopped at; --resume continues from there.
"""

from __future__ import annotations

import minigrad as mg  # first, before NumPy loads OpenBLAS: README, "Speed on the CPU"

# isort: split

import numpy as np

import minigrad.nn as nn
from minigrad import cli
from minigrad.data import DataLoader, VOCSegmentation, joint
from minigrad.metrics import iou_per_class, mean_iou, segmentation_confusion
from minigrad.models import unet
from minigrad.training import fit

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLASSES = VOCSegmentation.classes


def pipelines(size: int):
    train = joint.Compose([joint.RandomResizedCrop(size, scale=(0.3, 1.0)),
                           joint.RandomHorizontalFlip(), joint.ToArrays(),
                           joint.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    val = joint.Compose([joint.Resize(size), joint.CenterCrop(size), joint.ToArrays(),
                         joint.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return train, val


def miou(labels: np.ndarray, targets: np.ndarray) -> float:
    return mean_iou(segmentation_confusion(targets, labels, len(CLASSES)))


def print_per_class_iou(labels: np.ndarray, targets: np.ndarray) -> None:
    ious = iou_per_class(segmentation_confusion(targets, labels, len(CLASSES)))
    cells = [f"{name} {iou:.2f}" if not np.isnan(iou) else f"{name} -"
             for name, iou in zip(CLASSES, ious)]
    for row in range(0, len(cells), 6):
        print("   " + " | ".join(cells[row:row + 6]))


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_voc_arguments(parser, image_size=256, synthetic="images with masks")
    training = parser.add_argument_group("training")
    training.add_argument("--device", default="cpu",
                          help="cpu, or cuda (needs CuPy and an NVIDIA GPU)")
    training.add_argument("--epochs", type=cli.positive_int, default=50,
                          help="passes over the training set")
    training.add_argument("--batch-size", type=cli.positive_int, default=8,
                          help="images per training step")
    training.add_argument("--lr", type=cli.positive_float, default=1e-3,
                          help="Adam's learning rate (the cosine schedule's start)")
    training.add_argument("--seed", type=cli.seed, default=0, help="seed of weights and shuffling")
    cli.add_precision_argument(training)
    model = parser.add_argument_group("model")
    model.add_argument("--width", type=cli.positive_int, default=32,
                       help="channels of the first level (doubled at each level down)")
    model.add_argument("--depth", type=cli.positive_int, default=4,
                       help="how many times the encoder halves the size")
    output = parser.add_argument_group("output")
    output.add_argument("--out", default="runs/unet_voc",
                        help="where history, curves and checkpoints go")
    output.add_argument("--resume", action="store_true",
                        help="continue from OUT/last.npz (where Ctrl-C or the last epoch left "
                             "it); more --epochs than before extends the run")
    output.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    cli.check_voc_arguments(parser, args)
    cli.check_device("--device", args.device)
    cli.output_folder("--out", args.out)
    if args.image_size < 2**args.depth:
        raise cli.UsageError(f"--image-size {args.image_size}: a U-Net of --depth {args.depth} "
                             f"needs at least {2**args.depth} pixels a side")
    root = cli.voc_tree(args)
    mg.manual_seed(args.seed)
    train_pairs, val_pairs = pipelines(args.image_size)
    train = VOCSegmentation(root, image_set="train", transforms=train_pairs)
    val = VOCSegmentation(root, image_set="val", transforms=val_pairs)
    train_loader = DataLoader(train, args.batch_size, shuffle=True, num_workers=args.workers,
                              seed=args.seed, device=args.device)
    val_loader = DataLoader(val, args.batch_size, num_workers=args.workers, device=args.device)
    model = unet(len(CLASSES), width=args.width, depth=args.depth).to(args.device)
    optimizer = mg.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = mg.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    print(f"U-Net (width {args.width}, depth {args.depth}): "
          f"{sum(p.numel() for p in model.parameters()):,} parameters; {len(train)} training "
          f"and {len(val)} validation images at {args.image_size}x{args.image_size}; device "
          f"{args.device}")
    amp = cli.apply_precision(args.precision, args.device)
    with cli.training_errors(args):
        history = fit(model, optimizer, nn.CrossEntropyLoss(ignore_index=255), train_loader,
                      val_loader, epochs=args.epochs, device=args.device, metric=miou,
                      metric_name="mIoU", scheduler=scheduler, out_dir=args.out,
                      resume=args.resume, on_validation=print_per_class_iou,
                      progress=not args.no_progress, amp=amp,
                      output_transform=lambda scores: scores.argmax(1).astype(np.uint8))
    scores = [r["val_metric"] for r in history if r["val_metric"] is not None]
    if scores:
        print(f"best validation mIoU {max(scores):.4f}; "
              f"{np.mean([r['seconds'] for r in history]):.1f} s per epoch")
    if history.trained:
        print(f"wrote {args.out}/history.json, history.csv, curves.png, last.npz and best.npz")


if __name__ == "__main__":
    cli.run(main)
