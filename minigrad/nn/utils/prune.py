"""Pruning, as `torch.nn.utils.prune`: zero a share of a layer's weights, and keep them zero
while it trains.

    prune.l1_unstructured(model.fc1, "weight", amount=0.3)   # the 30% smallest |w| -> 0

What it does to the module, exactly as torch does (so state_dicts carry torch's keys):
- the Parameter `weight` becomes `weight_orig` (it keeps training, all of it);
- a buffer `weight_mask` holds 1 for the weights kept and 0 for those pruned;
- `weight` is now a plain tensor, weight_orig * weight_mask, computed again by a forward
  pre-hook (the pruning method itself) before every forward. The gradient reaches
  weight_orig through the product, so a pruned weight gets gradient 0 and stays pruned.

Pruning the same weight again stacks: a PruningContainer holds the methods in order, and each
new one prunes among the weights still kept (amount=0.5 twice keeps a quarter). `remove`
makes it permanent: weight = weight_orig * weight_mask as a Parameter again, the mask and the
hook gone. `global_unstructured` ranks the weights of several layers together.

Unstructured methods prune single weights; structured ones prune whole slices along `dim`
(output channels of a conv for dim=0), ranked by their Ln norm, which is what actually makes
a layer smaller once the zero channels are cut out.

`amount`: a float in [0, 1] is a share of the weights (rounded as torch: round(amount * n)),
an int a count.
"""

from __future__ import annotations

import numbers

import numpy as np

from minigrad import autograd, backend
from minigrad.backend import get_array_module
from minigrad.tensor import Tensor


class BasePruningMethod:
    """A way to choose a mask (`compute_mask`), applied as a forward pre-hook to one
    parameter of one module (`_tensor_name`)."""

    PRUNING_TYPE = "unstructured"  # or "structured" (slices along dim), or "global"
    _tensor_name: str | None = None

    def __call__(self, module, inputs):
        setattr(module, self._tensor_name, self.apply_mask(module))

    def compute_mask(self, t, default_mask):
        """The new mask (an array of t's shape): default_mask with more zeros."""
        raise NotImplementedError

    def apply_mask(self, module) -> Tensor:
        """orig * mask: the weight the module's forward uses."""
        orig = getattr(module, self._tensor_name + "_orig")
        mask = getattr(module, self._tensor_name + "_mask")
        return orig * mask

    @classmethod
    def apply(cls, module, name: str, *args, importance_scores=None, **kwargs):
        """Prune `module.<name>` with cls(*args, **kwargs) (the mask chosen from
        importance_scores if given, else from the weights); returns the method (or the
        container it joined)."""
        return _apply(cls, module, name, args, kwargs, importance_scores)

    def prune(self, t):
        """The tensor t with this method's mask applied (nothing is registered)."""
        ones = Tensor(get_array_module(t.array).ones_like(t.array))
        return t * Tensor(self.compute_mask(t.array, ones.array))

    def remove(self, module) -> None:
        """Make the pruning permanent: `name` is a Parameter again, holding orig * mask."""
        name = self._tensor_name
        with autograd.no_grad():
            weight = self.apply_mask(module)
        if name in module.__dict__:
            del module.__dict__[name]
        orig = module._parameters[name + "_orig"]
        orig.array = weight.array
        del module._parameters[name + "_orig"]
        del module._buffers[name + "_mask"]
        setattr(module, name, orig)


