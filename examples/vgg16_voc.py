"""Train VGG16 (configuration D) for multi-label classification on Pascal VOC 2012.

(--arch resnet18 or resnet34 trains a ResNet instead, with the same data, loss and output.)

    python examples/vgg16_voc.py --voc-root DATA --download --device cuda [--epochs 30]
        [--batch-size 32] [--lr 0.01] [--optimizer sgd|adam] [--image-size 224] [--workers 2]
        [--arch vgg16|resnet18|resnet34] [--pretrained vgg16.npz] [--freeze-features]
        [--batch-norm] [--width-mult 1.0]
        [--out runs/vgg16_voc] [--resume]

    python examples/vgg16_voc.py --synthetic 16 --image-size 32 --width-mult 0.125 --epochs 1

--voc-root may be the folder holding VOCdevkit, VOCdevkit, or VOC2012; --download fetches
VOC2012 there first (1.9 GB from the official address or its mirror, MD5-checked, resumed
if it breaks off; skipped when the tree is there). Ctrl-C saves OUT/last.npz at the step it
stopped at; --resume continues from there. With --synthetic N the
example first writes a VOC-layout tree of N drawn images (make_synthetic_voc) and trains on
it (the tree goes to OUT/synthetic_voc): the whole path, checked in seconds, without the
2 GB download.

The loss is binary cross-entropy with logits over the 20 classes (an image may hold several);
training images are augmented (RandomResizedCrop, flip, colour jitter), validation images
resized and centre-cropped; after each epoch the per-class average precision and the mAP
(VOC's area under the precision envelope) are printed.
"""

from __future__ import annotations

import minigrad as mg  # first, before NumPy loads OpenBLAS: README, "Speed on the CPU"

# isort: split

from pathlib import Path

import numpy as np

import minigrad.nn as nn
from minigrad import cli
from minigrad.data import (
    VOC_CLASSES,
    DataLoader,
    VOCClassification,
)
from minigrad.data import transforms as T
from minigrad.metrics import average_precision, mean_average_precision
from minigrad.models import (
    freeze_features,
    load_pretrained,
    replace_fc,
    replace_head,
    resnet18,
    resnet34,
    vgg16,
)
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


HEADS = {"vgg16": "classifier.6.weight", "resnet18": "fc.weight", "resnet34": "fc.weight"}


def pretrained_classes(path, arch: str) -> int:
    """How many classes the weights file's last layer has (1000 when it has none)."""
    head = read_state_dict(path, wanted={HEADS[arch]}).get(HEADS[arch])
    return head.shape[0] if head is not None else 1000


