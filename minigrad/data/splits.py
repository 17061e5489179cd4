"""K-fold cross-validation, as scikit-learn's KFold: each sample is in exactly one validation
fold, and the folds' sizes differ by at most one."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class KFold:
    def __init__(self, n_splits: int = 5, shuffle: bool = False, seed: int | None = None):
        if not isinstance(n_splits, int) or n_splits < 2:
            raise ValueError(f"KFold: n_splits must be an integer >= 2, got {n_splits!r}")
        if seed is not None and not shuffle:
            raise ValueError("KFold: a seed only matters with shuffle=True")
        self.n_splits, self.shuffle, self.seed = n_splits, shuffle, seed

    def get_n_splits(self) -> int:
        return self.n_splits

    def split(self, X) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (train_indices, val_indices) for each fold; X is anything with a length."""
        n = len(X)
        if self.n_splits > n:
            raise ValueError(f"KFold: cannot make {self.n_splits} folds of {n} samples")
        indices = np.arange(n)
        if self.shuffle:
            np.random.default_rng(self.seed).shuffle(indices)
        sizes = np.full(self.n_splits, n // self.n_splits)
        sizes[: n % self.n_splits] += 1  # the first n % k folds take one sample more
        start = 0
        for size in sizes:
            val = indices[start:start + size]
            train = np.concatenate([indices[:start], indices[start + size:]])
            yield train, val
            start += size
