"""Peak device memory of a VGG16 training step on "cuda", measured on the CPU through the CuPy
stand-in of the tests (tests/fake_cupy.py), which counts the bytes that device arrays own:

    python benchmarks/standin_memory.py [--batches 8 16] [--write]

The step is the one gpu_check.py times on a GPU (224x224, SGD momentum, cross-entropy, after
one warm-up step so that the momentum buffers exist). Memory grows linearly with the batch
once the convolution's column chunks reach their budget, so the two batches give a line,
extrapolated to batch 64 and compared with PyTorch's peak there, as measured on the H100
(8.17 GiB allocated, strict fp32; shared/gpu-evidence). This is an estimate of allocations,
not a GPU measurement: CuPy's pool and cuBLAS workspaces are not modelled.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fake_cupy  # noqa: E402 - the stand-in must be installed before minigrad computes

fake_cupy.install()

import minigrad as mg  # noqa: E402
import minigrad.nn.functional as F  # noqa: E402

TITLE = "## VGG16 step memory through the CuPy stand-in (benchmarks/standin_memory.py)"
TORCH_PEAK_GIB_H100 = 8.17  # batch 64, strict fp32, torch.cuda.max_memory_allocated


def peak_bytes(batch: int, size: int = 224) -> int:
    """Peak bytes owned by device arrays during one steady-state training step, everything
    the step keeps (parameters, gradients, momentum) included."""
    start = fake_cupy.MemoryWindow()
    mg.manual_seed(0)
    model = mg.models.vgg16(num_classes=20).to("cuda")
    optimizer = mg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = mg.randn(batch, 3, size, size, device="cuda")
    y = mg.randint(0, 20, (batch,), device="cuda")

    def step():
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    window = fake_cupy.MemoryWindow()
    step()
    return window.start - start.start + window.peak


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs=2, default=[8, 16])
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    rows = []
    for batch in args.batches:
        began = time.perf_counter()
        peak = peak_bytes(batch) / 2**30
        rows.append((batch, peak))
        print(f"batch {batch}: peak {peak:.2f} GiB ({time.perf_counter() - began:.0f} s)",
              flush=True)
    (b1, p1), (b2, p2) = rows
    per_image = (p2 - p1) / (b2 - b1)
    at_64 = p2 + (64 - b2) * per_image
    lines = [TITLE, "", f"Command: `python benchmarks/standin_memory.py --batches {b1} {b2}`.",
             "Bytes owned by device arrays, counted by the stand-in; not a GPU measurement.", "",
             "| batch | minigrad peak |", "|---|---|"]
    lines += [f"| {batch} | {peak:.2f} GiB |" for batch, peak in rows]
    lines += ["", f"Per image {per_image * 1024:.0f} MiB; extrapolated to batch 64: "
              f"{at_64:.2f} GiB, {at_64 / TORCH_PEAK_GIB_H100:.2f}x PyTorch's "
              f"{TORCH_PEAK_GIB_H100} GiB measured on the H100 (target <= 1.5x)."]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.write:
        from common import write_section

        write_section(TITLE, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
