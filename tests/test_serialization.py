"""Checkpoints: exact round trips, atomic writes, and clear errors for bad files (never pickle)."""

import io
import json
import os
import signal
import stat
import subprocess
import sys
import tracemalloc
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
    with pytest.raises(mg.CheckpointError, match="ck.npz is not a readable .npz file"):
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


# --- hostile and malformed files: the index first, only named members, headers checked ------


def _write_checkpoint(path, index, members=(), compress=False):
    """A zip in the checkpoint layout, written by hand: index is the JSON (str or object),
    members (name, array or raw .npy bytes)."""
    text = index if isinstance(index, str) else json.dumps(index)
    kind = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", kind) as archive:
        for name, content in members:
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                if isinstance(content, bytes):
                    member.write(content)
                else:
                    np.lib.format.write_array(member, content)
        with archive.open("__index__.npy", "w") as member:
            np.lib.format.write_array(member, np.frombuffer(text.encode(), dtype=np.uint8))


def _index(root):
    return {"format": "minigrad-checkpoint", "version": 1, "root": root}


def test_an_unreferenced_huge_member_is_never_read(tmp_path):
    """Only the members the index names are opened: a small file hiding a large member costs
    neither the memory nor the time of decompressing it."""
    path = tmp_path / "ck.npz"
    huge = np.zeros(2**26, dtype=np.float32)  # 256 MiB of zeros, a few hundred KiB deflated
    _write_checkpoint(path, _index({"array": "a0"}), [("a0", np.arange(3.0)), ("hidden", huge)],
                      compress=True)
    del huge
    assert path.stat().st_size < 2**21
    tracemalloc.start()
    try:
        loaded = mg.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(loaded, [0.0, 1.0, 2.0])
    assert peak < 16 * 2**20


def _npy_header(shape, dtype="<f8"):
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def test_a_member_whose_header_declares_more_than_it_holds_is_refused_before_reading(tmp_path):
    path = tmp_path / "ck.npz"
    absurd = _npy_header((2**40,)) + b"\0" * 64  # declares 8 TiB, holds 64 bytes
    _write_checkpoint(path, _index({"array": "a0"}), [("a0", absurd)])
    with pytest.raises(mg.CheckpointError, match=r"ck.npz: member 'a0' declares shape "
                                                 r"\(1099511627776,\) of float64 \(8796093022208 "
                                                 r"bytes\) but holds 64 bytes"):
        mg.load(path)
    short = _npy_header((3, 4)) + b"\0" * 8
    _write_checkpoint(path, _index({"array": "a0"}), [("a0", short)])
    with pytest.raises(mg.CheckpointError, match="declares shape \\(3, 4\\)"):
        mg.load(path)


@pytest.mark.parametrize("root, message", [
    (5, "int 5 where an entry"),
    ([1, 2], r"list \[1, 2\] where an entry"),
    ({"array": "a0", "list": []}, "where an entry"),
    ({"module": "os"}, r"\['module'\] where an entry"),
    ({"int": 7}, "int written as int"),
    ({"int": "seven"}, "damaged"),
    ({"array": "a9"}, "member 'a9' is named but the file does not hold it"),
    ({"array": ["a0"]}, "array member named by list"),
    ({"dict": [["k"]]}, "not a \\[key, value\\] pair"),
    ({"dict": [[{"list": []}, 1]]}, "a dict key is list"),
    ({"list": "abc"}, "list content is str"),
])
def test_every_malformed_index_is_one_checkpoint_error_naming_the_file(tmp_path, root, message):
    path = tmp_path / "ck.npz"
    _write_checkpoint(path, _index(root), [("a0", np.ones(2))])
    with pytest.raises(mg.CheckpointError, match=message) as caught:
        mg.load(path)
    assert str(path) in str(caught.value)


def test_indices_too_deep_too_large_or_not_json_are_refused(tmp_path):
    path = tmp_path / "ck.npz"
    deep = '{"format": "minigrad-checkpoint", "version": 1, "root": ' + '{"list": [' * 5000 + \
        "]}" * 5000 + "}"
    _write_checkpoint(path, deep)
    with pytest.raises(mg.CheckpointError, match="ck.npz.*nested"):
        mg.load(path)
    moderately_deep = _index(json.loads('{"list": [' * 150 + "]}" * 150))
    _write_checkpoint(path, moderately_deep)
    with pytest.raises(mg.CheckpointError, match="nested more than 100 deep"):
        mg.load(path)
    _write_checkpoint(path, "{not json")
    with pytest.raises(mg.CheckpointError, match="index of .*ck.npz is not JSON"):
        mg.load(path)
    _write_checkpoint(path, json.dumps({"format": "minigrad-checkpoint", "version": 99,
                                        "root": None}))
    with pytest.raises(mg.CheckpointError, match="version 99"):
        mg.load(path)
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("__index__.npy", "w") as member:
            np.lib.format.write_array(member, np.zeros(3, dtype=np.float32))
    with pytest.raises(mg.CheckpointError, match="index of .*is float32 of shape \\(3,\\)"):
        mg.load(path)
    monkey_limit = serialization.MAX_INDEX_BYTES
    try:
        serialization.MAX_INDEX_BYTES = 100
        mg.save({"weights": list(range(50))}, path)
        with pytest.raises(mg.CheckpointError, match="index of .*declares .* bytes, more than"):
            mg.load(path)
    finally:
        serialization.MAX_INDEX_BYTES = monkey_limit


