"""Faults a careful library guards against (issue 20): full disks and folders that cannot be
written, links and private files, checkpoints that cannot be resumed, workers stuck in a slow
sample, random draws in worker threads, and arguments that would fail far from where they were
given. Each test reproduces the fault for real where this machine allows it (a file-size limit
in a child process, a folder that even root cannot write, SIGINT to a child process) and
otherwise injects the OS error at the call that would raise it."""

from __future__ import annotations

import ast
import errno
import importlib
import io
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import types
import warnings
from pathlib import Path

import helpers
import numpy as np
import pytest

import minigrad as mg
from minigrad import cli, nn, serialization
from minigrad.data import DataLoader, get_worker_info
from minigrad.data import transforms as T
from minigrad.training import ResumeError, fit

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SYNTHETIC = ["--synthetic", "8", "--image-size", "32", "--width-mult", "0.125", "--workers", "0",
             "--no-progress"]


def _child_env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT))


@pytest.fixture
def unwritable_folder(tmp_path):
    """A folder that exists and cannot be written: a read-only folder of ours when we are not
    root; as root (who writes anywhere a mode allows), /sys, which the kernel keeps closed."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    try:
        tempfile.TemporaryFile(dir="/sys").close()
    except OSError:
        yield Path("/sys")
    else:  # (a machine where root may write /sys: inject the error instead)
        folder = tmp_path / "read-only"
        folder.mkdir()
        real = tempfile.TemporaryFile

        def refuse(*args, dir=None, **kwargs):  # noqa: A002
            if dir is not None and Path(dir) == folder:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            return real(*args, dir=dir, **kwargs)

        tempfile.TemporaryFile = refuse
        yield folder
        tempfile.TemporaryFile = real


def _make_unreadable(path: Path, monkeypatch) -> None:
    """`path` cannot be opened for reading: its mode when we are not root, else open() refuses
    it (root reads any mode)."""
    if os.geteuid() != 0:
        path.chmod(0)
        return
    real = open

    def refusing_open(file, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(serialization, "open", refusing_open, raising=False)


# ---------------------------------------------------------------------------------------------
# saving: full disks, missing folders, links, the folder an example writes to


class _DiskFillsAfter(io.FileIO):
    """A file on a disk that has `room` bytes left: writing past them raises ENOSPC."""

    room = 600

    def write(self, data) -> int:
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def test_a_full_disk_mid_save_names_the_file_and_leaves_the_old_one_whole(tmp_path,
                                                                          monkeypatch):
    target = tmp_path / "ck.npz"
    mg.save({"weights": np.arange(4.0)}, target)
    monkeypatch.setattr(serialization.os, "fdopen",
                        lambda fd, mode: io.BufferedWriter(_DiskFillsAfter(fd, "wb")))
    with pytest.raises(OSError) as caught:
        mg.save({"weights": np.arange(10_000.0)}, target)
    assert caught.value.errno == errno.ENOSPC
    message = str(caught.value)
    assert f"cannot write {target}" in message and "disk is full" in message
    assert ".tmp" not in message and "intact" in message
    assert caught.value.path == target
    monkeypatch.undo()
    np.testing.assert_array_equal(mg.load(target)["weights"], np.arange(4.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]  # no temporary left


def test_a_file_size_limit_hit_mid_save_is_named_in_a_real_process(tmp_path):
    """The kernel itself refuses the write (RLIMIT_FSIZE: EFBIG), in a child process."""
    code = textwrap.dedent(f"""
        import errno, resource, signal, numpy as np, minigrad as mg
        mg.save({{"w": np.zeros(10)}}, {str(tmp_path / 'ck.npz')!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
        try:
            mg.save({{"w": np.zeros(100_000)}}, {str(tmp_path / 'ck.npz')!r})
        except OSError as error:
            print(error.errno == errno.EFBIG, "|", error)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        print(mg.load({str(tmp_path / 'ck.npz')!r})["w"].shape)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=_child_env())
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()
    assert first.startswith("True |") and f"cannot write {tmp_path / 'ck.npz'}" in first
    assert second == "(10,)"  # the checkpoint before it, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]


def test_saving_into_a_missing_folder_names_the_file_asked_for(tmp_path):
    target = tmp_path / "no" / "such" / "ck.npz"
    with pytest.raises(FileNotFoundError) as caught:
        mg.save({"a": 1}, target)
    message = str(caught.value)
    assert f"cannot write {target}" in message and f"{tmp_path / 'no' / 'such'}" in message
    assert ".tmp" not in message


def test_saving_through_a_loop_of_links_is_refused_naming_the_link(tmp_path):
    (tmp_path / "a.npz").symlink_to(tmp_path / "b.npz")
    (tmp_path / "b.npz").symlink_to(tmp_path / "a.npz")
    with pytest.raises(OSError) as caught:
        mg.save({"v": 1}, tmp_path / "a.npz")
    assert caught.value.errno == errno.ELOOP and f"cannot write {tmp_path / 'a.npz'}" in str(
        caught.value)
    assert (tmp_path / "a.npz").is_symlink()  # not replaced by a file


def test_saving_through_a_link_writes_the_file_it_names_and_keeps_the_link(tmp_path):
    real = tmp_path / "store" / "weights.npz"
    real.parent.mkdir()
    mg.save({"v": 1}, real)
    link = tmp_path / "latest.npz"
    link.symlink_to(real)
    mg.save({"v": 2}, link)
    assert link.is_symlink() and mg.load(real) == {"v": 2}
    dangling = tmp_path / "next.npz"
    dangling.symlink_to(tmp_path / "store" / "new.npz")  # as open("wb"): made where it points
    mg.save({"v": 3}, dangling)
    assert dangling.is_symlink() and mg.load(tmp_path / "store" / "new.npz") == {"v": 3}


class _Recorder(mg.data.Dataset):
    """Four samples; counts the samples loaded (so a test can tell whether training began)."""

    def __init__(self):
        self.loaded = 0

    def __len__(self):
        return 4

    def __getitem__(self, index):
        self.loaded += 1
        return np.full(2, index, np.float32), np.float32(index)


def _regression(out_dir, epochs=1, model=None, scheduler=None, lr=0.1, **kwargs):
    mg.manual_seed(0)
    model = model or nn.Linear(2, 1)
    optimizer = mg.optim.SGD(model.parameters(), lr=lr)
    if scheduler == "cosine":
        scheduler = mg.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    elif scheduler == "step":
        scheduler = mg.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    data = _Recorder()

    def loss(outputs, targets):
        return nn.functional.mse_loss(outputs.reshape(-1), targets)

    history = fit(model, optimizer, loss, DataLoader(data, 2), epochs=epochs,
                  scheduler=scheduler, out_dir=out_dir, progress=False, **kwargs)
    return history, data, optimizer


def test_fit_checks_its_out_dir_before_training(unwritable_folder):
    data = _Recorder()
    model = nn.Linear(2, 1)
    with pytest.raises(OSError) as caught:
        fit(model, mg.optim.SGD(model.parameters(), lr=0.1), nn.MSELoss(), DataLoader(data, 2),
            epochs=1, out_dir=unwritable_folder / "run", progress=False)
    assert f"fit: out_dir {unwritable_folder / 'run'}" in str(caught.value)
    assert data.loaded == 0


def test_an_example_with_an_out_it_cannot_write_stops_before_training(unwritable_folder):
    for out in (unwritable_folder, unwritable_folder / "run"):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(EXAMPLES / "vgg16_voc.py"), *SYNTHETIC,
                                 "--epochs", "1", "--out", str(out)], capture_output=True,
                                text=True, timeout=120, cwd=ROOT, env=_child_env())
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"vgg16_voc.py: error: --out {out}"), lines
        assert "cannot write there" in lines[0] and "choose another --out" in lines[0]
        assert "epoch 1" not in result.stdout and "synthetic" not in result.stdout
        assert time.perf_counter() - started < 60


