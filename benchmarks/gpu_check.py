"""Check minigrad's CUDA path on a real GPU and measure it against PyTorch, in one command:

    PYTHONPATH=. python benchmarks/gpu_check.py [--batch 64] [--write]

Run it first whenever a GPU is at hand (about 2 minutes on an H100; under 8). It prints as it
goes, so a timeout loses nothing that was done:
  1 kernels    every CUDA kernel of minigrad/kernels against its NumPy twin (must be equal)
  2 fast paths every CUDA fast path (ops/fast/cuda_*.py) against its reference Function, on
               the GPU, values and gradients; every op on cuda against cpu; LeNet5 trains
  3 profile    GPU time per Function of one VGG16 training step (CUDA events), and the
               convolutions piece by piece (gpu_conv_breakdown.py): im2col in fp32 and TF32,
               Winograd in fp32, TF32 and float16
  4 speed      a VGG16 training step at 224x224 (SGD momentum, cross-entropy), minigrad
               against PyTorch in the same run, in four rows: "fp32" (TF32 off in both),
               "tf32" (on in both), "default" (each library as shipped: PyTorch's cuDNN
               convolutions in TF32, matmuls strict; minigrad the same) and "amp" (float16
               autocast with a GradScaler in both): images/s and peak memory (minigrad: the
               peak of the CuPy pool's used bytes through a memory hook; torch:
               max_memory_allocated)
  5 example    examples/vgg16_voc.py --synthetic on the GPU against a PyTorch script training
               the same epoch on the same tree through the same DataLoader
               (benchmarks/torch_vgg16_voc.py), in default and amp precision; and the
               DataLoader's images/s with one worker thread per core
With --write, the runs of 4 are appended to benchmarks/gpu_results.json and the report goes to
benchmarks/RESULTS.md. Exits non-zero if 1 or 2 finds a difference. A part that fails prints
its error and the next part runs, so one broken part loses nothing else.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

import minigrad as mg
import minigrad.nn.functional as F
from minigrad import cli
from minigrad.testing import assert_functions_agree, strict_float32

TITLE = "## GPU check (benchmarks/gpu_check.py)"
RESULTS_JSON = Path(__file__).with_name("gpu_results.json")
RUN_KEYS = ("device", "cupy", "torch", "model", "batch", "precision", "minigrad_images_per_s",
            "torch_images_per_s", "minigrad_peak_gib", "torch_peak_gib")

# name -> (function of minigrad tensors, input shapes)
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
    "relu": (lambda x: F.relu(x) * x, [(3, 4, 5)]),
    "linear/leaky_relu": (lambda x, w, b: F.leaky_relu(F.linear(x, w, b), 0.1),
                          [(5, 4), (3, 4), (3,)]),
    "cross_entropy": (lambda x: F.cross_entropy(x, mg.tensor([0, 2, 1, 4], device=x.device),
                                                label_smoothing=0.1), [(4, 5)]),
    "bce_with_logits": (lambda x: F.binary_cross_entropy_with_logits(
        x, (x.detach() > 0).float(), pos_weight=mg.ones(3, device=x.device) * 2), [(4, 3)]),
}


def say(*parts) -> None:
    print(*parts, flush=True)


# ---------------------------------------------------------------------------------------------
# 1 kernels against their twins


def kernel_cases():
    """(kernel name, call arguments as NumPy arrays and numbers, indices of the outputs, the
    number of threads or None, the compile-time constants or None): each kernel at a few
    geometries, padding, stride and dilation included."""
    from minigrad.kernels import im2col
    from minigrad.kernels import pool as pool_kernels

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for (n, c, h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw) in [
                ((2, 3, 9, 9), (3, 3), (2, 2), (1, 1), (1, 1)),
                ((3, 4, 10, 11), (3, 2), (1, 2), (0, 1), (2, 1)),
                ((4, 32, 30, 30), (3, 3), (1, 1), (1, 1), (1, 1))]:
            oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
            ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
            geometry = (n, c, h, w, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw)
            constants = im2col._constants(geometry)
            x = rng.standard_normal((n, c, h, w)).astype(dtype)
            cols = rng.standard_normal((c * kh * kw, n * oh * ow)).astype(dtype)
            yield ("minigrad_im2col", [x, *geometry, np.empty_like(cols)], [-1],
                   c * cols.shape[1], constants)
            yield "minigrad_col2im", [cols, *geometry, np.empty_like(x)], [-1], None, constants
            oc, plane = 5, oh * ow
            gemm = rng.standard_normal((oc, n * plane)).astype(dtype)
            out = np.empty((n, oc, oh, ow), dtype)
            bias = rng.standard_normal(oc).astype(dtype)
            yield ("minigrad_gemm_to_nchw", [gemm, bias, oc, plane, n * plane, out], [-1], None,
                   None)
            nchw = rng.standard_normal(out.shape).astype(dtype)
            yield ("minigrad_nchw_to_gemm", [nchw, oc, plane, n * plane, np.empty_like(gemm)],
                   [-1], None, None)
        for shape, kernel, stride, padding in [((2, 3, 9, 9), (3, 3), (2, 2), (1, 1)),
                                               ((4, 5, 8, 7), (2, 2), (2, 2), (0, 0))]:
            x = np.round(rng.standard_normal(shape) * 2).astype(dtype)  # ties too
            oh, ow = ((s + 2 * p - k) // st + 1
                      for s, k, st, p in zip(shape[2:], kernel, stride, padding))
            geometry = (*shape[2:], *kernel, oh, ow, *stride, *padding)
            out = np.empty((*shape[:2], oh, ow), dtype)
            argmax = np.empty(out.shape, pool_kernels.argmax_dtype(kernel))
            yield "minigrad_max_pool", [x, *geometry, out, argmax], [-2, -1], None, None
            index = rng.integers(0, kernel[0] * kernel[1], out.shape).astype(argmax.dtype)
            grad = rng.standard_normal(out.shape).astype(dtype)
            yield ("minigrad_max_pool_backward", [grad, index, *geometry, np.empty_like(x)], [-1],
                   None, None)
        x, g = (rng.standard_normal((4, 3, 5, 6)).astype(dtype) for _ in range(2))
        per_channel = [rng.standard_normal(3).astype(dtype) for _ in range(4)]
        yield "minigrad_batch_norm", [x, *per_channel, 30, 3, np.empty_like(x),
                                      np.empty_like(x)], [-2, -1], None, None
        yield "minigrad_batch_norm_backward", [g, x, *per_channel[:3], 30, 3, 120,
                                               np.empty_like(x)], [-1], None, None
        yield "minigrad_relu_backward", [np.round(x), g, np.empty_like(x)], [-1], None, None
    yield from winograd_kernel_cases(rng)


def winograd_kernel_cases(rng):
    """The seven Winograd kernels of each tile size, in float32 and float16 (autocast), on a
    layer with an odd size, uneven padding and partial edge tiles."""
    from minigrad.kernels import winograd

    n, c, k, h, w = 2, 3, 5, 7, 9
    for m in winograd.KERNELS:
        plan = winograd.Plan(m, h, w, 1, 2, h + 1 + 0 - 2, w + 2 + 1 - 2)
        name = f"_f{m}"
        tiles, points = n * plan.th * plan.tw, plan.points
        for dtype in (np.float32, np.float16):
            x = rng.standard_normal((n, c, h, w)).astype(dtype)
            constants_in = winograd._constants(plan, *winograd._IN)
            constants_out = winograd._constants(plan, *winograd._OUT)
            v = np.empty((points, c, tiles), dtype)
            yield (f"minigrad_winograd_input{name}", [x, *plan.input_geometry(n, c), v], [-1],
                   c * tiles, constants_in)
            mm = rng.standard_normal((points, k, tiles)).astype(np.float32)
            bias = rng.standard_normal(k).astype(dtype)
            out = np.zeros((n, k, plan.oh, plan.ow), dtype)
            yield (f"minigrad_winograd_output{name}", [mm, bias, *plan.output_geometry(n, k),
                                                       out], [-1], k * tiles, constants_out)
            grad = rng.standard_normal(out.shape).astype(dtype)
            dm = np.empty((points, k, tiles), dtype)
            yield (f"minigrad_winograd_output_adjoint{name}",
                   [grad, *plan.output_geometry(n, k), dm], [-1], k * tiles, constants_out)
            dv = rng.standard_normal((points, c, tiles)).astype(np.float32)
            yield f"minigrad_winograd_input_adjoint{name}", [c, tiles, dv], [-1], c * tiles, None
            yield (f"minigrad_winograd_gather{name}", [dv, *plan.input_geometry(n, c),
                                                       np.empty_like(x)], [-1], None,
                   constants_in)
            weight = rng.standard_normal((k, c, 3, 3)).astype(dtype)
            yield (f"minigrad_winograd_filter{name}", [weight, k, c,
                                                       np.empty((points, k, c), dtype)],
                   [-1], k * c, None)
            du = rng.standard_normal((points, k, c)).astype(np.float32)
            yield (f"minigrad_winograd_filter_adjoint{name}", [du, k, c, np.empty_like(weight)],
                   [-1], k * c, None)


def check_kernels() -> list[tuple[str, float, bool]]:
    """(case, largest relative difference kernel vs twin, passed) for every kernel case."""
    from minigrad import kernels
    from minigrad.kernels import activation, im2col, norm, pool, winograd

    xp = mg.backend.array_module("cuda")
    compiled = {}
    for module in (activation, im2col, norm, pool):
        for value in vars(module).values():
            if isinstance(value, kernels.Kernel):
                compiled[value.name] = value
    for steps in winograd.KERNELS.values():
        compiled.update({kernel.name: kernel for kernel in steps.values()})
    rows = []
    for k, (name, args, outputs, size, constants) in enumerate(kernel_cases()):
        expected = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        kernels.TWINS[name](*expected)
        on_device = [xp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
        compiled[name](*on_device, size=size, constants=constants)
        worst = max(_relative_difference(xp.asnumpy(on_device[i]), expected[i]) for i in outputs)
        # float16 results may differ by a rounding of the last bit (sums in another order)
        tolerance = 2e-3 if any(expected[i].dtype == np.float16 for i in outputs) else 1e-5
        rows.append((f"{name} #{k}", worst, worst <= tolerance))
    return rows


def _relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a.astype(np.float64) - b) / (np.abs(b) + 1.0)))


# ---------------------------------------------------------------------------------------------
# 2 fast paths, ops, LeNet5


def check_fast_paths() -> list[tuple[str, str]]:
    """(case, "ok" or the assertion's message) for each CUDA fast path against its reference."""
    from minigrad.ops import activation, conv, pool
    from minigrad.ops import normalization as norm
    from minigrad.ops.fast import cuda_activation, cuda_conv, cuda_norm, cuda_pool, cuda_winograd

    rng = np.random.default_rng(0)
    cases = [
        ("conv2d winograd 3x3 pad 1", cuda_winograd.Conv2dWinogradCUDA, conv.Conv2d,
         [rng.standard_normal((3, 16, 11, 9)), rng.standard_normal((8, 16, 3, 3)),
          rng.standard_normal(8)],
         dict(stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1), groups=1)),
        ("conv2d winograd pad (0, 2, 1, 0)", cuda_winograd.Conv2dWinogradCUDA, conv.Conv2d,
         [rng.standard_normal((2, 16, 8, 10)), rng.standard_normal((5, 16, 3, 3))],
         dict(stride=(1, 1), padding=(0, 2, 1, 0), dilation=(1, 1), groups=1)),
        ("conv2d 3x3 pad 1", cuda_conv.Conv2dCUDA, conv.Conv2d,
         [rng.standard_normal((4, 8, 12, 12)), rng.standard_normal((16, 8, 3, 3)),
          rng.standard_normal(16)],
         dict(stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1), groups=1)),
        ("conv2d stride 2 dilation 2 groups 2", cuda_conv.Conv2dCUDA, conv.Conv2d,
         [rng.standard_normal((3, 4, 11, 10)), rng.standard_normal((6, 2, 3, 2))],
         dict(stride=(2, 2), padding=(2, 1, 0, 1), dilation=(2, 1), groups=2)),
        ("max_pool2d 2x2", cuda_pool.MaxPool2dCUDA, pool.MaxPool2d,
         [np.round(rng.standard_normal((2, 3, 8, 8)))],
         dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0))),
        ("max_pool2d 3x3 stride 2 pad 1", cuda_pool.MaxPool2dCUDA, pool.MaxPool2d,
         [rng.standard_normal((2, 3, 9, 9))], dict(kernel=(3, 3), stride=(2, 2), padding=(1, 1))),
        ("batch_norm train", cuda_norm.BatchNormCUDA, norm.BatchNorm,
         [rng.standard_normal((4, 3, 5, 5)), rng.standard_normal(3), rng.standard_normal(3)],
         dict(running_mean=None, running_var=None, training=True, momentum=0.1, eps=1e-5)),
        ("relu", cuda_activation.ReLUCUDA, activation.ReLU, [rng.standard_normal((3, 4, 5))],
         {}),
    ]
    rows = []
    for name, fast_function, reference, inputs, settings in cases:
        # Winograd runs float32 and float16 only (its transforms sum in float32)
        precisions = (((np.float32, 2e-4),) if fast_function is cuda_winograd.Conv2dWinogradCUDA
                      else ((np.float64, 1e-9), (np.float32, 1e-4)))
        for dtype, tolerance in precisions:
            try:
                assert_functions_agree(fast_function, reference, inputs, dtype=dtype,
                                       device="cuda", atol=tolerance, rtol=tolerance,
                                       **settings)
                outcome = "ok"
            except AssertionError as error:
                outcome = str(error).splitlines()[0]
            rows.append((f"{name} {np.dtype(dtype).name}", outcome))
    return rows