class PruningContainer(BasePruningMethod):
    """Several pruning methods of one parameter, applied in turn: each new one chooses only
    among what the ones before it kept."""

    def __init__(self, *methods):
        self._pruning_methods: tuple = ()
        if len(methods) == 1 and not isinstance(methods[0], BasePruningMethod):
            methods = tuple(methods[0])  # an iterable of methods
        if methods:
            self._tensor_name = methods[0]._tensor_name
        for method in methods:
            self.add_pruning_method(method)

    def add_pruning_method(self, method) -> None:
        if not isinstance(method, BasePruningMethod) and method is not None:
            raise TypeError(f"PruningContainer: {type(method).__name__} is not a "
                            "BasePruningMethod subclass")
        if method is not None and self._tensor_name != method._tensor_name:
            raise ValueError(f"Can only add pruning methods acting on the parameter named "
                             f"'{self._tensor_name}' to PruningContainer. Found "
                             f"'{method._tensor_name}'")
        self._pruning_methods += (method,)

    def __len__(self) -> int:
        return len(self._pruning_methods)

    def __iter__(self):
        return iter(self._pruning_methods)

    def __getitem__(self, index):
        return self._pruning_methods[index]

    def compute_mask(self, t, default_mask):
        """The last method's mask, computed on the part the mask so far keeps."""
        method = self._pruning_methods[-1]
        xp = get_array_module(t)
        new_mask = default_mask.astype(t.dtype, copy=True)
        if method.PRUNING_TYPE == "unstructured":
            keep = default_mask == 1  # the weights still there, as one flat selection
            new_mask[keep] = method.compute_mask(t[keep], default_mask[keep])
            return new_mask
        if method.PRUNING_TYPE == "structured":
            dim = _dim("PruningContainer", method.dim, t.ndim)
            others = tuple(d for d in range(t.ndim) if d != dim)
            keep = xp.asarray(default_mask.sum(axis=others) != 0)  # channels left
            index = [slice(None)] * t.ndim
            index[dim] = xp.nonzero(keep)[0]
            index = tuple(index)
            new_mask[index] = method.compute_mask(t[index], default_mask[index])
            return new_mask
        return method.compute_mask(t, default_mask)  # "global": the whole tensor


class Identity(BasePruningMethod):
    """Prunes nothing: the mask is all ones (so that the keys and the hook are there)."""

    PRUNING_TYPE = "unstructured"

    def compute_mask(self, t, default_mask):
        return default_mask

    @classmethod
    def apply(cls, module, name):
        return super().apply(module, name)


class RandomUnstructured(BasePruningMethod):
    """`amount` weights chosen at random (minigrad's generator: mg.manual_seed)."""

    PRUNING_TYPE = "unstructured"

    def __init__(self, amount):
        _check_amount(amount)
        self.amount = amount

    def compute_mask(self, t, default_mask):
        k = _count("random_unstructured", self.amount, t.size)
        mask = default_mask.astype(t.dtype, copy=True)
        if k:
            chosen = _random_order(t.size)[:k]  # a random k of the positions
            mask.reshape(-1)[get_array_module(t).asarray(chosen)] = 0
        return mask

    @classmethod
    def apply(cls, module, name, amount):
        return super().apply(module, name, amount=amount)


class L1Unstructured(BasePruningMethod):
    """The `amount` weights of smallest absolute value (ties: the first in memory order)."""

    PRUNING_TYPE = "unstructured"

    def __init__(self, amount):
        _check_amount(amount)
        self.amount = amount

    def compute_mask(self, t, default_mask):
        k = _count("l1_unstructured", self.amount, t.size)
        mask = default_mask.astype(t.dtype, copy=True)
        if k:
            xp = get_array_module(t)
            smallest = xp.argsort(xp.abs(t).reshape(-1), kind="stable")[:k]
            mask.reshape(-1)[smallest] = 0
        return mask

    @classmethod
    def apply(cls, module, name, amount, importance_scores=None):
        return super().apply(module, name, amount=amount, importance_scores=importance_scores)


class LnStructured(BasePruningMethod):
    """The `amount` slices along `dim` of smallest Ln norm (n = 1, 2, inf, -inf, "fro")."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount, n, dim: int = -1):
        _check_amount(amount)
        self.amount, self.n, self.dim = amount, n, dim

    def compute_mask(self, t, default_mask):
        dim = _dim("ln_structured", self.dim, t.ndim)
        k = _count("ln_structured", self.amount, t.shape[dim])
        if not k:
            return default_mask
        xp = get_array_module(t)
        norms = _slice_norms(t, self.n, dim)
        kept = xp.argsort(-norms, kind="stable")[:t.shape[dim] - k]  # the largest norms
        return _slices_mask(t, dim, kept) * default_mask.astype(t.dtype)

    @classmethod
    def apply(cls, module, name, amount, n, dim, importance_scores=None):
        return super().apply(module, name, amount=amount, n=n, dim=dim,
                             importance_scores=importance_scores)


class RandomStructured(BasePruningMethod):
    """`amount` slices along `dim` chosen at random."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount, dim: int = -1):
        _check_amount(amount)
        self.amount, self.dim = amount, dim

    def compute_mask(self, t, default_mask):
        dim = _dim("random_structured", self.dim, t.ndim)
        k = _count("random_structured", self.amount, t.shape[dim])
        if not k:
            return default_mask
        kept = get_array_module(t).asarray(np.sort(_random_order(t.shape[dim])[k:]))
        return _slices_mask(t, dim, kept) * default_mask.astype(t.dtype)

    @classmethod
    def apply(cls, module, name, amount, dim=-1):
        return super().apply(module, name, amount=amount, dim=dim)


