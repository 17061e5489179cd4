"""`minigrad.utils.hooks.RemovableHandle`, as torch.utils.hooks has it: what registering a hook
returns (a tensor's, a module's), whose `remove()` takes the hook off again. Also a context
manager: `with module.register_forward_hook(h): ...` removes it at the end."""

from __future__ import annotations

import itertools

_ids = itertools.count()


class RemovableHandle:
    """Removes the hook it was made for from the dicts of hooks that hold it (once; a second
    remove() does nothing)."""

    def __init__(self, *hooks: dict):
        self.id = next(_ids)
        self._dicts = hooks

    def remove(self) -> None:
        for hooks in self._dicts:
            hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"<minigrad.utils.hooks.RemovableHandle id={self.id}>"