@strict_float32()
def compare_ops(device: str, tolerance: float = 1e-4) -> list[tuple[str, float, bool]]:
    """(name, largest relative difference between cpu and device, passed) for each check, in
    strict float32 (the CPU's arithmetic)."""
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
        worst = max(_relative_difference(a, b) for a, b in zip(*results))
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


# ---------------------------------------------------------------------------------------------
# 3 profile and 4 speed


PRECISIONS = ("fp32", "tf32", "default", "amp")


@contextlib.contextmanager
def minigrad_precision(precision: str):
    """minigrad's switches for one row of part 4, restored afterwards: fp32 strict, tf32 in
    convolutions and matmuls, default and amp as shipped (amp adds autocast in the step)."""
    conv, matmul = mg.backends.cudnn.allow_tf32, mg.get_float32_matmul_precision()
    cli.set_precision_switches(precision)
    try:
        yield
    finally:
        mg.backends.cudnn.allow_tf32 = conv
        mg.set_float32_matmul_precision(matmul)


def minigrad_vgg_step(batch: int, size: int = 224, width_mult: float = 1.0, amp: bool = False):
    """A VGG16 training step on cuda (model, optimizer, fixed batch): a function of no
    arguments. With amp, the forward and loss run under float16 autocast and the step goes
    through a GradScaler, as a mixed-precision training script does."""
    mg.manual_seed(0)
    model = mg.models.vgg16(num_classes=20, width_mult=width_mult).to("cuda")
    optimizer = mg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = mg.amp.GradScaler("cuda", enabled=amp)
    rng = np.random.default_rng(0)
    x = mg.tensor(rng.standard_normal((batch, 3, size, size), dtype=np.float32), device="cuda")
    y = mg.tensor(rng.integers(0, 20, batch), device="cuda")

    def step():
        with mg.autocast("cuda", enabled=amp):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


