"""Checkpoints: exact round trips, atomic writes, and clear errors for bad files (never pickle)."""

import zipfile

import numpy as np
import pytest

import minigrad as mg
from minigrad import serialization


def test_nested_values_round_trip_exactly(tmp_path):
    checkpoint = {
        "model": {"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
                  "1.num_batches_tracked": np.array(7)},
        "optimizer": {"state": {0: {"step": 3, "exp_avg": np.ones(2)}},
                      "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0]}]},
        "epoch": 12, "best": float("inf"), "nan": float("nan"), "big": 2**70,
        "name": "vgg16", "flag": True, "nothing": None, "tensor": mg.tensor([1.5, 2.5]),
        "scalar": np.float32(0.25),
    }
    mg.save(checkpoint, tmp_path / "ck.npz")
    loaded = mg.load(tmp_path / "ck.npz")
    assert loaded.keys() == checkpoint.keys()
    np.testing.assert_array_equal(loaded["model"]["0.weight"], checkpoint["model"]["0.weight"])
    assert loaded["model"]["0.weight"].dtype == np.float32
    assert loaded["model"]["1.num_batches_tracked"].dtype == checkpoint["model"][
        "1.num_batches_tracked"].dtype
    assert list(loaded["optimizer"]["state"]) == [0]  # int keys stay ints
    assert loaded["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert loaded["epoch"] == 12 and loaded["big"] == 2**70 and loaded["best"] == float("inf")
    assert np.isnan(loaded["nan"]) and loaded["name"] == "vgg16" and loaded["flag"] is True
    assert loaded["nothing"] is None
    assert isinstance(loaded["tensor"], mg.Tensor) and loaded["tensor"].tolist() == [1.5, 2.5]
    assert loaded["scalar"] == np.float32(0.25) and loaded["scalar"].dtype == np.float32


def test_a_crash_while_saving_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    mg.save({"epoch": 1}, path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(serialization.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        mg.save({"epoch": 2}, path)
    monkeypatch.undo()
    assert mg.load(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]  # no temporary left behind


def test_truncated_foreign_and_missing_files_give_clear_errors(tmp_path):
    path = tmp_path / "ck.npz"
    mg.save({"w": np.ones(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(mg.CheckpointError, match="ck.npz is not a readable minigrad checkpoint"):
        mg.load(path)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(mg.CheckpointError, match="ck.npz"):
        mg.load(path)
    np.savez(path, weights=np.ones(3))
    with pytest.raises(mg.CheckpointError, match="not a minigrad checkpoint"):
        mg.load(path)
    with pytest.raises(FileNotFoundError):
        mg.load(tmp_path / "absent.npz")


def test_a_file_holding_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("a0.npy", "w") as member:
            np.lib.format.write_array(member, np.array([{"x": 1}], dtype=object),
                                      allow_pickle=True)
        with archive.open("__index__.npy", "w") as member:
            index = b'{"format": "minigrad-checkpoint", "version": 1, "root": {"array": "a0"}}'
            np.lib.format.write_array(member, np.frombuffer(index, dtype=np.uint8))
    with pytest.raises(mg.CheckpointError, match="pickle"):
        mg.load(path)


def test_values_a_checkpoint_cannot_hold_are_refused_by_name(tmp_path):
    with pytest.raises(TypeError, match=r"obj\['model'\]\['layer'\] is a object"):
        mg.save({"model": {"layer": object()}}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="key"):
        mg.save({(1, 2): 3}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="Python objects"):
        mg.save({"a": np.array([None, 1], dtype=object)}, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
