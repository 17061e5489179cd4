"""What several test files share: the devices present, the torch marker, array strategies."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import fake_cupy
import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import minigrad as mg

HAS_TORCH = importlib.util.find_spec("torch") is not None
requires_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
REAL_GPU = mg.cuda.is_available() and not fake_cupy.installed
requires_real_gpu = pytest.mark.skipif(not REAL_GPU, reason="no CUDA GPU found by CuPy")

# Every device-parametrised test runs on the CPU and on "cuda": the GPU where CuPy finds one,
# else the CuPy stand-in of tests/fake_cupy.py (installed by conftest.py).
DEVICES = ["cpu"] + (["cuda"] if mg.cuda.is_available() else [])


def sample(rng: np.random.Generator, shape: tuple, domain: str = "real") -> np.ndarray:
    """float64 values for an op's input, from the domain where the op is smooth.

    real: standard normal; positive: [0.5, 2); nonzero: |x| in [0.5, 2) with a random sign
    (for divisors); wide: normal * 10 (saturating sigmoid/tanh, softmax with large logits).
    """
    if domain == "real":
        return rng.standard_normal(shape)
    if domain == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "nonzero":
        return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    if domain == "wide":
        return rng.standard_normal(shape) * 10
    raise ValueError(domain)


@st.composite
def shapes(draw, min_dims=0, max_dims=3, min_side=1, max_side=4):
    return draw(array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                             max_side=max_side))


@st.composite
def broadcast_shapes(draw, count=2, max_dims=3, max_side=4):
    drawn = draw(mutually_broadcastable_shapes(num_shapes=count, min_dims=0, max_dims=max_dims,
                                               min_side=1, max_side=max_side))
    return drawn.input_shapes


@st.composite
def rngs(draw):
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


def torch():
    """The torch module, imported when a torch-side function first runs."""
    return importlib.import_module("torch")


@dataclass
class Case:
    """One drawn test case: the op for minigrad, its input arrays, the op for torch where it
    is spelled differently, and which inputs get gradients (default: the floating ones)."""

    fn: Callable
    inputs: list
    torch_fn: Callable | None = None
    requires_grad: list | None = None


@st.composite
def window_geometry(draw, max_extra=4):
    """A convolution's window settings and an input size they fit: kernel, stride, dilation,
    padding (top, bottom, left, right), and (H, W) at least the dilated kernel once padded."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    h = draw(st.integers(max(1, reach[0] - padding[0] - padding[1]), reach[0] + max_extra))
    w = draw(st.integers(max(1, reach[1] - padding[2] - padding[3]), reach[1] + max_extra))
    return dict(kernel=kernel, stride=stride, dilation=dilation, padding=padding, size=(h, w))


@contextlib.contextmanager
def kernel_threads(threads):
    """The kernels on `threads` threads, splitting even the tests' small jobs."""
    from minigrad.kernels import cpu as kernels

    before, least = kernels.get_num_threads(), kernels.MIN_WORK_PER_THREAD
    kernels.set_num_threads(threads)
    kernels.MIN_WORK_PER_THREAD = 0
    try:
        yield
    finally:
        kernels.set_num_threads(before)
        kernels.MIN_WORK_PER_THREAD = least
