"""The PyTorch side of gpu_check.py's part 5: examples/vgg16_voc.py's epoch, written in PyTorch.

    python benchmarks/torch_vgg16_voc.py --synthetic 640 --image-size 224 --batch-size 64 \\
        --epochs 1 --workers 16 --device cuda --precision default --out runs/torch_voc

The same synthetic VOC tree (the example's, seed 0), the same DataLoader (minigrad's, with
the example's transforms, batch size, worker threads and shuffling), the same network (VGG16,
configuration D, 20 outputs), loss (BCEWithLogits), optimizer (SGD momentum 0.9, weight decay
5e-4) and per-epoch validation as the example, so the two epochs differ only in the engine.
Each batch arrives as NumPy arrays and is moved to the GPU with torch.from_numpy(...).cuda().
--precision: fp32 (TF32 off), tf32, default (PyTorch's: cuDNN convolutions in TF32) or amp
(float16 autocast with a GradScaler); with --device cpu (a smoke run) the precision switches
are left alone and amp is off. Writes OUT/history.json with the epoch's seconds, as minigrad's
fit does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from minigrad import cli
from minigrad.data import DataLoader, VOCClassification

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))


def main(argv=None) -> None:
    import torch
    from gpu_check import set_torch_precision, torch_vgg16

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=640)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", choices=["fp32", "tf32", "default", "amp"],
                        default="default")
    parser.add_argument("--width-mult", type=float, default=1.0,
                        help="scale every layer (0.125: small enough for a CPU smoke run)")
    parser.add_argument("--out", default="runs/torch_vgg16_voc")
    args = parser.parse_args(argv)
    from vgg16_voc import pipelines  # the example's own transforms

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # the example's own synthetic tree (its seed 0) and transforms
    root = cli.voc_tree(argparse.Namespace(synthetic=args.synthetic, out=out, seed=0,
                                           image_size=args.image_size))
    train_tf, val_tf = pipelines(args.image_size)
    train = DataLoader(VOCClassification(root, image_set="train", transform=train_tf),
                       args.batch_size, shuffle=True, num_workers=args.workers, seed=0)
    val = DataLoader(VOCClassification(root, image_set="val", transform=val_tf),
                     args.batch_size, num_workers=args.workers)
    if args.device != "cpu":
        set_torch_precision(args.precision)
    amp = args.precision == "amp" and args.device != "cpu"
    torch.manual_seed(0)
    model = torch_vgg16(device=args.device, width_mult=args.width_mult)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def on_gpu(batch):
        return torch.from_numpy(np.asarray(batch.numpy() if hasattr(batch, "numpy") else batch)
                                ).to(args.device, non_blocking=True)

    history = []
    for epoch in range(args.epochs):
        started = time.perf_counter()
        model.train()
        total, count = torch.zeros((), device=args.device), 0
        for images, targets in train:
            images, targets = on_gpu(images), on_gpu(targets).float()
            with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
                loss = loss_fn(model(images), targets)
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += loss.detach() * len(images)
            count += len(images)
        model.eval()
        with torch.no_grad():
            val_total, val_count = torch.zeros((), device=args.device), 0
            for images, targets in val:
                images, targets = on_gpu(images), on_gpu(targets).float()
                with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
                    val_total += loss_fn(model(images), targets) * len(images)
                val_count += len(images)
        record = {"epoch": epoch + 1, "train_loss": total.item() / count,
                  "val_loss": val_total.item() / max(val_count, 1),
                  "seconds": time.perf_counter() - started}
        history.append(record)
        print(f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}, val loss "
              f"{record['val_loss']:.4f}, {record['seconds']:.1f} s", flush=True)
    (out / "history.json").write_text(json.dumps(history, indent=1))


if __name__ == "__main__":
    main()
