"""The Optimizer base: parameter groups, per-parameter state, zero_grad, state_dict.

Each group is a dict of settings (lr, momentum, ...) with its list of 'params'; a setting not
given in a group comes from the optimizer's defaults. `step()` updates the parameters' arrays
in place, under no_grad, so no graph is recorded.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np

from minigrad import backend
from minigrad.autograd import bump_version
from minigrad.tensor import Tensor


class Optimizer:
    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.state: dict = {}  # Parameter -> dict of its state (momentum buffers, steps, ...)
        self.param_groups: list[dict] = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group, _stacklevel=4)  # (a warning points at SGD(...))

    def add_param_group(self, group: dict, _stacklevel: int = 2) -> None:
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor) or not p.is_leaf:
                raise TypeError(f"{type(self).__name__}: can only optimize leaf tensors, got "
                                f"{type(p).__name__}")
            if not backend.is_floating(p.dtype):
                raise TypeError(f"{type(self).__name__}: parameters must be floating, got "
                                f"{p.dtype}")
        unique = list({id(p): p for p in group["params"]}.values())
        if len(unique) < len(group["params"]):  # torch warns too (and would step it twice)
            warnings.warn(f"{type(self).__name__}: a parameter group lists the same parameter "
                          f"more than once ({len(group['params']) - len(unique)} repeats); it "
                          "is kept once and updated once per step", UserWarning,
                          stacklevel=_stacklevel)
            group["params"] = unique
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in taken for p in group["params"]):
            raise ValueError(f"{type(self).__name__}: a parameter appears in two groups")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients (set them to None, or to zeros in place)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.array[...] = 0

    def step(self, closure=None):
        """One update of every parameter that has a gradient. `closure` (optional), a
        function that clears the gradients, computes the loss, calls backward and returns
        the loss, is called first, with gradients enabled; step returns its loss."""
        raise NotImplementedError

    @staticmethod
    def _loss_of(closure):
        """The closure's loss, computed with gradients on (step itself runs under no_grad)."""
        if closure is None:
            return None
        from minigrad.autograd import enable_grad

        with enable_grad():
            return closure()

    def _params_with_grad(self, group: dict):
        for p in group["params"]:
            if p.grad is not None:
                if p.grad.shape != p.shape or p.grad.dtype != p.dtype:
                    raise RuntimeError(
                        f"{type(self).__name__}: a gradient of shape {p.grad.shape} and dtype "
                        f"{p.grad.dtype} does not fit its parameter {p.shape} {p.dtype}"
                    )
                bump_version(p.array)  # the step changes p in place: a pending backward that
                yield p  # saved p must refuse to run, as in PyTorch

    # -- saving and restoring -----------------------------------------------------------------
    def state_dict(self) -> dict:
        """{'state': {index: {name: array or number}}, 'param_groups': [settings + 'params':
        [indices]]}, with parameters numbered in group order, as PyTorch does. Arrays are
        host copies."""
        index = {}
        groups = []
        for group in self.param_groups:
            settings = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            settings["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(settings)
        state = {
            index[id(p)]: {name: _host_copy(value) for name, value in values.items()}
            for p, values in self.state.items()
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore settings and state saved by `state_dict` (arrays go to each parameter's
        device, cast to its dtype)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
            len(saved["params"]) != len(own["params"])
            for saved, own in zip(groups, self.param_groups)
        ):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the saved optimizer has groups of "
                f"sizes {[len(g['params']) for g in groups]}, this one "
                f"{[len(g['params']) for g in self.param_groups]}"
            )
        by_index = {}
        for saved, own in zip(groups, self.param_groups):
            for i, p in zip(saved["params"], own["params"]):
                by_index[i] = p
            for key, value in saved.items():
                if key != "params":
                    own[key] = copy.deepcopy(value)
        self.state = {}
        for i, value in state_dict["state"].items():
            p = by_index[int(i)]
            self.state[p] = {name: _restored(name, v, p) for name, v in value.items()}

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])


def _restored(name: str, value, p):
    """A saved state entry as this optimizer keeps it: arrays on p's device in p's dtype.
    A torch optimizer's state_dict holds tensors (its 'step' a 0-d float tensor): they are
    read as arrays, and a 0-d one as a Python number (an int for 'step')."""
    if isinstance(value, Tensor):
        value = value.numpy()
    elif hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch.Tensor
        value = value.detach().cpu().numpy()
    if backend.is_array(value) and value.ndim == 0:
        number = value.item()
        return int(number) if name == "step" else number
    if backend.is_array(value):  # (a copy: a torch state_dict shares its live state's memory)
        host = value if isinstance(value, np.ndarray) else backend.to_device(value, backend.CPU)
        return backend.to_device(np.array(host, dtype=p.dtype), p.device)
    return value


def _host_copy(value):
    """A NumPy copy of a state array (from any device); numbers as they are."""
    if isinstance(value, np.ndarray):
        return value.copy()
    return value.get() if backend.is_array(value) else value