def test_an_example_on_a_full_disk_names_out_and_the_file(tmp_path, monkeypatch, capsys):
    example = runpy.run_path(str(EXAMPLES / "vgg16_voc.py"), run_name="example")
    real_fsync = os.fsync

    def full_for_checkpoints(descriptor):
        if Path(os.readlink(f"/proc/self/fd/{descriptor}")).name.startswith(".last.npz"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", full_for_checkpoints)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        cli.run(example["main"], [*SYNTHETIC, "--epochs", "1", "--out", str(out)])
    assert stop.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"example: error: --out {out}") or f"--out {out}:" in lines[0]
    assert f"cannot write {out / 'last.npz'}" in lines[0] and "disk is full" in lines[0]
    assert "free some space" in lines[0]
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())


# ---------------------------------------------------------------------------------------------
# resuming


def test_resuming_from_an_unreadable_checkpoint_says_why_not_that_it_is_damaged(tmp_path,
                                                                                monkeypatch):
    _regression(tmp_path, epochs=1)
    _make_unreadable(tmp_path / "last.npz", monkeypatch)
    with pytest.raises(ResumeError) as caught:
        _regression(tmp_path, epochs=2, resume=True)
    message = str(caught.value)
    assert f"cannot resume from {tmp_path / 'last.npz'}" in message
    assert "Permission denied" in message and "make it readable" in message
    assert "zip" not in message
    with pytest.raises(cli.UsageError) as usage, cli.training_errors(types.SimpleNamespace(
            out=str(tmp_path))):
        raise caught.value
    assert str(usage.value).startswith("--resume: ") and "delete" not in str(usage.value)