class _Events:
    """Start/stop marks on the GPU's stream (CUDA events), read after one synchronisation."""

    def __init__(self):
        self.cupy = mg.backend.cupy_module()

    def mark(self):
        event = self.cupy.cuda.Event()
        event.record()
        return event

    def elapsed_ms(self, start, stop) -> float:
        stop.synchronize()
        return self.cupy.cuda.get_elapsed_time(start, stop)


def profile_step(step, steps: int = 3, clock=None) -> list[tuple[float, int, str]]:
    """(GPU ms per step, calls per step, "Function phase") for every Function that ran in
    `step`, largest first, timed with `clock` (CUDA events by default)."""
    from minigrad.autograd import Function

    clock = clock or _Events()
    marks = collections.defaultdict(list)
    originals = {}

    def timed(cls, phase, original):
        def run(ctx, *args, **kwargs):
            start = clock.mark()
            result = original(ctx, *args, **kwargs)
            marks[f"{cls.__name__} {phase}"].append((start, clock.mark()))
            return result

        return staticmethod(run)

    step()  # warm-up: compile the kernels (and import the fast paths) outside the timing
    classes, pending = set(), list(Function.__subclasses__())
    while pending:
        cls = pending.pop()
        classes.add(cls)
        pending += cls.__subclasses__()
    for cls in classes:
        for phase in ("forward", "backward"):
            if phase in cls.__dict__:
                originals[(cls, phase)] = cls.__dict__[phase]
                setattr(cls, phase, timed(cls, phase, getattr(cls, phase)))
    try:
        for _ in range(steps):
            step()
    finally:
        for (cls, phase), original in originals.items():
            setattr(cls, phase, original)
    rows = [(sum(clock.elapsed_ms(a, b) for a, b in pairs) / steps, len(pairs) // steps, key)
            for key, pairs in marks.items()]
    return sorted(rows, reverse=True)


def _peak_hook():
    """A CuPy memory hook that keeps the peak of the pool's used bytes (not its total, which
    keeps freed blocks cached)."""
    cupy = mg.backend.cupy_module()

    class PeakUsedBytes(cupy.cuda.MemoryHook):
        name = "minigrad_peak_used_bytes"

        def __init__(self):
            super().__init__()
            self.pool = cupy.get_default_memory_pool()
            self.peak = self.pool.used_bytes()

        def malloc_postprocess(self, **kwargs):
            self.peak = max(self.peak, self.pool.used_bytes())

    return PeakUsedBytes()


def _images_per_second(step, batch: int, steps: int, synchronize) -> float:
    step()
    synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    return batch * steps / (time.perf_counter() - start)


def time_minigrad(batch: int, precision: str, steps: int = 5) -> tuple[float, float]:
    """(images/s, peak GiB) of minigrad's VGG16 step on cuda in one of PRECISIONS."""
    cupy = mg.backend.cupy_module()
    step = None
    with minigrad_precision(precision):
        try:
            step = minigrad_vgg_step(batch, amp=precision == "amp")
            step()  # momentum buffers exist from here on, as in training
            cupy.cuda.Device().synchronize()
            hook = _peak_hook()
            with hook:
                speed = _images_per_second(step, batch, steps, cupy.cuda.Device().synchronize)
            return speed, hook.peak / 2**30
        finally:
            step = None  # the model and its arrays go back to the pool, and the pool to the GPU
            cupy.get_default_memory_pool().free_all_blocks()


def torch_vgg16(num_classes: int = 20, device: str = "cuda", width_mult: float = 1.0):
    """torchvision's VGG16 (configuration D) without torchvision; width_mult scales every
    layer, as minigrad's vgg16 does (for a CPU smoke run)."""
    import torch

    tnn = torch.nn
    layers, channels = [], 3
    for item in mg.models.vgg.CONFIG_D:
        if item == "M":
            layers.append(tnn.MaxPool2d(2))
        else:
            width = max(1, round(item * width_mult))
            layers += [tnn.Conv2d(channels, width, 3, padding=1), tnn.ReLU(inplace=True)]
            channels = width
    hidden = max(1, round(4096 * width_mult))
    return tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d(7), tnn.Flatten(),
                          tnn.Linear(channels * 49, hidden), tnn.ReLU(True), tnn.Dropout(),
                          tnn.Linear(hidden, hidden), tnn.ReLU(True), tnn.Dropout(),
                          tnn.Linear(hidden, num_classes)).to(device)


