"""DataLoader: batches of a dataset, in order or shuffled, optionally prepared by threads.

Epoch e's order is a permutation drawn from a generator seeded with (seed, e), where seed is
`seed` or one drawn from `minigrad.manual_seed`'s generator: a seeded run sees the same
batches, and a resumed run (`set_epoch`) the same as an uninterrupted one. Each sample is
loaded with its own generator for random transforms, made from (seed, epoch, index): the
samples come out the same whether 0 or 8 threads prepared them; inside `__getitem__` every
random draw of minigrad's (mg.rand, mg.randint, the random transforms) comes from that
generator too, so a dataset that draws its own augmentations is reproducible as well (NumPy's
global `np.random` functions are not: draw from `mg.data.get_worker_info().rng` or mg's).
With `num_workers > 0`, batches are prepared by daemon threads (JPEG decoding and Pillow's
resampling release the GIL) a few batches ahead of the one being trained on, and are yielded
in order; `worker_init_fn(worker_id)` runs in each as it starts, `get_worker_info()` says
which one it is. A worker stuck in a slow `__getitem__` never holds up the end of the
iteration or of the process (Ctrl-C exits at once): nothing waits for it.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from minigrad import checks
from minigrad.backend import sample_generator, sample_rng
from minigrad.data.dataset import Dataset, _loader_rng
from minigrad.tensor import Tensor


@dataclass
class WorkerInfo:
    """What a DataLoader worker thread knows of itself (torch.utils.data's fields): `id` in
    0..num_workers-1, `num_workers`, `seed` (drawn from the loader's seed, the epoch and the
    id: each worker of each epoch its own, as torch's base seed plus id) and `dataset`. `rng`
    is the generator of the sample being loaded (outside one, the worker's own, from seed)."""

    id: int
    num_workers: int
    seed: int
    dataset: object
    _own: np.random.Generator | None = None

    @property
    def rng(self) -> np.random.Generator:
        current = sample_rng()
        if current is not None:
            return current
        if self._own is None:
            self._own = np.random.default_rng(self.seed)
        return self._own


_worker = threading.local()
_WORKER, _COLLATE = 1, 2  # a 4th word of entropy: a worker's or a collate's generator, never a
# sample's (whose entropy is (seed, epoch, index))


def get_worker_info() -> WorkerInfo | None:
    """Inside a DataLoader's worker thread, its WorkerInfo; elsewhere None (as torch's)."""
    return getattr(_worker, "info", None)


class _Workers:
    """`count` daemon threads running the jobs put on a queue, each job's result a Future.
    Daemon threads, never joined: a worker stuck in a slow __getitem__ (a network file system,
    a huge image) neither holds up close() nor the interpreter's exit."""

    def __init__(self, count: int, loader: DataLoader, epoch: int):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        for worker_id in range(count):
            entropy = [loader.seed, epoch, worker_id, _WORKER]
            seed = int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])
            info = WorkerInfo(worker_id, count, seed, loader.dataset)
            threading.Thread(target=self._work, args=(info, loader.worker_init_fn),
                             name=f"minigrad-loader-{worker_id}", daemon=True).start()
        self.count = count

    def submit(self, function: Callable, *args) -> Future:
        future: Future = Future()
        self.jobs.put((future, function, args))
        return future

    def _work(self, info: WorkerInfo, init: Callable | None) -> None:
        _worker.info = info
        failed = None
        if init is not None:
            try:
                with sample_generator(info.seed):  # its random draws: the worker's own
                    init(info.id)
            except BaseException as error:  # every job of this worker then fails with it
                failed = RuntimeError(f"DataLoader: worker_init_fn({info.id}) raised "
                                      f"{type(error).__name__}: {error}")
                failed.__cause__ = error
        while (job := self.jobs.get()) is not None:
            future, function, args = job
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            try:
                if failed is not None:
                    raise failed
                future.set_result(function(*args))
            except BaseException as error:
                future.set_exception(error)

    def close(self) -> None:
        for _ in range(self.count):
            self.jobs.put(None)  # each idle worker ends; a busy one ends after its job


def default_collate(samples: list):
    """Stack a list of samples into a batch, field by field: tuples stay tuples, dicts stay
    dicts, arrays and numbers become one array with a leading batch dimension."""
    first = samples[0]
    if isinstance(first, tuple):
        return tuple(default_collate([s[i] for s in samples]) for i in range(len(first)))
    if isinstance(first, list):
        return [default_collate([s[i] for s in samples]) for i in range(len(first))]
    if isinstance(first, dict):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, Tensor):
        return np.stack([s.numpy() for s in samples])
    try:
        return np.stack([np.asarray(s) for s in samples])
    except ValueError as error:
        shapes = sorted({np.shape(s) for s in samples}, key=str)
        raise ValueError(f"default_collate: samples of different shapes {shapes} cannot be "
                         f"stacked into one batch ({error})") from None