class CustomFromMask(BasePruningMethod):
    """A mask given by the caller (multiplied into the one there)."""

    PRUNING_TYPE = "global"

    def __init__(self, mask):
        self.mask = mask

    def compute_mask(self, t, default_mask):
        mask = self.mask.array if isinstance(self.mask, Tensor) else self.mask
        mask = get_array_module(t).asarray(mask)
        if mask.shape != default_mask.shape:
            raise ValueError(f"custom_from_mask: the mask has shape {mask.shape}, the "
                             f"parameter {default_mask.shape}")
        return default_mask * mask.astype(default_mask.dtype)

    @classmethod
    def apply(cls, module, name, mask):
        return super().apply(module, name, mask=mask)


# ---------------------------------------------------------------------------------------------
# the functions torch users call


def identity(module, name: str):
    """Register the pruning machinery with nothing pruned; returns the module."""
    Identity.apply(module, name)
    return module


def random_unstructured(module, name: str, amount):
    RandomUnstructured.apply(module, name, amount)
    return module


def l1_unstructured(module, name: str, amount, importance_scores=None):
    """Prune the `amount` weights of smallest |value| (or of smallest importance_scores)."""
    L1Unstructured.apply(module, name, amount=amount, importance_scores=importance_scores)
    return module


def random_structured(module, name: str, amount, dim: int):
    RandomStructured.apply(module, name, amount, dim)
    return module


def ln_structured(module, name: str, amount, n, dim: int, importance_scores=None):
    """Prune the `amount` slices along `dim` of smallest Ln norm."""
    LnStructured.apply(module, name, amount, n, dim, importance_scores=importance_scores)
    return module


def custom_from_mask(module, name: str, mask):
    CustomFromMask.apply(module, name, mask)
    return module


def global_unstructured(parameters, pruning_method, importance_scores=None, **kwargs) -> None:
    """Rank the weights of all `parameters` ((module, name) pairs) together and prune the
    `amount` smallest of them all with `pruning_method` (L1Unstructured: by |value|), so that
    layers lose different shares."""
    parameters = list(parameters)
    if not parameters or not all(isinstance(p, tuple) and len(p) == 2 for p in parameters):
        raise TypeError("global_unstructured: parameters must be an iterable of "
                        "(module, name) tuples")
    importance_scores = importance_scores or {}
    if not isinstance(importance_scores, dict):
        raise TypeError("global_unstructured: importance_scores must be a dict of "
                        "{(module, name): Tensor}")
    method = pruning_method(**kwargs)
    if method.PRUNING_TYPE != "unstructured":
        raise TypeError(f'Only "unstructured" PRUNING_TYPE supported for the `pruning_method`. '
                        f"Found method {pruning_method} of type {method.PRUNING_TYPE}")
    scores, masks = [], []
    for module, name in parameters:
        weight = getattr(module, name)
        score = importance_scores.get((module, name), weight)
        scores.append(score.array.reshape(-1))
        mask = getattr(module, name + "_mask", None)
        masks.append(get_array_module(weight.array).ones(weight.numel(), weight.array.dtype)
                     if mask is None else mask.array.reshape(-1))
    xp = get_array_module(scores[0])
    method._tensor_name = "temp"
    container = PruningContainer(method)
    final = container.compute_mask(xp.concatenate(scores), xp.concatenate(masks))
    start = 0
    for module, name in parameters:
        size = getattr(module, name).numel()
        shape = getattr(module, name).shape
        custom_from_mask(module, name, final[start:start + size].reshape(shape))
        start += size


def remove(module, name: str):
    """Make the pruning of `module.<name>` permanent (the Parameter holds orig * mask); the
    `_orig`, the `_mask` and the hook go."""
    for key, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, BasePruningMethod) and hook._tensor_name == name:
            hook.remove(module)
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(f"Parameter '{name}' of module {module} has to be pruned before pruning "
                     "can be removed")


