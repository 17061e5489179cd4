"""The GPU settings and the GPU check script, as far as they run without a GPU."""

import json
import sys
import time
import types
from pathlib import Path

import pytest

import minigrad as mg
from minigrad import backend

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


def _cupy_with_gpus(count: int, **attributes):
    runtime = types.SimpleNamespace(getDeviceCount=lambda: count)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime), **attributes)


def test_allow_tf32_is_off_by_default_and_sets_cupy_s_matmul_compute_type(monkeypatch):
    calls = []
    linalg = types.SimpleNamespace(COMPUTE_TYPE_TF32="tf32", COMPUTE_TYPE_DEFAULT="default",
                                   set_compute_type=lambda dtype, kind: calls.append(kind))
    fake = _cupy_with_gpus(1, _core=types.SimpleNamespace(_routines_linalg=linalg),
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
    monkeypatch.setattr(backend, "_cupy", _cupy_with_gpus(1))
    with pytest.raises(RuntimeError, match="CUPY_TF32=1"):
        mg.cuda.set_allow_tf32(True)
    assert mg.cuda.allow_tf32 is False


@pytest.mark.parametrize("cupy", [None, "no GPU"])
def test_allow_tf32_without_a_usable_gpu_is_refused_with_minigrad_s_error(monkeypatch, cupy):
    def missing():
        raise RuntimeError("minigrad: the 'cuda' device needs CuPy")

    if cupy is None:  # CuPy is not installed: importing it fails
        monkeypatch.setattr(backend, "_cupy", None)
        monkeypatch.setattr(backend, "cupy_module", missing)
    else:  # CuPy is installed, the driver finds no device
        monkeypatch.setattr(backend, "_cupy", _cupy_with_gpus(0))
    with pytest.raises(RuntimeError, match="allow_tf32: no usable CUDA GPU here"):
        mg.cuda.allow_tf32 = True
    assert mg.cuda.allow_tf32 is False
    mg.cuda.allow_tf32 = False  # turning it off needs no GPU


@pytest.mark.skipif(not mg.cuda.is_available(), reason="no cuda device, real or stand-in")
def test_gpu_check_correctness_parts_pass_on_the_cuda_device():
    import gpu_check

    kernel_rows = gpu_check.check_kernels()
    # every kernel in both dtypes; Winograd's seven for each tile size, float32 and float16
    assert len(kernel_rows) == 2 * (3 * 4 + 2 * 2 + 3) + 2 * 2 * 7
    assert all(ok for *_, ok in kernel_rows), [r for r in kernel_rows if not r[2]]
    fast_rows = gpu_check.check_fast_paths()
    assert [outcome for _, outcome in fast_rows] == ["ok"] * len(fast_rows)
    rows = gpu_check.compare_ops("cuda")
    assert len(rows) == len(gpu_check.OP_CHECKS)
    assert all(ok for _, _, ok in rows), [r for r in rows if not r[2]]
    first, last = gpu_check.train_lenet("cuda", steps=60, batch=32)
    assert last < 0.5 * first


class _PerfClock:
    """profile_step's clock without CUDA events (the stand-in has none)."""

    def mark(self):
        return time.perf_counter()

    def elapsed_ms(self, start, stop):
        return (stop - start) * 1e3


@pytest.mark.skipif(not mg.cuda.is_available(), reason="no cuda device, real or stand-in")
def test_gpu_check_profiles_every_function_of_a_vgg_step():
    import gpu_check

    rows = gpu_check.profile_step(gpu_check.minigrad_vgg_step(2, size=32, width_mult=0.0625),
                                  steps=2, clock=_PerfClock())
    calls = {key: count for _, count, key in rows}
    # 3x3 layers with 16 channels or more in take Winograd, the others im2col
    for phase in ("forward", "backward"):
        assert calls[f"Conv2dCUDA {phase}"] + calls[f"Conv2dWinogradCUDA {phase}"] == 13
    assert calls["Conv2dWinogradCUDA forward"] == 8  # input channels 16 and 32
    assert calls["MaxPool2dCUDA forward"] == 5 and calls["ReLUCUDA backward"] == 15
    assert [ms for ms, _, _ in rows] == sorted((ms for ms, _, _ in rows), reverse=True)
    from minigrad.ops.fast.cuda_conv import Conv2dCUDA

    assert Conv2dCUDA.forward.__name__ == "forward"  # the timing wrappers were taken off


def test_gpu_results_json_is_a_list_of_runs_with_the_agreed_keys(tmp_path):
    import gpu_check

    record = dict(zip(gpu_check.RUN_KEYS, ["NVIDIA H100", "14.2.0", "2.11.0", "vgg16", 64,
                                           "fp32", 600.0, 542.1, 9.1, 8.17]))
    path = tmp_path / "gpu_results.json"
    gpu_check.append_runs([record], path)
    gpu_check.append_runs([dict(record, precision="tf32")], path)
    runs = json.loads(path.read_text())
    assert [r["precision"] for r in runs] == ["fp32", "tf32"]
    assert all(tuple(r) == gpu_check.RUN_KEYS for r in runs)
    assert "| batch 64, fp32 | 600.0 | 542.1 | 1.11 | 9.1 GiB | 8.17 GiB | 1.11 |" in (
        gpu_check.speed_table(runs))
    path.write_text("{}")
    with pytest.raises(ValueError, match="expected a JSON list of runs"):
        gpu_check.append_runs([record], path)


@pytest.mark.skipif(not mg.cuda.is_available(), reason="no cuda device, real or stand-in")
def test_gpu_conv_breakdown_times_every_piece_of_each_convolution():
    import gpu_conv_breakdown

    assert len(gpu_conv_breakdown.vgg_layers()) == 13
    assert gpu_conv_breakdown.vgg_layers()[-1] == (512, 512, 14)
    totals = gpu_conv_breakdown.breakdown(2, clock=_PerfClock(), layers=[(3, 4, 8), (4, 8, 4)],
                                          precisions=("fp32", "tf32"))
    assert set(totals) == {"fp32", "tf32"}
    for pieces in totals.values():
        assert tuple(pieces) == gpu_conv_breakdown.PIECES and all(ms > 0 for ms in pieces.values())
    winograd = gpu_conv_breakdown.breakdown(2, clock=_PerfClock(), path="winograd",
                                            layers=[(3, 16, 8), (16, 16, 8), (16, 32, 4)],
                                            precisions=("fp32", "fp16"))
    for pieces in winograd.values():
        assert tuple(pieces) == gpu_conv_breakdown.WINOGRAD_PIECES
        assert all(ms > 0 for ms in pieces.values())
    table = gpu_conv_breakdown.table("winograd", winograd)
    assert table[0] == "| winograd piece | fp32 ms | fp16 ms |" and table[-1].startswith("| total")


@pytest.mark.skipif(not mg.cuda.is_available(), reason="no cuda device, real or stand-in")
def test_gpu_check_amp_step_trains_under_autocast_with_a_scaler():
    import gpu_check

    with gpu_check.minigrad_precision("amp"):
        step = gpu_check.minigrad_vgg_step(2, size=32, width_mult=0.0625, amp=True)
        step()
        step()
    with gpu_check.minigrad_precision("fp32"):
        assert not mg.backends.cudnn.allow_tf32
    assert mg.backends.cudnn.allow_tf32 and not mg.backends.cuda.matmul.allow_tf32


def test_gpu_check_part_reports_a_failure_and_goes_on(capsys):
    import gpu_check

    def broken():
        raise ZeroDivisionError("the part broke")

    lines = gpu_check.part("9 a broken part", broken)
    assert lines[0] == "### 9 a broken part"
    assert "FAILED: ZeroDivisionError: the part broke" in lines
    assert "Traceback" in capsys.readouterr().out
    assert gpu_check.part("10 a working one", lambda: ["fine"]) == ["### 10 a working one", "",
                                                                    "fine", ""]


def test_the_pytorch_side_of_the_example_epoch_runs_and_writes_its_seconds(tmp_path):
    import subprocess

    pytest.importorskip("torch")
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "torch_vgg16_voc.py"
    result = subprocess.run([sys.executable, str(script), "--synthetic", "8", "--image-size",
                             "32", "--batch-size", "4", "--workers", "0", "--device", "cpu",
                             "--width-mult", "0.125", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history) == 1 and history[0]["seconds"] > 0 and history[0]["train_loss"] > 0
