"""Sequences of different lengths in one batch, under PyTorch's names.

minigrad's PackedSequence keeps the padded batch, time-major (T, B, *), and each sequence's
length, rather than PyTorch's interleaved layout; the recurrent layers read it the same way:
a sequence's steps past its length leave its state as it was and give zero outputs, so its
final state is the one after its own last step, and a reverse direction starts at that step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minigrad.ops.elementwise import where
from minigrad.ops.shape import cat
from minigrad.tensor import Tensor, tensor, zeros


class PackedSequence(NamedTuple):
    data: Tensor  # (T, B, *), padded
    lengths: Tensor  # (B,) int64, on the CPU

    @property
    def batch_sizes(self) -> Tensor:
        """How many sequences are still running at each step, as PyTorch's field."""
        counts = (self.lengths.numpy()[None, :] > np.arange(self.data.shape[0])[:, None])
        return tensor(counts.sum(axis=1))


def _lengths(lengths, batch: int) -> Tensor:
    values = np.asarray(lengths.numpy() if isinstance(lengths, Tensor) else lengths)
    if values.shape != (batch,) or values.dtype.kind not in "iu":
        raise ValueError(f"pack_padded_sequence: lengths must be {batch} integers (one per "
                         f"sequence), got {values!r}")
    if len(values) and values.min() < 1:
        raise ValueError(f"pack_padded_sequence: every length must be >= 1, got {values.tolist()}")
    return tensor(values.astype(np.int64))


def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False,  # noqa: A002
                         enforce_sorted: bool = True) -> PackedSequence:
    """A padded batch (T, B, *) (or (B, T, *) with batch_first) and the length of each
    sequence, for the recurrent layers. enforce_sorted=True checks that the lengths decrease,
    as PyTorch does (minigrad itself does not need them sorted)."""
    data = input.transpose(0, 1) if batch_first else input
    lengths = _lengths(lengths, data.shape[1])
    values = lengths.numpy()
    if enforce_sorted and (np.diff(values) > 0).any():
        raise RuntimeError(f"pack_padded_sequence: lengths {values.tolist()} must be sorted in "
                           "decreasing order, or pass enforce_sorted=False")
    if values.max() > data.shape[0]:
        raise ValueError(f"pack_padded_sequence: a length of {values.max()} exceeds the "
                         f"{data.shape[0]} steps of the padded input")
    return PackedSequence(data[: int(values.max())], lengths)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False,
                        padding_value: float = 0.0, total_length: int | None = None):
    """(padded (T, B, *) or (B, T, *), lengths): the inverse of pack_padded_sequence; steps past
    a sequence's length hold padding_value."""
    data, lengths = sequence
    steps = data.shape[0]
    if total_length is not None:
        if total_length < steps:
            raise ValueError(f"pad_packed_sequence: total_length {total_length} is shorter than "
                             f"the longest sequence ({steps})")
        if total_length > steps:
            extra = zeros(total_length - steps, *data.shape[1:], dtype=data.dtype,
                          device=data.device)
            data, steps = cat([data, extra], 0), total_length
    mask = lengths.numpy()[None, :] > np.arange(steps)[:, None]  # (T, B)
    shape = mask.shape + (1,) * (data.ndim - 2)
    data = where(tensor(mask.reshape(shape), device=data.device), data, padding_value)
    return (data.transpose(0, 1) if batch_first else data), lengths
