"""Datasets: anything with `__len__` and `__getitem__`, as `torch.utils.data.Dataset`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from minigrad import backend
from minigrad.tensor import Tensor


class Dataset:
    """A sized collection of samples: subclasses define `__len__` and `__getitem__`."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples are rows of equally long arrays (or Tensors): ds[i] = (a[i], b[i], ...).

    Rows come back as NumPy arrays (the DataLoader stacks them into batches).
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset: expected at least one array")
        self.arrays = [a.numpy() if isinstance(a, Tensor) else np.asarray(a) for a in arrays]
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: arrays have different lengths {lengths}")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: int):
        return tuple(a[index] for a in self.arrays)


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, [int(i) for i in indices]
        n = len(dataset)
        outside = [i for i in self.indices if not -n <= i < n]
        if outside:  # (found now, not when a DataLoader reaches the sample)
            raise IndexError(f"Subset: indices {outside[:5]} are outside the dataset's {n} "
                             f"samples ({type(dataset).__name__})")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.dataset[self.indices[index]]


def random_split(dataset: Dataset, lengths: Sequence, seed: int | None = None) -> list[Subset]:
    """Split into non-overlapping random subsets of the given lengths (counts, or fractions
    that sum to 1, the remainder going round-robin to the first subsets, as PyTorch)."""
    n = len(dataset)
    lengths = list(lengths)
    if all(isinstance(x, float) for x in lengths) and math.isclose(sum(lengths), 1.0):
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n or any(x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths {lengths} do not add up to the dataset's "
                         f"length {n}")
    rng = _loader_rng(seed)
    order = rng.permutation(n)
    ends = np.cumsum(lengths)
    return [Subset(dataset, order[end - size:end].tolist()) for size, end in zip(lengths, ends)]


def _loader_rng(seed: int | None) -> np.random.Generator:
    """A generator from `seed`, or, without one, from minigrad's seeded CPU generator (so that
    `minigrad.manual_seed` makes the run reproducible)."""
    if seed is None:
        seed = int(backend.generator("cpu").integers(2**63))
    return np.random.default_rng(seed)