def test_resuming_another_model_names_the_checkpoint_and_what_differs(tmp_path):
    _regression(tmp_path, epochs=1)
    with pytest.raises(ResumeError) as caught:
        _regression(tmp_path, epochs=2, model=nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)),
                    resume=True)
    message = str(caught.value)
    assert f"{tmp_path / 'last.npz'}" in message and "model of another run" in message
    assert "weight" in message  # load_state_dict's missing / unexpected keys


def test_resuming_with_another_optimizer_names_both(tmp_path):
    _regression(tmp_path, epochs=1)  # SGD
    mg.manual_seed(0)
    model = nn.Linear(2, 1)
    with pytest.raises(ResumeError, match="trained with SGD, and this run's optimizer is Adam"):
        fit(model, mg.optim.Adam(model.parameters()), nn.MSELoss(), DataLoader(_Recorder(), 2),
            epochs=2, out_dir=tmp_path, resume=True, progress=False)


def test_resuming_from_a_file_that_is_not_fits_checkpoint_says_so(tmp_path):
    mg.save({"weights": np.zeros(2)}, tmp_path / "last.npz")
    with pytest.raises(mg.CheckpointError, match="not fit's checkpoint .*lacks model"):
        _regression(tmp_path, epochs=1, resume=True)
    (tmp_path / "last.npz").unlink()
    (tmp_path / "last.npz").mkdir()
    with pytest.raises(ResumeError, match="it is a folder, not a checkpoint"):
        _regression(tmp_path, epochs=1, resume=True)


def test_resuming_a_finished_cosine_run_without_a_schedule_trains_at_the_given_lr(tmp_path):
    _, _, first = _regression(tmp_path, epochs=2, scheduler="cosine")
    assert first.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # the cosine's end
    with pytest.raises(ResumeError, match="CosineAnnealingLR schedule, and this run's is StepLR"):
        _regression(tmp_path, epochs=3, scheduler="step", resume=True)
    history, _, optimizer = _regression(tmp_path, epochs=3, lr=0.05, resume=True)
    assert history[-1]["lr"] == pytest.approx(0.05) and optimizer.param_groups[0]["lr"] == 0.05


# ---------------------------------------------------------------------------------------------
# worker threads: Ctrl-C with one stuck, random draws inside __getitem__

STUCK_LOADER = textwrap.dedent("""
    import sys, time, numpy as np, minigrad as mg
    from minigrad.data import DataLoader

    class Slow(mg.data.Dataset):  # sample 5 sits on a network file system for a minute
        def __len__(self):
            return 64
        def __getitem__(self, index):
            if index == 5:
                print("stuck", flush=True)
                time.sleep(60)
            return np.ones(1, np.float32), np.float32(index)

    loader = DataLoader(Slow(), 2, num_workers=2)
    if sys.argv[1] == "loop":
        for batch in loader:
            pass
    else:
        model = mg.nn.Linear(1, 1)
        loss = lambda out, target: ((out.reshape(-1) - target) ** 2).mean()
        mg.training.fit(model, mg.optim.SGD(model.parameters(), lr=0.01), loss, loader,
                        epochs=1, progress=False)
""")


