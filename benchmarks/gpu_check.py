"""Check minigrad's CUDA path on a real GPU, in one command:

    python benchmarks/gpu_check.py [--batch-sizes 32 64] [--tf32] [--kernels] [--write]

(a) every op and layer on cuda and on cpu with the same inputs: forward values and gradients
    must agree; (b) LeNet5 trains for a few hundred steps on cuda and its loss must fall;
(c) a VGG16 training step (forward, backward, SGD step) at 224x224, minigrad against torch at
    the same precision (TF32 off on both, or on both with --tf32), in the same run: images/s,
    the ratio, and the peak GPU memory of each; (d) with --write, the table goes to
    benchmarks/RESULTS.md with the GPU's name. Exits non-zero if (a) or (b) fails.
With --kernels, minigrad's CUDA kernels (minigrad/kernels, off by default) are switched on for
all of it: their (a) passing on a real GPU is what lets them be turned on by default.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import minigrad as mg
import minigrad.nn.functional as F

TITLE = "## GPU check (benchmarks/gpu_check.py)"

# name -> (function of minigrad tensors, input shapes, integer inputs' (shape, high))
OP_CHECKS = {
    "add/mul/div broadcast": (lambda a, b: (a + b) * a / (b.abs() + 1), [(4, 5), (5,)]),
    "exp/log/sqrt/clamp": (lambda a: (a.exp() + 1).log().sqrt().clamp(0.1, 2.0), [(3, 4)]),
    "reductions": (lambda a: a.sum(1) + a.mean(0).sum() + a.amax(1) + a.var(1) + a.std(1)
                   + a.logsumexp(1), [(4, 6)]),
    "softmax/log_softmax": (lambda a: a.softmax(1) * a.log_softmax(1), [(4, 7)]),
    "matmul batched": (lambda a, b: a @ b, [(2, 3, 4), (4, 5)]),
    "shape ops": (lambda a: mg.cat([a.permute(1, 0, 2), a.transpose(0, 1)], 0)
                  .reshape(-1)[::3].unsqueeze(0).expand(2, -1), [(2, 3, 4)]),
    "indexing": (lambda a: a[[0, 2, 2], 1:] * 2 + a[a > 0].sum(), [(4, 5)]),
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), [(2, 3, 9, 9),
                                                                        (4, 3, 3, 3), (4,)]),
    "conv2d groups dilation": (lambda x, w: F.conv2d(x, w, None, 1, 2, 2, 2),
                               [(2, 4, 8, 8), (6, 2, 3, 3)]),
    "max_pool2d tiled": (lambda x: F.max_pool2d(x, 2), [(2, 3, 8, 8)]),
    "max_pool2d overlapping": (lambda x: F.max_pool2d(x, 3, 2, 1), [(2, 3, 9, 9)]),
    "avg/adaptive pool": (lambda x: F.avg_pool2d(x, 2).sum() + F.adaptive_avg_pool2d(x, 3),
                          [(2, 3, 8, 8)]),
    "batch_norm train": (lambda x, w, b: F.batch_norm(x, None, None, w, b, True),
                         [(4, 3, 5, 5), (3,), (3,)]),
    "linear/leaky_relu": (lambda x, w, b: F.leaky_relu(F.linear(x, w, b), 0.1),
                          [(5, 4), (3, 4), (3,)]),
    "cross_entropy": (lambda x: F.cross_entropy(x, mg.tensor([0, 2, 1, 4], device=x.device),
                                                label_smoothing=0.1), [(4, 5)]),
    "bce_with_logits": (lambda x: F.binary_cross_entropy_with_logits(
        x, (x.detach() > 0).float(), pos_weight=mg.ones(3, device=x.device) * 2), [(4, 3)]),
}


def compare_ops(device: str, tolerance: float = 1e-4) -> list[tuple[str, float, bool]]:
    """(name, largest relative difference between cpu and device, passed) for each check."""
    rows = []
    for name, (fn, shapes) in OP_CHECKS.items():
        rng = np.random.default_rng(0)
        arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        results = []
        for where in ("cpu", device):
            inputs = [mg.tensor(a, device=where, requires_grad=True) for a in arrays]
            out = fn(*inputs)
            upstream = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
            out.backward(mg.tensor(upstream, device=where))
            results.append([out.numpy()] + [t.grad.numpy() for t in inputs])
        worst = max(float(np.max(np.abs(a - b) / (np.abs(a) + 1.0)) if a.size else 0.0)
                    for a, b in zip(*results))
        rows.append((name, worst, worst <= tolerance))
    return rows


def train_lenet(device: str, steps: int = 300, batch: int = 64) -> tuple[float, float]:
    """Mean loss of the first and the last 20 steps of LeNet5 on a learnable random problem."""
    mg.manual_seed(0)
    rng = np.random.default_rng(0)
    prototypes = rng.standard_normal((10, 1, 28, 28)).astype(np.float32)
    model = mg.models.LeNet5().to(device)
    optimizer = mg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(steps):
        labels = rng.integers(0, 10, batch)
        images = prototypes[labels] + 0.5 * rng.standard_normal((batch, 1, 28, 28),
                                                                  dtype=np.float32)
        loss = F.cross_entropy(model(mg.tensor(images, device=device)),
                               mg.tensor(labels, device=device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    values = [v.item() for v in losses]
    return statistics.mean(values[:20]), statistics.mean(values[-20:])


def time_vgg(batch: int, tf32: bool, steps: int = 5) -> dict:
    """Images/s and peak memory of a VGG16 training step at 224x224, minigrad and torch."""
    import cupy
    import torch

    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    mg.cuda.set_allow_tf32(tf32)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch, 3, 224, 224), dtype=np.float32)
    labels = rng.integers(0, 20, batch)
    result = {}
    pool = cupy.get_default_memory_pool()
    result["minigrad"] = _time_minigrad_vgg(images, labels, steps)
    result["minigrad_memory"] = pool.total_bytes() / 2**30  # the pool keeps what it needed
    pool.free_all_blocks()

    tnn = torch.nn
    layers, channels = [], 3
    for item in mg.models.vgg.CONFIG_D:
        if item == "M":
            layers.append(tnn.MaxPool2d(2))
        else:
            layers += [tnn.Conv2d(channels, item, 3, padding=1), tnn.ReLU(inplace=True)]
            channels = item
    theirs = tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d(7), tnn.Flatten(),
                            tnn.Linear(25088, 4096), tnn.ReLU(True), tnn.Dropout(),
                            tnn.Linear(4096, 4096), tnn.ReLU(True), tnn.Dropout(),
                            tnn.Linear(4096, 20)).cuda()
    torch_optimizer = torch.optim.SGD(theirs.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.tensor(images).cuda(), torch.tensor(labels).cuda()
    torch.cuda.reset_peak_memory_stats()

    def reference():
        loss = torch.nn.functional.cross_entropy(theirs(tx), ty)
        torch_optimizer.zero_grad()
        loss.backward()
        torch_optimizer.step()

    result["torch"] = _images_per_second(reference, batch, steps, torch.cuda.synchronize)
    result["torch_memory"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def _time_minigrad_vgg(images: np.ndarray, labels: np.ndarray, steps: int) -> float:
    import cupy

    model = mg.models.vgg16(num_classes=20).to("cuda")
    optimizer = mg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = mg.tensor(images, device="cuda"), mg.tensor(labels, device="cuda")

    def step():
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return _images_per_second(step, len(images), steps, cupy.cuda.Device().synchronize)


def _images_per_second(step, batch: int, steps: int, synchronize) -> float:
    step()
    synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    return batch * steps / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--tf32", action="store_true", help="TF32 matmuls on both sides")
    parser.add_argument("--lenet-steps", type=int, default=300)
    parser.add_argument("--kernels", action="store_true", help="with minigrad.kernels enabled")
    parser.add_argument("--no-timing", action="store_true", help="only parts (a) and (b)")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if not mg.cuda.is_available():
        print("gpu_check: no CUDA GPU found by CuPy; nothing to check here", file=sys.stderr)
        return 2
    mg.kernels.enable(args.kernels)
    lines = [TITLE, "", f"GPU: {gpu_name()}.",
             f"Command: `python benchmarks/gpu_check.py --batch-sizes "
             f"{' '.join(map(str, args.batch_sizes))}{' --tf32' if args.tf32 else ''}"
             f"{' --kernels' if args.kernels else ''}`.", "",
             "| op or layer | largest relative difference cuda vs cpu | ok |", "|---|---|---|"]
    ops = compare_ops("cuda")
    lines += [f"| {name} | {worst:.2e} | {'yes' if ok else 'NO'} |" for name, worst, ok in ops]
    first, last = train_lenet("cuda", args.lenet_steps)
    lenet_ok = last < 0.5 * first
    lines += ["", f"LeNet5 on cuda, {args.lenet_steps} steps: loss {first:.3f} -> {last:.3f} "
                  f"({'falls' if lenet_ok else 'DOES NOT FALL'}).", ""]
    if not args.no_timing:
        lines += ["| VGG16 step 224x224 | minigrad images/s | torch images/s | ratio | "
                  "minigrad memory | torch memory | memory ratio |",
                  "|---|---|---|---|---|---|---|"]
        for batch in args.batch_sizes:
            r = time_vgg(batch, args.tf32)
            lines.append(
                f"| batch {batch}, {'TF32' if args.tf32 else 'fp32'} | {r['minigrad']:.1f} | "
                f"{r['torch']:.1f} | {r['minigrad'] / r['torch']:.2f} | "
                f"{r['minigrad_memory']:.2f} GiB | {r['torch_memory']:.2f} GiB | "
                f"{r['minigrad_memory'] / r['torch_memory']:.2f} |")
            print(lines[-1], flush=True)
    report = "\n".join(lines) + "\n"
    print(report)
    if args.write:
        from common import write_section

        write_section(TITLE, report)
    return 0 if all(ok for _, _, ok in ops) and lenet_ok else 1


def gpu_name() -> str:
    import cupy

    properties = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = properties["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


if __name__ == "__main__":
    sys.exit(main())