def _to_tensors(batch, device):
    """Numeric arrays of a collated batch as Tensors (moved to `device` if one is given);
    anything else (strings, file names) as it is."""
    if isinstance(batch, tuple):
        return tuple(_to_tensors(b, device) for b in batch)
    if isinstance(batch, list):
        return [_to_tensors(b, device) for b in batch]
    if isinstance(batch, dict):
        return {k: _to_tensors(v, device) for k, v in batch.items()}
    if isinstance(batch, np.ndarray) and batch.dtype.kind in "biuf":
        return Tensor(batch) if device is None else Tensor(batch).to(device)
    return batch


class DataLoader:
    """Iterate over `dataset` in batches.

    dataset: a Dataset (anything with __len__ and __getitem__).
    batch_size, shuffle, drop_last: as in PyTorch.
    num_workers: threads preparing batches ahead (0: in the calling thread).
    seed: makes the shuffle order and the random transforms reproducible.
    collate_fn: turns a list of samples into a batch (default: stack them); its numeric arrays
        are yielded as Tensors, as torch.utils.data yields them.
    device: if given, the batches' Tensors are moved there ("cuda"), so a loop needs no
        `.to(device)` (one still works).
    worker_init_fn(worker_id): run in each worker thread as it starts (num_workers > 0).
    skip_errors: skip samples whose loading raises (a corrupt image) instead of stopping;
        `skipped` then counts them, and each epoch that skipped some warns with the count.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, num_workers: int = 0, seed: int | None = None,
                 collate_fn: Callable | None = None, device=None, skip_errors: bool = False,
                 worker_init_fn: Callable | None = None):
        if not checks.is_integer(batch_size) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be an integer >= 1, got {batch_size!r}")
        if not checks.is_integer(num_workers) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an integer >= 0, got "
                             f"{num_workers!r}")
        for name, function in (("collate_fn", collate_fn), ("worker_init_fn", worker_init_fn)):
            if function is not None and not callable(function):
                raise TypeError(f"DataLoader: {name} must be callable, got "
                                f"{type(function).__name__}")
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: {type(dataset).__name__} is not a dataset (it needs "
                            "__len__ and __getitem__)")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.drop_last, self.num_workers = drop_last, num_workers
        self.collate_fn = collate_fn or default_collate
        self.device, self.skip_errors = device, skip_errors
        self.worker_init_fn = worker_init_fn
        self.seed = (int(_loader_rng(seed).integers(2**63)) if seed is None
                     else checks.seed("DataLoader", seed))
        self.epoch, self.start_batch = 0, 0
        self.skipped = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Make the next iteration epoch `epoch` (its order and augmentations), starting at
        its batch `start_batch` (a run resumed mid-epoch: the batches before it are neither
        loaded nor yielded, and the rest are the ones an uninterrupted epoch yields)."""
        if not isinstance(start_batch, int) or start_batch < 0:
            raise ValueError(f"DataLoader.set_epoch: start_batch must be an integer >= 0, got "
                             f"{start_batch!r}")
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _batches(self, epoch: int) -> list[np.ndarray]:
        n = len(self.dataset)
        order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle \
            else np.arange(n)
        batches = [order[i:i + self.batch_size] for i in range(0, n, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def _load_sample(self, index: int, epoch: int):
        with sample_generator([self.seed, epoch, index]):  # its Generator, when one is drawn
            return self.dataset[index]

    def _load_batch(self, indices: np.ndarray, epoch: int):
        samples, skipped = [], 0
        for index in indices.tolist():
            try:
                samples.append(self._load_sample(index, epoch))
            except Exception as error:
                if not self.skip_errors:
                    raise RuntimeError(f"DataLoader: loading sample {index} of "
                                       f"{type(self.dataset).__name__} failed: {error}") from error
                skipped += 1
        with sample_generator([self.seed, epoch, int(indices[0]), _COLLATE] if len(indices)
                              else None):  # a random collate (mixup) is reproducible too
            batch = self.collate_fn(samples) if samples else None
        if batch is not None:
            batch = _to_tensors(batch, self.device)
        return batch, skipped

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        batches = self._batches(epoch)[self.start_batch:]
        self.start_batch = 0
        skipped = 0
        if self.num_workers == 0:
            results = (self._load_batch(b, epoch) for b in batches)
            for batch, count in results:
                skipped += count
                if batch is not None:
                    yield batch
        else:
            workers = _Workers(self.num_workers, self, epoch)
            ahead = 2 * self.num_workers
            pending = [workers.submit(self._load_batch, b, epoch) for b in batches[:ahead]]
            next_batch = len(pending)
            try:
                while pending:
                    batch, count = pending.pop(0).result()
                    if next_batch < len(batches):
                        pending.append(workers.submit(self._load_batch, batches[next_batch],
                                                      epoch))
                        next_batch += 1
                    skipped += count
                    if batch is not None:
                        yield batch
            finally:  # (a break, an error or Ctrl-C: the batches not yet begun are dropped)
                for future in pending:
                    future.cancel()
                workers.close()
        self.skipped += skipped
        if skipped:
            warnings.warn(f"DataLoader: skipped {skipped} samples that failed to load in epoch "
                          f"{epoch} (skip_errors=True)", stacklevel=2)