def set_torch_precision(precision: str) -> None:
    """PyTorch's switches for one row: fp32 both off, tf32 both on, default and amp as
    PyTorch ships them (cuDNN convolutions TF32, matmuls strict)."""
    import torch

    torch.backends.cudnn.allow_tf32 = precision != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"


def time_torch(batch: int, precision: str, steps: int = 5) -> tuple[float, float]:
    """(images/s, peak GiB) of the same network and step in PyTorch on cuda (cuDNN)."""
    import torch

    set_torch_precision(precision)
    amp = precision == "amp"
    model = torch_vgg16()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((batch, 3, 224, 224), dtype=np.float32)).cuda()
    y = torch.tensor(rng.integers(0, 20, batch)).cuda()

    def step():
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    speed = _images_per_second(step, batch, steps, torch.cuda.synchronize)
    peak = torch.cuda.max_memory_allocated() / 2**30
    step = model = optimizer = x = y = None  # noqa: F841 - free the model before emptying
    torch.cuda.empty_cache()  # its model is gone; hand its cache back
    set_torch_precision("default")
    return speed, peak


def run_record(precision: str, batch: int, minigrad_result, torch_result) -> dict:
    """One run as gpu_results.json keeps it."""
    record = {"device": gpu_name(), "cupy": _version("cupy"), "torch": _version("torch"),
              "model": "vgg16", "batch": batch, "precision": precision,
              "minigrad_images_per_s": round(minigrad_result[0], 1),
              "torch_images_per_s": round(torch_result[0], 1),
              "minigrad_peak_gib": round(minigrad_result[1], 2),
              "torch_peak_gib": round(torch_result[1], 2)}
    assert tuple(record) == RUN_KEYS
    return record