@pytest.mark.parametrize("how", ["loop", "fit"])
def test_ctrl_c_with_a_worker_stuck_in_getitem_exits_at_once(how):
    process = subprocess.Popen([sys.executable, "-c", STUCK_LOADER, how], env=_child_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "stuck"  # a worker sits in sample 5
    time.sleep(1.0)  # the main thread now waits on that batch (fit: with its handler set)
    started = time.perf_counter()
    process.send_signal(signal.SIGINT)
    if how == "fit":  # the first Ctrl-C asks for a stop after the step; the second stops
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("the process still waited on the stuck worker 15 s after Ctrl-C")
    assert process.returncode != 0 and "KeyboardInterrupt" in err
    assert time.perf_counter() - started < 10


class _DrawsItsOwnAugmentation(mg.data.Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, index):
        info = get_worker_info()
        noise = mg.randn(3).numpy() + mg.rand(1).numpy() + float(mg.randint(0, 100, (1,)).item())
        return noise.astype(np.float32), -1 if info is None else info.id


def _epochs(num_workers: int, seed=7, epochs=2):
    loader = DataLoader(_DrawsItsOwnAugmentation(), 4, shuffle=True, seed=seed,
                        num_workers=num_workers)
    return [np.concatenate([b[0].numpy() for b in loader]) for _ in range(epochs)]


def test_random_draws_inside_getitem_are_the_same_whatever_the_worker_threads():
    reference = _epochs(0)
    for workers in (1, 3, 3):
        for ours, theirs in zip(_epochs(workers), reference):
            np.testing.assert_array_equal(ours, theirs)
    assert not np.array_equal(reference[0], reference[1])  # each epoch draws anew
    assert not np.array_equal(_epochs(3, seed=8)[0], reference[0])


def test_a_random_collate_and_worker_seeds_are_reproducible_and_new_each_epoch():
    def mixup(samples):  # draws in the worker that collates
        batch = np.stack([s[0] for s in samples])
        return batch * mg.rand(1).item()

    def run(workers):
        loader = DataLoader(_DrawsItsOwnAugmentation(), 4, seed=3, num_workers=workers,
                            collate_fn=mixup)
        return [np.concatenate([b.numpy() for b in loader]) for _ in range(2)]

    reference = run(0)
    for ours, theirs in zip(run(3), reference):
        np.testing.assert_array_equal(ours, theirs)
    seeds = []
    loader = DataLoader(_DrawsItsOwnAugmentation(), 2, seed=3, num_workers=2,
                        worker_init_fn=lambda i: seeds.append((i, get_worker_info().seed)))
    for _ in range(2):
        list(loader)
    assert len({seed for _, seed in seeds}) == 4  # each worker of each epoch its own seed


def test_worker_init_fn_runs_in_each_worker_and_get_worker_info_names_it():
    started = []
    loader = DataLoader(_DrawsItsOwnAugmentation(), 2, num_workers=3,
                        worker_init_fn=lambda worker_id: started.append(
                            (worker_id, get_worker_info().id, get_worker_info().num_workers)))
    ids = np.concatenate([b[1].numpy() for b in loader])
    assert sorted(started) == [(0, 0, 3), (1, 1, 3), (2, 2, 3)]
    assert set(ids.tolist()) <= {0, 1, 2} and get_worker_info() is None
    assert set(np.concatenate([b[1].numpy() for b in DataLoader(
        _DrawsItsOwnAugmentation(), 2)]).tolist()) == {-1}  # no worker: None, as in torch
    failing = DataLoader(_DrawsItsOwnAugmentation(), 2, num_workers=2,
                         worker_init_fn=lambda worker_id: 1 / 0)
    with pytest.raises(RuntimeError, match=r"worker_init_fn\(\d\) raised ZeroDivisionError"):
        list(failing)


# ---------------------------------------------------------------------------------------------
# seeds


def test_manual_seed_takes_torchs_range_and_negative_seeds_count_from_2_to_the_64():
    mg.manual_seed(-1)
    negative = mg.rand(4).numpy()
    mg.manual_seed(2**64 - 1)
    np.testing.assert_array_equal(mg.rand(4).numpy(), negative)
    mg.manual_seed(-2**63)
    for bad in (2**64, -2**63 - 1):
        with pytest.raises(ValueError, match=r"manual_seed: the seed must be an integer from "
                                             r"-2\*\*63 to 2\*\*64 - 1"):
            mg.manual_seed(bad)
    with pytest.raises(TypeError, match="manual_seed"):
        mg.manual_seed(1.5)
    assert np.asarray(_epochs(0, seed=-1)).shape == (2, 12, 3)  # a loader's seed as well


def test_the_examples_seed_flag_takes_negative_seeds_and_names_itself_when_out_of_range(tmp_path):
    parser = runpy.run_path(str(EXAMPLES / "lenet5_fashion_mnist.py"),
                            run_name="example")["build_parser"]()
    assert parser.parse_args(["--seed", "-1"]).seed == -1
    result = subprocess.run([sys.executable, str(EXAMPLES / "lenet5_fashion_mnist.py"),
                             "--seed", str(2**64), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=60, env=_child_env())
    assert result.returncode == 2
    assert "argument --seed: must be an integer from -2**63 to 2**64 - 1" in result.stderr


# ---------------------------------------------------------------------------------------------
# what enters the engine


@pytest.mark.parametrize("array, holds", [
    (np.array(["a", "b"]), "strings"), (np.array([b"a"]), "bytes"),
    (np.array([object()]), "Python objects"),
    (np.array(["2020-01-01"], dtype="datetime64[D]"), "dates"),
    (np.array([1, 2], dtype="timedelta64[s]"), "time spans"),
    (np.array([1 + 2j]), "complex numbers"), (np.zeros(2, dtype="V4"), "raw records"),
    (np.zeros(2, dtype=[("x", "f4")]), "raw records"),
])
def test_arrays_that_hold_no_numbers_are_refused_where_they_enter(array, holds):
    for make, name in ((mg.tensor, "tensor"), (mg.as_tensor, "as_tensor"),
                       (mg.from_numpy, "from_numpy"), (mg.Tensor, "Tensor")):
        with pytest.raises(TypeError) as caught:
            make(array)
        assert str(caught.value).startswith(f"{name}: ") and holds in str(caught.value)
        assert str(array.dtype) in str(caught.value)


def test_a_ragged_list_of_arrays_or_tensors_says_so_too():
    for parts in ([np.zeros(2), np.zeros(3)], [mg.zeros(2), mg.zeros(3)]):
        with pytest.raises(ValueError, match="tensor: the nested lists are not rectangular: "
                                             r"expected sequence of length 2 at dim 1 \(got 3\)"):
            mg.tensor(parts)


def test_lists_that_hold_no_numbers_and_ragged_lists_say_so():
    torch = helpers.torch()
    with pytest.raises(TypeError, match="strings"):
        mg.tensor(["a", "b"])
    with pytest.raises(TypeError, match="Python objects"):
        mg.tensor([None, 1])
    for ragged in ([[1, 2], [3]], [[[1], [2]], [[1], [2, 3]]]):
        with pytest.raises(ValueError) as theirs:
            torch.tensor(ragged)
        with pytest.raises(ValueError) as ours:
            mg.tensor(ragged)
        assert str(ours.value) == f"tensor: the nested lists are not rectangular: {theirs.value}"
    with pytest.raises(ValueError, match="a mix of numbers and sequences at dim 1"):
        mg.tensor([[1, 2], 3])


# ---------------------------------------------------------------------------------------------
# constructors: every argument checked where it is given

W = nn.Parameter(mg.zeros(2))
S = mg.optim.lr_scheduler
BAD_ARGUMENTS = [
    ("Conv2d", lambda: nn.Conv2d(3, 8, 0), "kernel_size"),
    ("Conv2d", lambda: nn.Conv2d(0, 8, 3), "in_channels"),
    ("Conv2d", lambda: nn.Conv2d(3, 0, 3), "out_channels"),
    ("Conv2d", lambda: nn.Conv2d(3, 8, -1), "kernel_size"),
    ("Conv2d", lambda: nn.Conv2d(3, 8, 3, stride=0), "stride"),
    ("Conv2d", lambda: nn.Conv2d(3, 8, 3, padding=-1), "padding"),
    ("Conv2d", lambda: nn.Conv2d(3, 8, 3, padding="sam"), "padding"),
    ("Conv2d", lambda: nn.Conv2d(3, 8, 3, stride=2, padding="same"), "padding='same'"),
    ("Conv2d", lambda: nn.Conv2d(3, 8, 3, dilation=0), "dilation"),
    ("Conv2d", lambda: nn.Conv2d(3, 8, 3, groups=0), "groups"),
    ("Conv2d", lambda: nn.Conv2d(3, 8, 3, groups=2), "groups"),
    ("Conv2d", lambda: nn.Conv2d(3.0, 8, 3), "in_channels"),
    ("Conv2d", lambda: nn.Conv2d(True, 8, 3), "in_channels"),
    ("Conv2d", lambda: nn.Conv2d(3, 8, 2.5), "kernel_size"),
    ("ConvTranspose2d", lambda: nn.ConvTranspose2d(3, 8, 0), "kernel_size"),
    ("ConvTranspose2d", lambda: nn.ConvTranspose2d(0, 8, 2), "in_channels"),
    ("ConvTranspose2d", lambda: nn.ConvTranspose2d(3, 8, 2, stride=0), "stride"),
    ("ConvTranspose2d", lambda: nn.ConvTranspose2d(3, 8, 2, stride=2, output_padding=2),
     "output_padding"),
    ("Linear", lambda: nn.Linear(-1, 3), "in_features"),
    ("Linear", lambda: nn.Linear(3.5, 3), "in_features"),
    ("Linear", lambda: nn.Linear(3, True), "out_features"),
    ("MaxPool2d", lambda: nn.MaxPool2d(0), "kernel_size"),
    ("MaxPool2d", lambda: nn.MaxPool2d(2, stride=0), "stride"),
    ("MaxPool2d", lambda: nn.MaxPool2d(2, padding=-1), "padding"),
    ("MaxPool2d", lambda: nn.MaxPool2d(2, padding=2), "at most half"),
    ("AvgPool2d", lambda: nn.AvgPool2d(0), "kernel_size"),
    ("AvgPool2d", lambda: nn.AvgPool2d(2, divisor_override=0), "divisor_override"),
    ("AdaptiveAvgPool2d", lambda: nn.AdaptiveAvgPool2d(0), "output_size"),
    ("AdaptiveMaxPool2d", lambda: nn.AdaptiveMaxPool2d((2, -1)), "output_size"),
    ("BatchNorm2d", lambda: nn.BatchNorm2d(0), "num_features"),
    ("BatchNorm2d", lambda: nn.BatchNorm2d(4, eps=-1), "eps"),
    ("BatchNorm2d", lambda: nn.BatchNorm2d(4, momentum=2), "momentum"),
    ("BatchNorm1d", lambda: nn.BatchNorm1d(2.0), "num_features"),
    ("Dropout", lambda: nn.Dropout(1.5), "p"),
    ("Dropout", lambda: nn.Dropout("a"), "p"),
    ("LeakyReLU", lambda: nn.LeakyReLU("a"), "negative_slope"),
    ("Softmax", lambda: nn.Softmax(1.5), "dim"),
    ("GELU", lambda: nn.GELU("fast"), "approximate"),
    ("ELU", lambda: nn.ELU("x"), "alpha"),
    ("Softplus", lambda: nn.Softplus(0), "beta"),
    ("Hardtanh", lambda: nn.Hardtanh(1, -1), "min_val"),
    ("PReLU", lambda: nn.PReLU(0), "num_parameters"),
    ("LayerNorm", lambda: nn.LayerNorm(0), "normalized_shape"),
    ("LayerNorm", lambda: nn.LayerNorm((4, -1)), "normalized_shape"),
    ("LayerNorm", lambda: nn.LayerNorm(4.0), "normalized_shape"),
    ("LayerNorm", lambda: nn.LayerNorm(4, eps=-1), "eps"),
    ("GroupNorm", lambda: nn.GroupNorm(0, 4), "num_groups"),
    ("GroupNorm", lambda: nn.GroupNorm(3, 4), "groups"),
    ("Embedding", lambda: nn.Embedding(0, 4), "num_embeddings"),
    ("Embedding", lambda: nn.Embedding(10, -1), "embedding_dim"),
    ("Embedding", lambda: nn.Embedding(10, 4, padding_idx=10), "padding_idx"),
    ("Embedding", lambda: nn.Embedding(10.0, 4), "num_embeddings"),
    ("LSTM", lambda: nn.LSTM(0, 4), "input_size"),
    ("LSTM", lambda: nn.LSTM(4, 4, num_layers=0), "num_layers"),
    ("GRU", lambda: nn.GRU(4.0, 4), "input_size"),
    ("RNN", lambda: nn.RNN(4, 4, nonlinearity="sig"), "nonlinearity"),
    ("Upsample", lambda: nn.Upsample(scale_factor=0), "scale_factor"),
    ("Upsample", lambda: nn.Upsample(mode="cubic", scale_factor=2), "mode"),
    ("Upsample", lambda: nn.Upsample(), "exactly one"),
    ("Flatten", lambda: nn.Flatten(1.5), "start_dim"),
    ("CrossEntropyLoss", lambda: nn.CrossEntropyLoss(label_smoothing=2), "label_smoothing"),
    ("NLLLoss", lambda: nn.NLLLoss(ignore_index=1.5), "ignore_index"),
    ("SmoothL1Loss", lambda: nn.SmoothL1Loss(beta=-1), "beta"),
    ("Upsample", lambda: nn.Upsample(size=0), "size"),
    ("SGD", lambda: mg.optim.SGD([W], lr=-1), "lr"),
    ("SGD", lambda: mg.optim.SGD([W], lr="a"), "lr"),
    ("SGD", lambda: mg.optim.SGD([W], lr=0.1, nesterov=True), "Nesterov"),
    ("SGD", lambda: mg.optim.SGD([{"params": [W]}, {"params": [W]}], lr=0.1), "two groups"),
    ("Adam", lambda: mg.optim.Adam([W], betas=(1.0, 0.9)), "betas"),
    ("Adam", lambda: mg.optim.Adam([W], betas=0.9), "betas"),
    ("Adadelta", lambda: mg.optim.Adadelta([W], rho=2), "rho"),
    ("GradScaler", lambda: mg.amp.GradScaler(init_scale=-1), "init_scale"),
    ("RandomResizedCrop", lambda: T.RandomResizedCrop(8, scale=(0.9, 0.1)), "scale"),
    ("RandomResizedCrop", lambda: T.RandomResizedCrop(8, ratio=(2, 1)), "ratio"),
    ("RandomHorizontalFlip", lambda: T.RandomHorizontalFlip(2), "p"),
    ("StepLR", lambda: S.StepLR(mg.optim.SGD([W], lr=0.1), step_size=1.5), "step_size"),
    ("ExponentialLR", lambda: S.ExponentialLR(mg.optim.SGD([W], lr=0.1), gamma="x"), "gamma"),
    ("MultiStepLR", lambda: S.MultiStepLR(mg.optim.SGD([W], lr=0.1), [1.5]), "milestones"),
    ("ReduceLROnPlateau", lambda: S.ReduceLROnPlateau(mg.optim.SGD([W], lr=0.1), patience=-1),
     "patience"),
    ("OneCycleLR", lambda: S.OneCycleLR(mg.optim.SGD([W], lr=0.1), max_lr=-1, total_steps=9),
     "max_lr"),
    ("VGG", lambda: mg.models.vgg16(width_mult=0), "width_mult"),
    ("LeNet5", lambda: mg.models.LeNet5(num_classes=-1), "num_classes"),
    ("ResNet", lambda: mg.models.resnet18(num_classes=0), "num_classes"),
    ("DataLoader", lambda: DataLoader([1, 2], batch_size=True), "batch_size"),
    ("DataLoader", lambda: DataLoader([1, 2], batch_size=2.0), "batch_size"),
    ("DataLoader", lambda: DataLoader([1, 2], num_workers=True), "num_workers"),
    ("DataLoader", lambda: DataLoader([1, 2], seed=2**64), "seed"),
    ("DataLoader", lambda: DataLoader([1, 2], worker_init_fn=3), "worker_init_fn"),
]


@pytest.mark.parametrize("owner, make, argument", BAD_ARGUMENTS,
                         ids=[f"{o}-{i}" for i, (o, _, _) in enumerate(BAD_ARGUMENTS)])
def test_a_bad_constructor_argument_fails_where_it_is_given_naming_class_and_argument(
        owner, make, argument):
    with pytest.raises((TypeError, ValueError)) as caught:
        make()
    assert type(caught.value) in (TypeError, ValueError)  # not ZeroDivisionError, IndexError
    assert str(caught.value).startswith(f"{owner}: ") and argument in str(caught.value)


def test_a_subset_with_indices_outside_its_dataset_fails_when_made():
    with pytest.raises(IndexError, match=r"Subset: indices \[5\] are outside the dataset's 4"):
        mg.data.Subset(_Recorder(), [0, 5])
    assert len(mg.data.Subset(_Recorder(), [-1, 3])) == 2


def test_the_edges_of_the_ranges_are_accepted():
    nn.Linear(0, 3), nn.Linear(3, 0), nn.Conv2d(4, 8, 1, groups=4), nn.MaxPool2d(3, padding=1)
    nn.BatchNorm2d(4, momentum=None), nn.Dropout(0), nn.Dropout(1), nn.Embedding(3, 2, -1)
    nn.AdaptiveAvgPool2d((None, 2)), nn.LayerNorm([2, 3]), nn.Softplus(-1), nn.Conv2d(
        3, 8, 3, padding="same")
    assert nn.Embedding(3, 2, padding_idx=-1).padding_idx == 2  # as torch: counted from the end
    mg.optim.SGD([W], lr=0), DataLoader([1], seed=-(2**63))
    mg.optim.SGD([W], lr=mg.tensor(0.1)), mg.optim.Adam([W], lr=np.float32(1e-3))  # as torch


def test_a_parameter_listed_twice_warns_as_torchs_and_is_stepped_once():
    torch = helpers.torch()
    with pytest.warns(UserWarning) as theirs:
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))] * 2, lr=0.1)
    assert "duplicate parameters" in str(theirs[0].message)
    twice, once = nn.Parameter(mg.ones(2)), nn.Parameter(mg.ones(2))
    with pytest.warns(UserWarning, match="lists the same parameter more than once") as ours:
        doubled = mg.optim.SGD([twice, twice], lr=0.1)
    assert ours[0].filename == __file__  # the warning points at the line that made it
    single = mg.optim.SGD([once], lr=0.1)
    for p, optimizer in ((twice, doubled), (once, single)):
        p.grad = mg.ones(2)
        optimizer.step()
    np.testing.assert_array_equal(twice.numpy(), once.numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mg.optim.SGD([once, twice], lr=0.1)  # two distinct parameters: no warning


# ---------------------------------------------------------------------------------------------
# names


def _packages():
    for info in [*importlib.import_module("pkgutil").walk_packages(mg.__path__, "minigrad.")]:
        if info.ispkg:
            yield importlib.import_module(info.name)
    yield mg


def test_no_submodule_shadows_a_name_a_package_imports():
    """`from minigrad.ops.reduce import norm` in a package's __init__, then importing its
    submodule `norm`, made `mg.norm` the module: every name an __init__ imports from a module
    must still be that module's object."""
    checked = 0
    for package in _packages():
        tree = ast.parse(Path(package.__file__).read_text())
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and \
                    node.module.startswith("minigrad"):
                source = importlib.import_module(node.module)
                for alias in node.names:
                    if not hasattr(source, alias.name) or isinstance(
                            getattr(source, alias.name), types.ModuleType):
                        continue  # (a submodule imported as such)
                    name = alias.asname or alias.name
                    assert getattr(package, name) is getattr(source, alias.name), \
                        f"{package.__name__}.{name} is not {node.module}.{alias.name}"
                    checked += 1
    assert checked > 100


def test_norm_takes_fro_as_torch():
    torch = helpers.torch()
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(mg.norm(mg.tensor(x), "fro").item(),
                               torch.norm(torch.tensor(x), "fro").item(), rtol=1e-6)
    with pytest.raises(ValueError, match="nuclear norm is not implemented"):
        mg.norm(mg.tensor(x), "nuc")


def test_mg_norm_is_torchs_function():
    torch = helpers.torch()
    x = np.array([[3.0, 4.0], [1.0, 2.0]], np.float32)
    assert callable(mg.norm) and callable(mg.ops.norm)
    np.testing.assert_allclose(mg.norm(mg.tensor(x)).item(), torch.norm(torch.tensor(x)).item(),
                               rtol=1e-6)


def test_a_full_disk_mid_download_names_the_part_file_and_tries_no_mirror(tmp_path, monkeypatch):
    from test_download import Server

    from minigrad.data import download
    from minigrad.data.download import DownloadError

    data = bytes(range(256)) * 64
    server = Server({"/a": data, "/b": data})
    monkeypatch.setattr(download, "open", lambda path, mode: io.BufferedWriter(
        _DiskFillsAfter(path, mode), buffer_size=256), raising=False)
    try:
        with pytest.raises(DownloadError) as caught:
            download.fetch([server.url + "/a", server.url + "/b"], tmp_path / "f.bin",
                           "0" * 32, progress=False)
    finally:
        server.close()
    message = str(caught.value)
    assert f"cannot write {tmp_path / 'f.bin.part'}" in message and "disk is full" in message
    assert "bytes received so far are kept there" in message
    assert [path for path, _ in server.requests] == ["/a"]  # the mirror cannot help


def test_clip_grad_norm_of_float16_gradients_sums_in_float32_as_torch():
    torch = helpers.torch()
    values = np.ones(70_000, np.float16)
    ours = nn.Parameter(mg.tensor(values))
    ours.grad = mg.tensor(values.copy())
    theirs = torch.nn.Parameter(torch.tensor(values))
    theirs.grad = torch.tensor(values.copy())
    total = nn.utils.clip_grad_norm_([ours], max_norm=1.0)
    expected = torch.nn.utils.clip_grad_norm_([theirs], max_norm=1.0)
    assert total.dtype == np.float16 and np.isfinite(total.item())
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-3)
    np.testing.assert_allclose(ours.grad.numpy().astype(np.float32),
                               theirs.grad.numpy().astype(np.float32), rtol=2e-3)


def test_a_joint_mask_that_holds_no_labels_is_refused_by_name():
    from PIL import Image

    from minigrad.data import joint

    image = Image.new("RGB", (4, 4))
    with pytest.raises(TypeError, match="joint.ToArrays: the mask is a Pillow image of mode RGB"):
        joint.ToArrays()(image, Image.new("RGB", (4, 4)))
    with pytest.raises(TypeError, match=r"\(H, W\) integer labels, got an array of shape "
                                        r"\(4, 4\) and dtype float32"):
        joint.ToArrays()(image, np.zeros((4, 4), np.float32))
    _, labels = joint.ToArrays()(image, Image.new("P", (4, 4), 3))
    assert labels.dtype == np.int64 and (labels == 3).all()
