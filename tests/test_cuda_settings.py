"""The GPU settings and the GPU check script, as far as they run without a GPU."""

import sys
import types
from pathlib import Path

import pytest

import minigrad as mg
from minigrad import backend

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


def test_allow_tf32_is_off_by_default_and_sets_cupy_s_matmul_compute_type(monkeypatch):
    calls = []
    linalg = types.SimpleNamespace(COMPUTE_TYPE_TF32="tf32", COMPUTE_TYPE_DEFAULT="default",
                                   set_compute_type=lambda dtype, kind: calls.append(kind))
    fake = types.SimpleNamespace(_core=types.SimpleNamespace(_routines_linalg=linalg),
                                 float32="float32")
    monkeypatch.setattr(backend, "_cupy", fake)
    assert mg.cuda.allow_tf32 is False
    try:
        mg.cuda.allow_tf32 = True
        assert mg.cuda.allow_tf32 is True and calls == ["tf32"]
    finally:
        mg.cuda.allow_tf32 = False
    assert calls == ["tf32", "default"]


def test_allow_tf32_names_the_workaround_where_cupy_has_no_switch(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", types.SimpleNamespace())
    with pytest.raises(RuntimeError, match="CUPY_TF32=1"):
        mg.cuda.set_allow_tf32(True)
    assert mg.cuda.allow_tf32 is False


@pytest.mark.skipif(not mg.cuda.is_available(), reason="no cuda device, real or stand-in")
def test_gpu_check_parts_a_and_b_pass_on_the_cuda_device():
    import gpu_check

    rows = gpu_check.compare_ops("cuda")
    assert len(rows) == len(gpu_check.OP_CHECKS)
    assert all(ok for _, _, ok in rows), [r for r in rows if not r[2]]
    first, last = gpu_check.train_lenet("cuda", steps=60, batch=32)
    assert last < 0.5 * first