def append_runs(runs: list[dict], path: Path = RESULTS_JSON) -> None:
    """Add `runs` to the list in gpu_results.json (made if missing), written atomically."""
    existing = json.loads(path.read_text()) if path.exists() else []
    if not isinstance(existing, list):
        raise ValueError(f"{path}: expected a JSON list of runs, found {type(existing).__name__}")
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(existing + runs, indent=1) + "\n")
    temporary.replace(path)


def speed_table(runs: list[dict]) -> list[str]:
    lines = ["| VGG16 step 224x224 | minigrad images/s | torch images/s | ratio | "
             "minigrad peak | torch peak | memory ratio |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(
            f"| batch {r['batch']}, {r['precision']} | {r['minigrad_images_per_s']} | "
            f"{r['torch_images_per_s']} | "
            f"{r['minigrad_images_per_s'] / r['torch_images_per_s']:.2f} | "
            f"{r['minigrad_peak_gib']} GiB | {r['torch_peak_gib']} GiB | "
            f"{r['minigrad_peak_gib'] / r['torch_peak_gib']:.2f} |")
    return lines


def gpu_name() -> str:
    cupy = mg.backend.cupy_module()
    properties = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = properties["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except ImportError:
        return "not installed"


def part(title: str, run) -> list[str]:
    """Run one part, printing as it goes; a failure prints its traceback and is reported in
    the lines returned, so the parts after it still run."""
    say(f"## {title}")
    try:
        return [f"### {title}", "", *run(), ""]
    except Exception:  # a broken part must not lose the others' figures
        text = traceback.format_exc()
        say(text)
        return [f"### {title}", "", f"FAILED: {text.strip().splitlines()[-1]}", ""]


def profile_report(batch: int) -> list[str]:
    import gpu_conv_breakdown

    rows = profile_step(minigrad_vgg_step(batch))
    lines = [f"GPU ms per Function of one VGG16 step (batch {batch}, default precision): "
             f"total {sum(ms for ms, _, _ in rows):.1f} ms.", "",
             "| Function | ms | calls |", "|---|---|---|"]
    for ms, calls, key in rows[:25]:
        say(f"{ms:8.2f} ms {calls:4d}x  {key}")
        lines.append(f"| {key} | {ms:.2f} | {calls} |")
    mg.backend.cupy_module().get_default_memory_pool().free_all_blocks()
    for path, precisions in (("im2col", ("fp32", "tf32")),
                             ("winograd", ("fp32", "tf32", "fp16"))):
        totals = gpu_conv_breakdown.breakdown(batch, path=path, precisions=precisions)
        table = gpu_conv_breakdown.table(path, totals)
        for line in table:
            say(line)
        lines += ["", *table]
        mg.backend.cupy_module().get_default_memory_pool().free_all_blocks()
    return lines


def speed_report(batch: int, runs: list) -> list[str]:
    for precision in PRECISIONS:
        ours = time_minigrad(batch, precision)
        say(f"minigrad {precision}: {ours[0]:.1f} images/s, peak {ours[1]:.2f} GiB")
        theirs = time_torch(batch, precision)
        say(f"torch    {precision}: {theirs[0]:.1f} images/s, peak {theirs[1]:.2f} GiB")
        runs.append(run_record(precision, batch, ours, theirs))
        say(speed_table(runs)[-1])
    return speed_table(runs)


def example_report(batch: int, images: int) -> list[str]:
    """Seconds of one epoch (train + validation) of examples/vgg16_voc.py and of
    benchmarks/torch_vgg16_voc.py on one synthetic tree, and the DataLoader's rate."""
    import data_pipeline

    root = Path(__file__).resolve().parent.parent
    workers = os.cpu_count() or 2
    lines = ["| one epoch, synthetic VOC, 224x224 | minigrad s | torch s | ratio (speed) |",
             "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        environment = dict(os.environ, PYTHONPATH=str(root))
        for precision in ("default", "amp"):
            seconds = []
            for script, extra in (("examples/vgg16_voc.py", ["--no-progress"]),
                                  ("benchmarks/torch_vgg16_voc.py", [])):
                out = Path(folder) / f"{Path(script).stem}_{precision}"
                command = [sys.executable, str(root / script), "--synthetic", str(images),
                           "--image-size", "224", "--batch-size", str(batch), "--epochs", "1",
                           "--workers", str(workers), "--device", "cuda", "--precision",
                           precision, "--out", str(out), *extra]
                result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                                        env=environment)
                if result.returncode:
                    raise RuntimeError(f"{script} failed: {result.stderr[-2000:]}")
                seconds.append(json.loads((out / "history.json").read_text())[0]["seconds"])
                say(f"{script} {precision}: {seconds[-1]:.1f} s")
            lines.append(f"| {precision} | {seconds[0]:.1f} | {seconds[1]:.1f} | "
                         f"{seconds[1] / seconds[0]:.2f} |")
            say(lines[-1])
        rate = data_pipeline.pipeline_rate(Path(folder) / "vgg16_voc_default" / "synthetic_voc",
                                           workers, batch)
    lines += ["", f"DataLoader (JPEG decode, RandomResizedCrop(224), flip, normalise, batch "
              f"{batch}) with {workers} worker threads: {rate:.0f} images/s."]
    say(lines[-1])
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="VGG16 batch size for 3 and 4")
    parser.add_argument("--lenet-steps", type=int, default=300)
    parser.add_argument("--no-timing", action="store_true", help="only parts 1 and 2")
    parser.add_argument("--no-example", action="store_true", help="skip part 5")
    parser.add_argument("--example-images", type=int, default=640,
                        help="synthetic VOC images for part 5's epoch")
    parser.add_argument("--write", action="store_true",
                        help="append to benchmarks/gpu_results.json and update RESULTS.md")
    args = parser.parse_args(argv)
    if not mg.cuda.is_available():
        print("gpu_check: no CUDA GPU found by CuPy; nothing to check here", file=sys.stderr)
        return 2
    say(f"# {gpu_name()}, CuPy {_version('cupy')}, torch {_version('torch')}, "
        f"Python {platform.python_version()}, kernels {'on' if mg.kernels.enabled() else 'off'}")
    lines = [TITLE, "", f"GPU: {gpu_name()}; CuPy {_version('cupy')}; torch {_version('torch')}.",
             f"Command: `PYTHONPATH=. python benchmarks/gpu_check.py --batch {args.batch}`.", ""]

    say("## 1 kernels against their NumPy twins")
    kernel_rows = check_kernels()
    for name, worst, ok in kernel_rows:
        say(f"{name}: max relative difference {worst:.1e} {'ok' if ok else 'DIFFERS'}")
    say("## 2 fast paths against their references, ops cuda against cpu, LeNet5")
    fast_rows = check_fast_paths()
    for name, outcome in fast_rows:
        say(f"{name}: {outcome}")
    op_rows = compare_ops("cuda")
    for name, worst, ok in op_rows:
        say(f"{name}: cuda vs cpu {worst:.1e} {'ok' if ok else 'DIFFERS'}")
    first, last = train_lenet("cuda", args.lenet_steps)
    lenet_ok = last < 0.5 * first
    say(f"LeNet5 {args.lenet_steps} steps on cuda: loss {first:.3f} -> {last:.3f}")
    correct = (all(ok for *_, ok in kernel_rows) and all(o == "ok" for _, o in fast_rows)
               and all(ok for *_, ok in op_rows) and lenet_ok)
    lines += [f"Kernels equal to their twins: {sum(ok for *_, ok in kernel_rows)}/"
              f"{len(kernel_rows)}. Fast paths equal to their references: "
              f"{sum(o == 'ok' for _, o in fast_rows)}/{len(fast_rows)}. Ops cuda vs cpu: "
              f"{sum(ok for *_, ok in op_rows)}/{len(op_rows)}. LeNet5 loss {first:.3f} -> "
              f"{last:.3f}.", ""]

    if not args.no_timing:
        lines += part("3 GPU time per Function and per piece of the convolutions",
                      lambda: profile_report(args.batch))
        runs: list[dict] = []
        lines += part("4 VGG16 training step against PyTorch",
                      lambda: speed_report(args.batch, runs))
        if args.write and runs:
            append_runs(runs)
            say(f"appended {len(runs)} runs to {RESULTS_JSON}")
        if not args.no_example:
            lines += part("5 the whole example against a PyTorch script, and the DataLoader",
                          lambda: example_report(args.batch, args.example_images))
    report = "\n".join(lines) + "\n"
    say(report)
    if args.write:
        from common import write_section

        write_section(TITLE, report)
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
