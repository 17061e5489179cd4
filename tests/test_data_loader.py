"""Datasets, the DataLoader and the splits."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import DEVICES
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.data import DataLoader, Dataset, KFold, TensorDataset, random_split
from minigrad.data import transforms as T


class Squares(Dataset):
    """Sample i is (i, i*i), loaded with an optional delay so that threads interleave."""

    def __init__(self, n: int, fail_at=(), delay: float = 0.0):
        self.n, self.fail_at, self.delay = n, set(fail_at), delay
        self.threads = set()

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.threads.add(threading.current_thread().name)
        if i in self.fail_at:
            raise OSError(f"image {i} is corrupt")
        if self.delay:
            threading.Event().wait(self.delay * ((i * 7) % 3))
        return np.float32(i), np.int64(i * i)


@given(n=st.integers(1, 40), batch_size=st.integers(1, 9), drop_last=st.booleans(),
       shuffle=st.booleans(), workers=st.sampled_from([0, 2]))
def test_every_sample_once_per_epoch_in_batches_of_the_asked_size(n, batch_size, drop_last,
                                                                    shuffle, workers):
    loader = DataLoader(Squares(n), batch_size, shuffle=shuffle, drop_last=drop_last,
                        num_workers=workers, seed=3)
    batches = list(loader)
    assert len(batches) == len(loader)
    seen = np.concatenate([x for x, _ in batches]) if batches else np.array([])
    for x, y in batches:
        assert isinstance(x, mg.Tensor) and isinstance(y, mg.Tensor)  # as torch yields them
        assert len(x) == batch_size or (not drop_last and x is batches[-1][0])
        np.testing.assert_array_equal(y.numpy(), x.numpy().astype(np.int64) ** 2)
    expected = (n // batch_size) * batch_size if drop_last else n
    assert len(seen) == expected and len(set(seen.tolist())) == expected
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(expected))


def test_a_seed_fixes_the_order_and_epochs_differ():
    first = [x.tolist() for x, _ in DataLoader(Squares(20), 5, shuffle=True, seed=7)]
    again = [x.tolist() for x, _ in DataLoader(Squares(20), 5, shuffle=True, seed=7)]
    assert first == again
    loader = DataLoader(Squares(20), 5, shuffle=True, seed=7)
    assert [x.tolist() for x, _ in loader] == first
    assert [x.tolist() for x, _ in loader] != first  # the second epoch is another permutation
    mg.manual_seed(1)
    seeded = [x.tolist() for x, _ in DataLoader(Squares(20), 5, shuffle=True)]
    mg.manual_seed(1)
    assert seeded == [x.tolist() for x, _ in DataLoader(Squares(20), 5, shuffle=True)]


def test_worker_threads_load_in_the_background_and_keep_the_order():
    dataset = Squares(24, delay=0.002)
    batches = [x.tolist() for x, _ in DataLoader(dataset, 4, num_workers=3)]
    assert batches == [list(range(i, i + 4)) for i in range(0, 24, 4)]
    assert any(name.startswith("minigrad-loader") for name in dataset.threads)


class RandomlyAugmented(Dataset):
    def __init__(self):
        self.flip = T.RandomHorizontalFlip()
        self.crop = T.RandomCrop(3, padding=1)

    def __len__(self):
        return 16

    def __getitem__(self, i):
        image = np.arange(16, dtype=np.float32).reshape(1, 4, 4) + 100 * i
        return self.crop(self.flip(image))


def test_random_transforms_repeat_with_the_seed_whatever_the_number_of_workers():
    runs = [np.concatenate(list(DataLoader(RandomlyAugmented(), 4, shuffle=True, seed=11,
                                           num_workers=w))) for w in (0, 1, 3)]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])
    other = np.concatenate(list(DataLoader(RandomlyAugmented(), 4, shuffle=True, seed=12)))
    assert not np.array_equal(runs[0], other)


@pytest.mark.parametrize("device", DEVICES)
def test_batches_as_tensors_on_a_device(device):
    x, y = next(iter(DataLoader(TensorDataset(np.ones((6, 2), np.float32), np.arange(6)), 4,
                                device=device)))
    assert isinstance(x, mg.Tensor) and x.device == device and x.shape == (4, 2)
    assert y.dtype == mg.int64 and y.tolist() == [0, 1, 2, 3]


def test_a_failing_sample_stops_the_epoch_naming_it_unless_skipping_is_asked():
    with pytest.raises(RuntimeError, match="loading sample 5 of Squares failed: image 5 is "
                                           "corrupt"):
        list(DataLoader(Squares(10, fail_at={5}), 4, num_workers=2))
    loader = DataLoader(Squares(10, fail_at={5, 8}), 4, skip_errors=True)
    with pytest.warns(UserWarning, match="skipped 2 samples"):
        seen = np.concatenate([x for x, _ in loader])
    assert sorted(seen.tolist()) == [0, 1, 2, 3, 4, 6, 7, 9] and loader.skipped == 2


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_batch_size_below_one_is_refused(bad):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        DataLoader(Squares(3), bad)


def test_collate_keeps_structure_and_names_mismatched_shapes():
    class Pairs(Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"image": np.zeros((2, 2)) + i, "label": i}

    batch = next(iter(DataLoader(Pairs(), 3)))
    assert batch["image"].shape == (3, 2, 2) and batch["label"].tolist() == [0, 1, 2]

    class Ragged(Pairs):
        def __getitem__(self, i):
            return np.zeros(i + 1)

    with pytest.raises(ValueError, match=r"samples of different shapes \[\(1,\), \(2,\), \(3,\)\]"):
        list(DataLoader(Ragged(), 3))


def test_tensor_dataset_and_random_split():
    data = TensorDataset(np.arange(10), mg.arange(10) * 2)
    assert data[3] == (3, 6) and len(data) == 10
    with pytest.raises(ValueError, match="different lengths"):
        TensorDataset(np.arange(3), np.arange(4))
    parts = random_split(data, [7, 3], seed=0)
    indices = sorted(i for part in parts for i in part.indices)
    assert [len(p) for p in parts] == [7, 3] and indices == list(range(10))
    assert [len(p) for p in random_split(data, [0.5, 0.3, 0.2], seed=0)] == [5, 3, 2]
    assert random_split(data, [7, 3], seed=0)[0].indices == parts[0].indices
    with pytest.raises(ValueError, match="do not add up"):
        random_split(data, [5, 6])


@given(n=st.integers(2, 60), k=st.integers(2, 8), shuffle=st.booleans())
def test_kfold_folds_are_disjoint_and_cover_every_sample_once(n, k, shuffle):
    if k > n:
        with pytest.raises(ValueError, match="cannot make"):
            list(KFold(k).split(range(n)))
        return
    folds = list(KFold(k, shuffle=shuffle, seed=0 if shuffle else None).split(np.zeros(n)))
    assert len(folds) == k
    validation = np.concatenate([val for _, val in folds])
    assert sorted(validation.tolist()) == list(range(n))
    sizes = [len(val) for _, val in folds]
    assert max(sizes) - min(sizes) <= 1
    for train, val in folds:
        assert set(train.tolist()).isdisjoint(val.tolist())
        assert len(train) + len(val) == n


def test_kfold_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn.model_selection")
    ours = list(KFold(4).split(np.zeros(14)))
    theirs = list(sklearn.KFold(4).split(np.zeros(14)))
    for (a_train, a_val), (b_train, b_val) in zip(ours, theirs):
        np.testing.assert_array_equal(a_train, b_train)
        np.testing.assert_array_equal(a_val, b_val)


@pytest.mark.parametrize("device", DEVICES)
def test_the_usual_pytorch_loop_runs_with_minigrad_utils_data(device):
    """`from torch.utils.data import ...`, batches of Tensors, `.to(device)` in the loop."""
    import minigrad.utils.data
    from minigrad.utils.data import DataLoader as Loader
    from minigrad.utils.data import TensorDataset as Pairs

    assert Loader is DataLoader and minigrad.utils.data is mg.data and mg.utils.data is mg.data
    dataset = Pairs(mg.randn(10, 3), mg.randint(0, 2, (10,)))
    model = mg.nn.Linear(3, 2).to(device)
    for inputs, targets in Loader(dataset, batch_size=4, shuffle=True, seed=0):
        inputs, targets = inputs.to(device), targets.to(device)
        loss = mg.nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        assert inputs.device == device and targets.dtype == mg.int64
