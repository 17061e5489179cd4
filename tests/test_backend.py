"""Devices, array modules, dtype promotion, and running without CuPy."""

import subprocess
import sys

import numpy as np
import pytest
from helpers import requires_torch

import minigrad as mg
from minigrad import backend


def test_minigrad_imports_and_computes_where_cupy_cannot_be_imported():
    script = (
        "import sys; sys.modules['cupy'] = None\n"  # `import cupy` now raises ImportError
        "import minigrad as mg\n"
        "x = mg.randn(3, requires_grad=True); (x * x).sum().backward()\n"
        "assert not mg.cuda.is_available() and mg.cuda.device_count() == 0\n"
        "assert 'cupy' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_importing_minigrad_does_not_import_cupy():
    script = "import sys, minigrad; print('cupy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize(
    "spec, kind, index", [("cpu", "cpu", None), ("cuda", "cuda", 0), ("cuda:2", "cuda", 2)]
)
def test_device_strings(spec, kind, index):
    device = mg.device(spec)
    assert (device.type, device.index) == (kind, index)
    assert device == spec if spec != "cuda" else device == "cuda:0"
    assert str(mg.device(str(device))) == str(device)


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cpu:1", "cuda:"])
def test_bad_device_strings(bad):
    with pytest.raises(ValueError, match="device"):
        mg.device(bad)


def test_the_cpu_array_module_is_numpy():
    assert backend.array_module("cpu") is np
    assert backend.get_array_module(np.zeros(2)) is np
    assert backend.get_array_module(np.float32(1)) is np


def test_default_dtype_can_be_changed_and_restored():
    assert mg.get_default_dtype() == mg.float32
    try:
        mg.set_default_dtype(mg.float64)
        assert mg.tensor([1.0]).dtype == mg.float64 and mg.randn(2).dtype == mg.float64
    finally:
        mg.set_default_dtype(mg.float32)
    with pytest.raises(TypeError, match="floating"):
        mg.set_default_dtype(mg.int32)


@requires_torch
def test_dtype_promotion_matches_torch():
    import torch

    names = ["bool", "uint8", "int32", "int64", "float32", "float64"]
    for a in names:
        for b in names:
            ours = backend.promote_types(np.dtype(a if a != "bool" else np.bool_),
                                         np.dtype(b if b != "bool" else np.bool_))
            theirs = torch.promote_types(getattr(torch, a), getattr(torch, b))
            assert str(ours).replace("bool_", "bool") == str(theirs).replace("torch.", ""), (a, b)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_the_cpu_allocator_keeps_freed_memory_unless_told_not_to(monkeypatch):
    """Freeing activations early made glibc hand memory back mid-step and page-fault it in
    again (a LeNet5 step 1.9x slower); minigrad fixes malloc's thresholds on import."""
    assert backend.cpu_allocator_tuned
    monkeypatch.setenv("MINIGRAD_MALLOC_TUNING", "0")
    assert backend.tune_cpu_allocator() is False


@pytest.mark.parametrize("shape", [(4, 5, 3), (2, 3, 5, 3), (0, 5, 3), (4, 0, 3)])
@pytest.mark.parametrize("layout", ["C", "transposed", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_of_a_stack_by_a_matrix_is_numpys(shape, layout, dtype):
    """backend.matmul takes a C-contiguous stack's rows in one GEMM: the same products."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(dtype)
    if layout == "transposed":  # a (..., 5, 3) view of a (..., 3, 5) array
        a = np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)
    elif layout == "F":
        a = np.asfortranarray(a)
    b = rng.standard_normal((3, 6)).astype(dtype)
    ours = backend.matmul(a, b)
    expected = np.einsum("...ik,kj->...ij", a.astype(np.float64), b.astype(np.float64))
    assert ours.shape == (*shape[:-1], 6) and ours.dtype == dtype
    np.testing.assert_allclose(ours, expected, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-6 if dtype == np.float32 else 1e-12)
