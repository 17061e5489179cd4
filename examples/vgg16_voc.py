"""Train VGG16 (configuration D) for multi-label classification on Pascal VOC 2012.

    python examples/vgg16_voc.py --voc-root DATA --device cuda [--epochs 30] [--batch-size 32]
        [--lr 0.01] [--optimizer sgd|adam] [--image-size 224] [--workers 2]
        [--pretrained vgg16.npz] [--freeze-features] [--batch-norm] [--width-mult 1.0]
        [--out runs/vgg16_voc] [--resume]

    python examples/vgg16_voc.py --synthetic 16 --image-size 32 --width-mult 0.125 --epochs 1

--voc-root may be the folder holding VOCdevkit, VOCdevkit, or VOC2012. With --synthetic N the
example first writes a VOC-layout tree of N drawn images (make_synthetic_voc) and trains on
it (the tree goes to OUT/synthetic_voc): the whole path, checked in seconds, without the
2 GB download.

The loss is binary cross-entropy with logits over the 20 classes (an image may hold several);
training images are augmented (RandomResizedCrop, flip, colour jitter), validation images
resized and centre-cropped; after each epoch the per-class average precision and the mAP
(VOC's area under the precision envelope) are printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import minigrad as mg
import minigrad.nn as nn
from minigrad.data import VOC_CLASSES, DataLoader, VOCClassification, make_synthetic_voc
from minigrad.data import transforms as T
from minigrad.metrics import average_precision, mean_average_precision
from minigrad.models import freeze_features, load_pretrained, replace_head, vgg16
from minigrad.serialization import read_state_dict
from minigrad.training import fit

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def pipelines(size: int):
    train = T.Compose([
        T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4, 0.4),
        T.ToArray(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    val = T.Compose([
        T.Resize(size * 256 // 224), T.CenterCrop(size), T.ToArray(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    return train, val


def print_per_class_ap(outputs: np.ndarray, targets: np.ndarray) -> None:
    per_class = average_precision(outputs, targets)
    cells = [f"{name} {ap:.2f}" if not np.isnan(ap) else f"{name} -"
             for name, ap in zip(VOC_CLASSES, per_class)]
    for row in range(0, 20, 5):
        print("   " + " | ".join(cells[row:row + 5]))


def pretrained_classes(path) -> int:
    """How many classes the weights file's last layer has (1000 when it has none)."""
    head = read_state_dict(path, wanted={"classifier.6.weight"}).get("classifier.6.weight")
    return head.shape[0] if head is not None else 1000


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voc-root", default=None)
    parser.add_argument("--synthetic", type=int, default=None, metavar="N",
                        help="train on N synthetic images in VOC's layout instead")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    parser.add_argument("--step-size", type=int, default=10, help="StepLR period (epochs)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=2, help="loader threads")
    parser.add_argument("--pretrained", default=None, help="torchvision vgg16 weights .npz/.pth")
    parser.add_argument("--freeze-features", action="store_true",
                        help="train only the classifier (transfer learning)")
    parser.add_argument("--batch-norm", action="store_true")
    parser.add_argument("--width-mult", type=float, default=1.0)
    parser.add_argument("--out", default="runs/vgg16_voc")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.npz")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if (args.voc_root is None) == (args.synthetic is None):
        parser.error("give exactly one of --voc-root DIR and --synthetic N")

    mg.manual_seed(args.seed)
    root = args.voc_root
    if args.synthetic is not None:
        root = Path(args.out) / "synthetic_voc"
        make_synthetic_voc(root, args.synthetic, image_size=max(args.image_size, 32) * 3 // 2,
                           seed=args.seed)
        print(f"wrote {args.synthetic} synthetic images in VOC's layout to {root}")
    train_tf, val_tf = pipelines(args.image_size)
    train = VOCClassification(root, image_set="train", transform=train_tf)
    val = VOCClassification(root, image_set="val", transform=val_tf)
    train_loader = DataLoader(train, args.batch_size, shuffle=True, num_workers=args.workers,
                              seed=args.seed, device=args.device)
    val_loader = DataLoader(val, args.batch_size, num_workers=args.workers, device=args.device)

    # torchvision's weights end in 1000 ImageNet classes; a checkpoint of this script in 20
    classes = pretrained_classes(args.pretrained) if args.pretrained else 20
    model = vgg16(num_classes=classes, batch_norm=args.batch_norm, width_mult=args.width_mult)
    if args.pretrained:
        load_pretrained(model, args.pretrained)
        if classes != 20:
            replace_head(model, 20)
    if args.freeze_features:
        freeze_features(model)
    model.to(args.device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "sgd":
        optimizer = mg.optim.SGD(trainable, lr=args.lr, momentum=0.9, weight_decay=5e-4)
    else:
        optimizer = mg.optim.Adam(trainable, lr=args.lr)
    scheduler = mg.optim.lr_scheduler.StepLR(optimizer, step_size=args.step_size, gamma=0.1)
    loss_fn = nn.BCEWithLogitsLoss()
    print(f"VGG16{'-BN' if args.batch_norm else ''} (width x{args.width_mult}): "
          f"{sum(p.numel() for p in trainable):,} trainable parameters; {len(train)} training "
          f"and {len(val)} validation images at {args.image_size}x{args.image_size}; "
          f"device {args.device}")

    history = fit(model, optimizer, loss_fn, train_loader, val_loader, epochs=args.epochs,
                  device=args.device, metric=mean_average_precision, metric_name="mAP",
                  scheduler=scheduler, out_dir=args.out, resume=args.resume,
                  on_validation=print_per_class_ap, progress=not args.no_progress)
    if history:
        best = max(r["val_metric"] for r in history)
        print(f"best validation mAP {best:.4f}; {np.mean([r['seconds'] for r in history]):.1f} "
              f"s per epoch")
    print(f"wrote {args.out}/history.json, history.csv, curves.png, last.npz and best.npz")


if __name__ == "__main__":
    main()
