"""Images per second of the VOC training pipeline. One command:

    python benchmarks/data_pipeline.py [--images 256] [--epochs 3] [--workers 0 2] [--write]

The pipeline: JPEG decode + RandomResizedCrop(224) + RandomHorizontalFlip + ToArray +
Normalize, batched by the DataLoader (batch 32), with each --workers count of worker threads
(0 and 2 by default; one per core on a GPU machine, to see whether the loader keeps up with
the GPU's step: gpu_check.py's part 5 does that), on a synthetic VOC tree of 500x375 JPEGs
(VOC's typical size) written to a temporary folder.
Where torchvision is installed, its pipeline (PIL decode, the same transforms, ToTensor,
Normalize, torch's DataLoader with 0 and 2 worker processes) runs on the same files. The
target: at least 300 images/s with 2 workers on a 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from common import machine, write_section

from minigrad.data import DataLoader, VOCClassification, make_synthetic_voc
from minigrad.data import transforms as T

TITLE = "## Data pipeline (benchmarks/data_pipeline.py)"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def images_per_second(loader, epochs: int) -> list[float]:
    next(iter(loader))  # warm-up: first decode, thread start
    rates = []
    for _ in range(epochs):
        start, count = time.perf_counter(), 0
        for images, _ in loader:
            count += len(images)
        rates.append(count / (time.perf_counter() - start))
    return rates


def minigrad_loader(root, workers: int, batch_size: int = 32):
    pipeline = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToArray(),
                          T.Normalize(MEAN, STD)])
    dataset = VOCClassification(root, image_set="trainval", transform=pipeline)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, seed=0)


def pipeline_rate(root, workers: int, batch_size: int = 32, epochs: int = 2) -> float:
    """The median images/s of minigrad's VOC training pipeline over the tree at `root`."""
    return statistics.median(images_per_second(minigrad_loader(root, workers, batch_size),
                                               epochs))


def torchvision_loader(root, workers: int):
    import torch
    import torchvision.transforms as TV

    pipeline = TV.Compose([TV.RandomResizedCrop(224), TV.RandomHorizontalFlip(), TV.ToTensor(),
                           TV.Normalize(MEAN, STD)])
    dataset = VOCClassification(root, image_set="trainval", transform=pipeline)
    return torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=True, num_workers=workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="worker thread counts to measure")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        make_synthetic_voc(root, args.images, image_size=(375, 500), seed=0)
        for workers in args.workers:
            rates = images_per_second(minigrad_loader(root, workers), args.epochs)
            rows.append(f"| minigrad DataLoader, {workers} worker threads | "
                        f"{statistics.median(rates):.0f} | {min(rates):.0f}-{max(rates):.0f} |")
            print(rows[-1], flush=True)
        try:
            import torchvision  # noqa: F401

            for workers in (0, 2):
                rates = images_per_second(torchvision_loader(root, workers), args.epochs)
                rows.append(f"| torchvision + torch DataLoader, {workers} worker processes | "
                            f"{statistics.median(rates):.0f} | {min(rates):.0f}-{max(rates):.0f} |")
                print(rows[-1], flush=True)
        except ImportError:
            rows.append("| torchvision | not installed here: no comparison | |")
    report = "\n".join([
        TITLE, "",
        f"Machine: {machine()}.",
        f"Command: `python benchmarks/data_pipeline.py --images {args.images} --epochs "
        f"{args.epochs} --workers {' '.join(map(str, args.workers))} --write`. "
        f"{args.images} synthetic 500x375 JPEGs; JPEG decode + "
        "RandomResizedCrop(224) + flip + ToArray + Normalize, batch 32; the median (range) of "
        f"{args.epochs} epochs. Target: >= 300 images/s with 2 workers.",
        "", "| loader | images/s | range |", "|---|---|---|", *rows, "",
    ])
    print(report)
    if args.write:
        write_section(TITLE, report)


if __name__ == "__main__":
    main()
