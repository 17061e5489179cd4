"""The checks every public constructor runs on its arguments, so that a bad one fails where it
is given, with the class and the argument named, and not as a ZeroDivisionError or an empty
tensor three calls later.

    kernel = checks.pair("Conv2d", "kernel_size", kernel_size, minimum=1)
    p = checks.number("Dropout", "p", p, low=0, high=1)

Integers are Python or NumPy integers, never bools (True is not a batch size); numbers are
ints or floats, never bools, strings or NaN. Each returns the value as a plain int, float or
tuple. A check that fails raises TypeError (the wrong kind of value) or ValueError (the right
kind, out of range), its message starting with `owner`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def is_integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def integer(owner: str, name: str, value, minimum: int | None = None) -> int:
    """`value` as an int, at least `minimum`."""
    if not is_integer(value):
        raise TypeError(f"{owner}: {name} must be an integer, got {value!r} "
                        f"({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value}")
    return int(value)


def pair(owner: str, name: str, value, minimum: int | None = None) -> tuple[int, int]:
    """An integer or a pair of them as a pair (3 -> (3, 3)), each at least `minimum`."""
    items = (value, value) if is_integer(value) else value
    if not isinstance(items, (tuple, list)) or len(items) != 2 or not all(
            is_integer(v) for v in items):
        raise TypeError(f"{owner}: {name} must be an integer or a pair of integers, got "
                        f"{value!r}")
    if minimum is not None and min(items) < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    return int(items[0]), int(items[1])


def number(owner: str, name: str, value, low: float | None = None, high: float | None = None,
           *, low_open: bool = False, high_open: bool = False) -> float:
    """`value` as a float in [low, high] (an end is left out where `low_open`/`high_open`)."""
    if getattr(value, "shape", None) == () and hasattr(value, "item"):
        value = value.item()  # a 0-d Tensor or array (torch takes a Tensor lr)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r} "
                        f"({type(value).__name__})")
    value = float(value)
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if math.isnan(value) or below or above:
        left = "-inf" if low is None else f"{low:g}"
        right = "inf" if high is None else f"{high:g}"
        interval = (f"{'(' if low_open or low is None else '['}{left}, {right}"
                    f"{')' if high_open or high is None else ']'}")
        raise ValueError(f"{owner}: {name} must be in {interval}, got {value:g}")
    return value


SEEDS = (-2**63, 2**64)  # torch.manual_seed's range: a signed or an unsigned 64-bit integer


def seed(owner: str, value) -> int:
    """A seed in torch's range as NumPy takes it (>= 0): a negative one counts from 2^64, as in
    torch (-1 is 2^64 - 1)."""
    value = integer(owner, "seed", value)
    if not SEEDS[0] <= value < SEEDS[1]:
        raise ValueError(f"{owner}: the seed must be an integer from -2**63 to 2**64 - 1, got "
                         f"{value}")
    return value % 2**64


def choice(owner: str, name: str, value, choices) -> object:
    """`value` if it is one of `choices`."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {', '.join(map(repr, choices))}, "
                         f"got {value!r}")
    return value
