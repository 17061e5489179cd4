"""Where an op says it is also a Tensor method: `@tensor_method()` above the op's function,
beside its Function, makes `x.<name>(...)` call it. Adding an op is its Function, its function
and this one decorator; the operators (`x + y`) are bound by name at the end of ops/__init__.py.
"""

from __future__ import annotations

from collections.abc import Callable

from minigrad.tensor import Tensor

METHODS: dict[str, Callable] = {}  # Tensor method name -> the op's function


def tensor_method(*names: str):
    """Make the decorated function Tensor.<name> for each name (its own name by default)."""

    def register(function: Callable) -> Callable:
        for name in names or (function.__name__,):
            if name in METHODS and METHODS[name] is not function:
                raise RuntimeError(f"tensor_method: Tensor.{name} is registered twice")
            METHODS[name] = function
            setattr(Tensor, name, function)
        return function

    return register