def is_pruned(module) -> bool:
    """Whether any submodule of `module` has a pruning hook."""
    return any(isinstance(hook, BasePruningMethod)
               for _, sub in module.named_modules() for hook in sub._forward_pre_hooks.values())


# ---------------------------------------------------------------------------------------------
# helpers


def _apply(cls, module, name, args, kwargs, importance_scores):
    from minigrad.nn.module import Module, Parameter

    if not isinstance(module, Module):
        raise TypeError(f"prune: expected a minigrad nn.Module, got {type(module).__name__}")
    old = old_key = None
    for key, hook in module._forward_pre_hooks.items():
        if isinstance(hook, BasePruningMethod) and hook._tensor_name == name:
            old, old_key = hook, key
    if old is None:
        orig = module._parameters.get(name)
        if not isinstance(orig, Parameter):
            raise AttributeError(f"prune: {type(module).__name__} has no parameter '{name}' "
                                 f"to prune (its parameters: {list(module._parameters)})")
    method = cls(*args, **kwargs)
    method._tensor_name = name
    if old is None:
        default_mask = get_array_module(orig.array).ones_like(orig.array)
    else:  # stacked: a container of the methods so far and this one
        methods = tuple(old) if isinstance(old, PruningContainer) else (old,)
        method = PruningContainer(*methods, method)
        orig = getattr(module, name + "_orig")
        default_mask = getattr(module, name + "_mask").array.copy()
    scores = orig if importance_scores is None else importance_scores
    if tuple(scores.shape) != tuple(orig.shape):
        raise ValueError(f"prune: importance_scores of shape {tuple(scores.shape)} for "
                         f"'{name}' of shape {tuple(orig.shape)}; they must match")
    mask = method.compute_mask(scores.array, default_mask)  # (before the module changes)
    if old is None:  # weight -> weight_orig, where torch puts it: after the others
        module.register_parameter(name + "_orig", orig)
        del module._parameters[name]
    else:
        del module._forward_pre_hooks[old_key]
    module.register_buffer(name + "_mask", Tensor(mask))
    setattr(module, name, method.apply_mask(module))
    module.register_forward_pre_hook(method)
    return method


def _check_amount(amount) -> None:
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
        raise TypeError(f"Invalid type for amount: {amount!r}. Must be int or float.")
    if (isinstance(amount, numbers.Integral) and amount < 0) or (
            not isinstance(amount, numbers.Integral) and not 0 <= float(amount) <= 1):
        raise ValueError(f"amount={amount} should either be a float in the range [0, 1] or a "
                         "non-negative integer")


def _count(who: str, amount, size: int) -> int:
    """How many of `size` to prune: amount itself (an int), or round(amount * size)."""
    if isinstance(amount, numbers.Integral):
        if amount > size:
            raise ValueError(f"{who}: amount={amount} should be smaller than the number of "
                             f"parameters to prune={size}")
        return int(amount)
    return round(float(amount) * size)


def _dim(who: str, dim: int, ndim: int) -> int:
    if not -ndim <= dim < ndim:
        raise IndexError(f"{who}: dim {dim} is out of range for a parameter of {ndim} dims")
    return dim % ndim


def _random_order(n: int) -> np.ndarray:
    return backend.generator("cpu").permutation(n)


def _slice_norms(t, n, dim: int):
    """The Ln norm of each slice t[..., i, ...] along dim."""
    xp = get_array_module(t)
    others = tuple(d for d in range(t.ndim) if d != dim)
    a = xp.abs(t)
    if n in ("fro", 2):
        return xp.sqrt((a * a).sum(axis=others))
    if n == float("inf"):
        return a.max(axis=others)
    if n == float("-inf"):
        return a.min(axis=others)
    if isinstance(n, numbers.Real) and not isinstance(n, bool) and n > 0:
        return (a ** n).sum(axis=others) ** (1.0 / n)
    raise ValueError(f"ln_structured: n={n!r}; expected a positive number, inf, -inf or 'fro'")


def _slices_mask(t, dim: int, kept):
    xp = get_array_module(t)
    mask = xp.zeros_like(t)
    index = [slice(None)] * t.ndim
    index[dim] = kept
    mask[tuple(index)] = 1
    return mask
