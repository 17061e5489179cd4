"""Per-device fast paths of the heavy ops, and `select`, the one place that picks them.

Each heavy op has a reference Function in minigrad/ops (NCHW, the mathematics on one screen:
what a learner reads and what gradcheck and the PyTorch comparisons check). The modules here
compute the same thing faster on one device:

    cpu_conv.py         conv2d with the batch innermost in memory, (C, H, W, N): every im2col,
                        col2im and padding copy moves runs of N floats (NumPy keeps a layout
                        through elementwise ops, so ReLU and pooling keep it too)
    cpu_conv_direct.py  conv2d without im2col for layers with few weights per output and a
                        batch of 32+ (LeNet5's): compiled loops in that layout; and the
                        forward of an RGB image's 3x3 layer (Conv2dShortRowsCPU)
    cpu_winograd.py     conv2d 3x3 at stride 1 with 16+ input channels (a VGG's, a ResNet's)
                        by Winograd's F(2x2, 3x3): compiled transforms around 16 OpenBLAS
                        GEMMs, 2.25x fewer multiplications than im2col
    cpu_conv_transpose.py  conv_transpose2d in the same layout
    cpu_pool.py         max pooling whose windows tile the input: a maximum of strided sub-grids;
                        adaptive average pooling to a small output as one GEMM in x's layout
    cpu_norm.py         layer, group and batch norm, each way one compiled kernel (float32)
    cpu_activation.py   GELU, SiLU, softmax, log-softmax, ReLU's backward: compiled (float32)
    cpu_embedding.py    embedding: rows gathered, and added up in the backward, by compiled
                        loops (not np.add.at)
    cpu_rnn.py          a whole RNN/LSTM/GRU layer and direction as one Function, BPTT written
                        out, its cell arithmetic compiled (float32) or NumPy (its twins)
    cuda_winograd.py    conv2d 3x3 at stride 1 (all of VGG16 but its first layer) by Winograd's
                        F(2x2, 3x3): input/filter/output transform kernels around batched
                        cuBLAS GEMMs, 2.25x fewer multiplications than im2col
    cuda_conv.py        conv2d on NCHW-contiguous CuPy arrays: im2col/col2im kernels writing and
                        reading the GEMM's layout, 2-D GEMMs (cuBLAS, TF32 when allowed), the
                        batch in chunks so the columns stay within a memory budget
    cuda_pool.py        max pooling, one kernel each way, with the window offset of each max
    cuda_norm.py        batch norm, each elementwise half one kernel
    cuda_activation.py  ReLU whose backward is one kernel

A fast Function that handles only some settings says which with `supports(**settings)` (the
CPU's tiled max pooling needs stride == kernel and no padding), also given the `facts` its
op passes (a convolution's kernel size, dtype and input channels); the others handle all. A
device may list several fast Functions for one op: the first that supports the call runs.
tests/test_fast_paths.py checks every one against its reference, values and gradients.

The compiled CPU kernels (Numba, minigrad/kernels/cpu.py) are optional: without Numba, or with
`minigrad.kernels.cpu.enable(False)` (MINIGRAD_NUMBA=0), the fast paths that need them say so
in `supports` and the NumPy code runs.

`enable(False)` (or MINIGRAD_FAST=0) runs the references everywhere; on CUDA the fast paths
are also off while `minigrad.kernels` is.
"""

from __future__ import annotations

import os

import numpy as np

from minigrad import kernels

_enabled = os.environ.get("MINIGRAD_FAST", "1") != "0"
_paths: dict[str, dict] = {}

# The reference of a recurrent layer is not a Function but the unrolled loop of ordinary ops in
# nn/rnn.py (its _direction); this name stands for it here, where ops must not import nn.
RECURRENCE = "recurrence"


def blocks(total: int, bytes_each: int, budget: int) -> list[tuple[int, int]]:
    """(start, stop) ranges over `total` items (images of a batch, rows of an output) whose
    working memory, `bytes_each` per item, fits `budget` bytes; one item at least each."""
    step = max(1, budget // max(1, bytes_each))
    return [(start, min(total, start + step)) for start in range(0, total, step)]


def enable(on: bool = True) -> None:
    """Use the fast paths (the default) or, with False, only the reference Functions."""
    global _enabled
    _enabled = bool(on)


def enabled() -> bool:
    return _enabled


def paths(device_type: str) -> dict:
    """{reference Function: its fast Functions, first choice first} on "cpu" or "cuda"
    (imported on first use)."""
    if device_type not in _paths:
        from minigrad.ops import activation, conv, pool, upsample
        from minigrad.ops import normalization as norm  # mg.ops.norm is the function

        if device_type == "cpu":
            from minigrad.ops.fast import (
                cpu_activation,
                cpu_conv,
                cpu_conv_direct,
                cpu_conv_transpose,
                cpu_embedding,
                cpu_norm,
                cpu_pool,
                cpu_rnn,
                cpu_winograd,
            )

            _paths["cpu"] = {conv.Conv2d: (cpu_conv_direct.Conv2dDirectCPU,
                                           cpu_conv_direct.Conv2dShortRowsCPU,
                                           cpu_winograd.Conv2dWinogradCPU, cpu_conv.Conv2dCPU),
                             pool.MaxPool2d: (cpu_pool.MaxPool2dTiledCPU,),
                             pool.AdaptiveAvgPool2d: (cpu_pool.AdaptiveAvgPool2dCPU,),
                             norm.BatchNorm: (cpu_norm.BatchNormCPU,),
                             norm.Standardize: (cpu_norm.LayerNormCPU, cpu_norm.GroupNormCPU),
                             activation.ReLU: (cpu_activation.ReLUCPU,),
                             activation.GELU: (cpu_activation.GELUCPU,),
                             activation.SiLU: (cpu_activation.SiLUCPU,),
                             activation.Softmax: (cpu_activation.SoftmaxCPU,),
                             activation.LogSoftmax: (cpu_activation.LogSoftmaxCPU,),
                             upsample.Embedding: (cpu_embedding.EmbeddingCPU,),
                             upsample.ConvTranspose2d: (cpu_conv_transpose.ConvTranspose2dCPU,),
                             RECURRENCE: (cpu_rnn.RecurrenceCPU,)}
        else:
            from minigrad.ops.fast import (
                cuda_activation,
                cuda_conv,
                cuda_norm,
                cuda_pool,
                cuda_winograd,
            )

            _paths["cuda"] = {conv.Conv2d: (cuda_winograd.Conv2dWinogradCUDA,
                                            cuda_conv.Conv2dCUDA),
                              pool.MaxPool2d: (cuda_pool.MaxPool2dCUDA,),
                              norm.BatchNorm: (cuda_norm.BatchNormCUDA,),
                              activation.ReLU: (cuda_activation.ReLUCUDA,)}
    return _paths[device_type]


def select(reference, x, facts: dict | None = None, **settings):
    """The Function that computes `reference` for the tensor x with these settings: the first
    fast path of x's device that supports them (and the `facts`), else the reference."""
    if not _enabled:
        return reference
    if isinstance(x.array, np.ndarray):
        candidates = paths("cpu").get(reference, ())
    elif kernels.enabled():
        candidates = paths("cuda").get(reference, ())
    else:
        return reference
    for candidate in candidates:
        supports = getattr(candidate, "supports", None)
        if supports is None or supports(**settings, **(facts or {})):
            return candidate
    return reference