def test_a_member_named_twice_is_refused_and_fortran_order_reads_right(tmp_path):
    """save never names a member twice; an index that does could make a small file cost
    gigabytes (one member read and copied a million times)."""
    path = tmp_path / "ck.npz"
    fortran = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    _write_checkpoint(path, _index({"list": [{"array": "a1"}]}), [("a1", fortran)])
    np.testing.assert_array_equal(mg.load(path)[0], fortran)
    _write_checkpoint(path, _index({"list": [{"array": "a0"}, {"array": "a0"}]}),
                      [("a0", np.arange(3))])
    with pytest.raises(mg.CheckpointError, match="member 'a0' is named twice"):
        mg.load(path)


def _patch_claim(path, member: str, file_size: int) -> None:
    """Rewrite the uncompressed size the zip's central directory claims for `member`."""
    data = bytearray(path.read_bytes())
    start = 0
    while True:  # the central directory entry of `member`
        start = data.index(b"PK\x01\x02", start)
        name_length = int.from_bytes(data[start + 28:start + 30], "little")
        if data[start + 46:start + 46 + name_length] == member.encode():
            break
        start += 4
    data[start + 24:start + 28] = file_size.to_bytes(4, "little")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("compress", [False, True])
def test_the_zip_directory_s_size_claims_are_checked_against_the_file(tmp_path, compress):
    """A 1 KB file whose directory claims a member of 4 GB: refused before any allocation
    (before, np.empty of the claim ran first: a MemoryError, or gigabytes reserved)."""
    path = tmp_path / "ck.npz"
    _write_checkpoint(path, _index({"array": "a0"}), [("a0", np.arange(4.0))], compress)
    _patch_claim(path, "a0.npy", 2**32 - 1)
    message = "more than compression can" if compress else "stored uncompressed but claims"
    with pytest.raises(mg.CheckpointError, match=message):
        mg.load(path)


def test_only_arrays_of_numbers_are_saved_and_loaded(tmp_path):
    path = tmp_path / "ck.npz"
    with pytest.raises(TypeError, match=r"obj\['names'\] is an array of <U5, not numbers"):
        mg.save({"names": np.array(["alpha", "beta"])}, path)
    for odd in (np.array(["alpha"]), np.zeros(3, dtype="V4"),
                np.array(["2026-11-27"], dtype="datetime64[D]")):
        _write_checkpoint(path, _index({"array": "a0"}), [("a0", odd)])
        with pytest.raises(mg.CheckpointError, match="holds .*, not numbers"):
            mg.load(path)


def test_cleaning_up_never_touches_a_longer_name_s_temporary(tmp_path):
    """Saving `ckpt` must not take `.ckpt.npz.<pid>.<hex>.tmp` (a save of ckpt.npz in
    flight) for one of its own."""
    in_flight = tmp_path / f".ckpt.npz.{os.getpid()}.0123abcd.tmp"
    in_flight.write_bytes(b"half")
    dead_other = tmp_path / ".ckpt.npz.1.deadbeef.tmp"  # another file's: not ckpt's to clean
    dead_other.write_bytes(b"")
    mg.save({"epoch": 1}, tmp_path / "ckpt")
    assert in_flight.exists() and dead_other.exists()


# --- saves: temporaries of killed saves, the folder's fsync, the file mode -------------------

_KILLED_MID_SAVE = """
import os, signal, sys
import numpy as np
import minigrad as mg
from minigrad import serialization

def write_half_then_die(file, **members):
    file.write(b"PK half a checkpoint")
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)

serialization.np.savez = write_half_then_die
mg.save({"epoch": 2}, sys.argv[1])
"""


def test_a_save_killed_midway_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    path = tmp_path / "last.npz"
    mg.save({"epoch": 1}, path)
    killed = subprocess.run([sys.executable, "-c", _KILLED_MID_SAVE, str(path)],
                            capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".last.npz.")
    assert mg.load(path) == {"epoch": 1}  # the old checkpoint is intact
    live = tmp_path / f".last.npz.{os.getppid()}.beef.tmp"  # a live process's save in flight
    live.write_bytes(b"")
    other = tmp_path / ".other.npz.1.dead.tmp"  # another file's temporary: not ours to touch
    other.write_bytes(b"")
    mg.save({"epoch": 3}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["last.npz", live.name, other.name])
    assert mg.load(path) == {"epoch": 3}


def test_a_new_file_takes_the_umask_and_a_saved_over_one_keeps_its_mode(tmp_path, monkeypatch):
    synced = []
    real = serialization._fsync_folder
    monkeypatch.setattr(serialization, "_fsync_folder", lambda f: (synced.append(f), real(f)))
    previous = os.umask(0o027)
    try:
        mg.save({"epoch": 1}, tmp_path / "ck.npz")
    finally:
        os.umask(previous)
    assert synced == [tmp_path]
    assert stat.S_IMODE((tmp_path / "ck.npz").stat().st_mode) == 0o640
    mg.save({"epoch": 1}, tmp_path / "other.npz")  # a new file: the umask's mode
    assert stat.S_IMODE((tmp_path / "other.npz").stat().st_mode) == 0o666 & ~previous
    (tmp_path / "ck.npz").chmod(0o600)  # a private checkpoint stays private (as open("wb"))
    mg.save({"epoch": 2}, tmp_path / "ck.npz")
    assert stat.S_IMODE((tmp_path / "ck.npz").stat().st_mode) == 0o600
    assert mg.load(tmp_path / "ck.npz") == {"epoch": 2}