def build_model(args):
    """The network of --arch with 20 outputs, from --pretrained weights if given (torchvision's
    1000-class head replaced), the features frozen with --freeze-features."""
    classes = pretrained_classes(args.pretrained, args.arch) if args.pretrained else 20
    if args.arch == "vgg16":
        model = vgg16(num_classes=classes, batch_norm=args.batch_norm,
                      width_mult=args.width_mult)
    else:
        if args.batch_norm:
            raise cli.UsageError(f"--batch-norm: only for --arch vgg16 ({args.arch} always "
                                 "has batch norm)")
        model = {"resnet18": resnet18, "resnet34": resnet34}[args.arch](
            num_classes=classes, width_mult=args.width_mult)
    if args.pretrained:
        load_pretrained(model, args.pretrained)
        if classes != 20:
            (replace_head if args.arch == "vgg16" else replace_fc)(model, 20)
    if args.freeze_features:
        if args.arch == "vgg16":
            freeze_features(model)
        else:  # everything but the last layer
            model.requires_grad_(False)
            model.fc.requires_grad_(True)
    return model


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_voc_arguments(parser, image_size=224, synthetic="images in VOC's layout")
    training = parser.add_argument_group("training")
    training.add_argument("--device", default="cpu",
                          help="cpu, or cuda (needs CuPy and an NVIDIA GPU)")
    training.add_argument("--epochs", type=cli.positive_int, default=30,
                          help="passes over the training set")
    training.add_argument("--batch-size", type=cli.positive_int, default=32,
                          help="images per training step")
    training.add_argument("--lr", type=cli.positive_float, default=0.01, help="learning rate")
    training.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd",
                          help="SGD with momentum 0.9 and weight decay 5e-4, or Adam")
    training.add_argument("--step-size", type=cli.positive_int, default=10,
                          help="StepLR: the lr is divided by 10 every this many epochs")
    training.add_argument("--seed", type=cli.seed, default=0, help="seed of weights and shuffling")
    cli.add_precision_argument(training)
    model = parser.add_argument_group("model")
    model.add_argument("--arch", choices=sorted(HEADS), default="vgg16",
                       help="the network: VGG16 (configuration D) or ResNet-18/34")
    model.add_argument("--pretrained", default=None,
                       help="weights to start from: torchvision's vgg16 or resnet18/34 "
                            ".pth/.npz, or a best.npz/last.npz of this script")
    model.add_argument("--freeze-features", action="store_true",
                       help="train only the classifier (transfer learning)")
    model.add_argument("--batch-norm", action="store_true",
                       help="VGG16-BN: batch norm after each convolution")
    model.add_argument("--width-mult", type=cli.positive_float, default=1.0,
                       help="scale every layer's width (0.125: a network small enough for a "
                            "CPU)")
    output = parser.add_argument_group("output")
    output.add_argument("--out", default="runs/vgg16_voc",
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
    if args.image_size < 32:
        raise cli.UsageError(f"--image-size {args.image_size}: {args.arch} halves the size five "
                             "times and needs at least 32")
    if args.pretrained is not None and not Path(args.pretrained).is_file():
        raise cli.UsageError(f"--pretrained {args.pretrained}: no such file")
    if args.pretrained is not None:  # read it now: a bad file is found before any work
        try:
            pretrained_classes(args.pretrained, args.arch)
        except (mg.CheckpointError, OSError) as error:
            raise cli.UsageError(f"--pretrained {args.pretrained}: {error}") from None
    root = cli.voc_tree(args)

    mg.manual_seed(args.seed)
    train_tf, val_tf = pipelines(args.image_size)
    train = VOCClassification(root, image_set="train", transform=train_tf)
    val = VOCClassification(root, image_set="val", transform=val_tf)
    train_loader = DataLoader(train, args.batch_size, shuffle=True, num_workers=args.workers,
                              seed=args.seed, device=args.device)
    val_loader = DataLoader(val, args.batch_size, num_workers=args.workers, device=args.device)

    # torchvision's weights end in 1000 ImageNet classes; a checkpoint of this script in 20
    try:
        model = build_model(args)
    except (mg.CheckpointError, RuntimeError) as error:
        raise cli.UsageError(f"--pretrained {args.pretrained}: {error}") from None
    model.to(args.device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "sgd":
        optimizer = mg.optim.SGD(trainable, lr=args.lr, momentum=0.9, weight_decay=5e-4)
    else:
        optimizer = mg.optim.Adam(trainable, lr=args.lr)
    scheduler = mg.optim.lr_scheduler.StepLR(optimizer, step_size=args.step_size, gamma=0.1)
    loss_fn = nn.BCEWithLogitsLoss()
    name = {"vgg16": "VGG16", "resnet18": "ResNet-18", "resnet34": "ResNet-34"}[args.arch]
    print(f"{name}{'-BN' if args.batch_norm else ''} (width x{args.width_mult}): "
          f"{sum(p.numel() for p in trainable):,} trainable parameters; {len(train)} training "
          f"and {len(val)} validation images at {args.image_size}x{args.image_size}; "
          f"device {args.device}")
    amp = cli.apply_precision(args.precision, args.device)

    with cli.training_errors(args):
        history = fit(model, optimizer, loss_fn, train_loader, val_loader, epochs=args.epochs,
                      device=args.device, metric=mean_average_precision, metric_name="mAP",
                      scheduler=scheduler, out_dir=args.out, resume=args.resume,
                      on_validation=print_per_class_ap, progress=not args.no_progress,
                      amp=amp)
    scores = [r["val_metric"] for r in history if r["val_metric"] is not None]
    if scores:
        print(f"best validation mAP {max(scores):.4f}; "
              f"{np.mean([r['seconds'] for r in history]):.1f} s per epoch")
    if history.trained:
        print(f"wrote {args.out}/history.json, history.csv, curves.png, last.npz and best.npz")


if __name__ == "__main__":
    cli.run(main)
