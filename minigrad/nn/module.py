"""Module, Parameter, Sequential and ModuleList, as in PyTorch.

A Module registers what is assigned to it: a Parameter becomes one of its parameters, a Module
one of its children, and `register_buffer` adds state that is saved but not trained (batch
norm's running statistics). Names are joined with dots, so `features.0.weight` in a
`state_dict` is the weight of the first layer of the `features` Sequential, exactly as
PyTorch names it and a PyTorch `state_dict` can be loaded.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Iterator

import numpy as np

from minigrad import backend
from minigrad.autograd import bump_version, no_grad
from minigrad.nn import hooks
from minigrad.tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A Tensor that is a module's weight: requires grad by default and is registered when
    assigned to a Module attribute."""

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data.array if isinstance(data, Tensor) else data, requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of layers and models: subclasses set parameters and submodules in
    `__init__` and compute in `forward`."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())  # buffers left out of state_dict
        object.__setattr__(self, "training", True)
        for name in ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks"):
            object.__setattr__(self, name, OrderedDict())  # (nn/hooks.py)
        object.__setattr__(self, "_hooks_with_kwargs", {})
        object.__setattr__(self, "_hooked", False)  # set once a hook is registered

    # -- registration -------------------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() first")
        if isinstance(value, (Parameter, Module)):
            registry = self._parameters if isinstance(value, Parameter) else self._modules
            for other in (self._parameters, self._buffers, self._modules):
                if other is not registry:
                    other.pop(name, None)
            self.__dict__.pop(name, None)
            registry[name] = value
        elif name in self._buffers:
            self._buffers[name] = value
        elif name in self._parameters or name in self._modules:
            if value is not None:
                kind = "Parameter" if name in self._parameters else "Module"
                raise TypeError(f"{type(self).__name__}: cannot assign a "
                                f"{type(value).__name__} to '{name}', which holds a {kind}")
            (self._parameters if name in self._parameters else self._modules)[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        for registry in ("_parameters", "_buffers", "_modules"):
            found = self.__dict__.get(registry, {})
            if name in found:
                return found[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """State moved by `to` but not trained; saved in the state_dict unless
        persistent=False (a cache that can be rebuilt)."""
        self._buffers[name] = tensor
        self.__dict__.pop(name, None)
        (self._non_persistent.discard if persistent else self._non_persistent.add)(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        self._modules[name] = module

    def apply(self, fn) -> Module:
        """Call fn(module) on every submodule and then on this one (children first, as in
        PyTorch: `model.apply(init_weights)`); returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- calling ------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        if (args and type(args[0]) is not Tensor and _not_a_tensor(args[0])
                and type(self).__module__.startswith("minigrad.")):
            raise TypeError(f"{type(self).__name__}: expected a minigrad Tensor, got "
                            f"{_type_name(args[0])}; wrap it with minigrad.tensor(...)")
        if self._hooked:  # one test on the fast path; hooks.call runs whatever is registered
            return hooks.call(self, args, kwargs)
        return self.forward(*args, **kwargs)

    # -- hooks (nn/hooks.py) ------------------------------------------------------------------
    def register_forward_pre_hook(self, hook, *, prepend: bool = False,
                                  with_kwargs: bool = False):
        """hook(module, args) before each forward (may return new args); a handle."""
        object.__setattr__(self, "_hooked", True)
        return hooks.register(self._forward_pre_hooks, hook, prepend, self._hooks_with_kwargs,
                              with_kwargs)

    def register_forward_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False):
        """hook(module, args, output) after each forward (may return a new output); a
        handle."""
        object.__setattr__(self, "_hooked", True)
        return hooks.register(self._forward_hooks, hook, prepend, self._hooks_with_kwargs,
                              with_kwargs)

    def register_full_backward_hook(self, hook, prepend: bool = False):
        """hook(module, grad_input, grad_output) when the gradients of this module's tensor
        inputs are computed (may return new grad_input); a handle."""
        object.__setattr__(self, "_hooked", True)
        return hooks.register(self._backward_hooks, hook, prepend)

    def register_backward_hook(self, hook):
        """PyTorch's deprecated name; minigrad's is the full backward hook."""
        return self.register_full_backward_hook(hook)

    # -- walking the tree ---------------------------------------------------------------------
    def named_modules(self, prefix: str = "", remove_duplicate: bool = True,
                      _seen: set | None = None) -> Iterator[tuple[str, Module]]:
        """This module and every one below it, with dotted names; a module registered twice
        (a shared layer) is listed once, under its first name, unless remove_duplicate=False
        (state_dict lists it under each name, as PyTorch's does)."""
        seen = set() if _seen is None else _seen
        if remove_duplicate:
            if id(self) in seen:
                return
            seen.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name,
                                               remove_duplicate, seen)

    def modules(self) -> Iterator[Module]:
        return (module for _, module in self.named_modules())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct submodules, each once (a module registered twice under its first name)."""
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        return (module for _, module in self.named_children())

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """Every parameter once (a shared one under its first name), with its dotted name;
        with recurse=False only this module's own."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, param in module._parameters.items():
                if param is not None and (not remove_duplicate or id(param) not in seen):
                    seen.add(id(param))
                    yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return (param for _, param in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, buffer in module._buffers.items():
                if buffer is not None and (not remove_duplicate or id(buffer) not in seen):
                    seen.add(id(buffer))
                    yield (f"{module_name}.{name}" if module_name else name), buffer

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        return (buffer for _, buffer in self.named_buffers(recurse=recurse))

    def get_submodule(self, target: str) -> Module:
        """The submodule at the dotted path `target` ("" is this module), as torch's."""
        module = self
        for i, part in enumerate(target.split(".") if target else []):
            child = module._modules.get(part)
            if not isinstance(child, Module):
                where = ".".join(target.split(".")[:i]) or type(self).__name__
                raise AttributeError(f"get_submodule: {where} has no submodule '{part}' "
                                     f"(looking for '{target}')")
            module = child
        return module

    # -- modes and devices --------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.array[...] = 0

    def to(self, *args, **kwargs) -> Module:
        """Move (in place) every parameter, gradient and buffer to a device and/or cast the
        floating ones to a dtype: `model.to("cuda")`, `model.to(mg.float64)`. Returns self."""
        device = kwargs.pop("device", None)
        dtype = kwargs.pop("dtype", None)
        kwargs.pop("non_blocking", None)  # (accepted, as Tensor.to does)
        kwargs.pop("memory_format", None)
        if kwargs:
            raise TypeError(f"Module.to: unexpected arguments {sorted(kwargs)}")
        args = [a for a in args if not isinstance(a, bool)]
        for arg in args:
            if isinstance(arg, (str, backend.Device)):
                device = arg
            else:
                dtype = arg
        device = backend.Device(device) if device is not None else None
        dtype = backend.as_dtype(dtype) if dtype is not None else None
        if dtype is not None and not backend.is_floating(dtype):
            raise TypeError(f"Module.to: only floating dtypes are allowed, got {dtype}")

        def convert(array):
            if dtype is not None and backend.is_floating(array.dtype):
                array = array.astype(dtype)
            return backend.to_device(array, device) if device is not None else array

        for tensor in [*self.parameters(), *self.buffers()]:
            tensor.array = convert(tensor.array)
            if tensor.grad is not None:
                tensor.grad.array = convert(tensor.grad.array)
        return self

    def float(self) -> Module:
        return self.to(backend.float32)

    def double(self) -> Module:
        return self.to(backend.float64)

    def cuda(self, device: int | None = None) -> Module:
        return self.to("cuda" if device is None else f"cuda:{device}")

    def cpu(self) -> Module:
        return self.to("cpu")

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict:
        """A fresh dict of name -> NumPy array (a host copy) of every parameter and buffer."""
        state = OrderedDict()
        for module_name, module in self.named_modules(remove_duplicate=False):
            dot = f"{module_name}." if module_name else ""
            for name, tensor in _saved_items(module):
                state[dot + name] = tensor.numpy()
        return state

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy each array of `state_dict` into the parameter or buffer of that name, cast to
        its dtype, as PyTorch does. Arrays may be NumPy arrays, Tensors, or anything NumPy
        can read (torch CPU tensors). With strict=True, missing or unexpected keys are an
        error; a shape mismatch, or a value that is not numbers, always is. All problems are
        listed at once, and every entry is checked and converted before any is written: the
        model is changed entirely or not at all."""
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"load_state_dict: expected a dict of name -> array, got "
                            f"{type(state_dict).__name__}")
        own = OrderedDict()
        for module_name, module in self.named_modules(remove_duplicate=False):
            dot = f"{module_name}." if module_name else ""
            for name, tensor in _saved_items(module):
                own[dot + name] = tensor
        # a checkpoint from before BatchNorm counted its batches has no num_batches_tracked:
        # PyTorch loads it and keeps the count it has, and so does minigrad
        missing = [k for k in own if k not in state_dict
                   and not k.rsplit(".", 1)[-1] == "num_batches_tracked"]
        unexpected = [k for k in state_dict if k not in own]
        arrays, problems = {}, []
        for key, tensor in own.items():
            if key in state_dict:
                array, problem = _checked_value(key, state_dict[key], tensor)
                if problem:
                    problems.append(problem)
                else:
                    arrays[key] = array
        if strict:
            if missing:
                problems.insert(0, "Missing key(s) in state_dict: " + ", ".join(missing))
            if unexpected:
                problems.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(unexpected))
        if problems:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(problems))
        # convert everything first (where a copy to the device could fail), then write
        ready = {key: backend.to_device(array, own[key].device) for key, array in arrays.items()}
        with no_grad():
            for key, array in ready.items():
                own[key].array[...] = array
                bump_version(own[key].array)
        return IncompatibleKeys(missing, unexpected)

    # -- printing -----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ")
                 for name, child in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied one after the other; named 0, 1, 2... (or by an OrderedDict)."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(modules):
                self.add_module(str(index), module)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        return modules[index]

    def __setitem__(self, index: int, module: Module) -> None:
        key = list(self._modules)[index]
        self._modules[key] = module

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered (a plain list would hide them)."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(modules[index])
        return modules[index]

    def __setitem__(self, index: int, module: Module) -> None:
        self._modules[list(self._modules)[index]] = module

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    """A dict of modules whose parameters are registered, in insertion order."""

    def __init__(self, modules=None):
        super().__init__()
        self.update(modules or {})

    def update(self, modules) -> None:
        for name, module in (modules.items() if hasattr(modules, "items") else modules):
            self.add_module(name, module)

    def __getitem__(self, name: str) -> Module:
        return self._modules[name]

    def __setitem__(self, name: str, module: Module) -> None:
        self.add_module(name, module)

    def __delitem__(self, name: str) -> None:
        del self._modules[name]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, name: str) -> bool:
        return name in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()


class ParameterList(Module):
    """A list of parameters, registered under "0", "1", ... as PyTorch's."""

    def __init__(self, parameters=()):
        super().__init__()
        for parameter in parameters:
            self.append(parameter)

    def append(self, parameter) -> ParameterList:
        if not isinstance(parameter, Parameter):
            parameter = Parameter(parameter)
        self.register_parameter(str(len(self)), parameter)
        return self

    def __getitem__(self, index: int) -> Parameter:
        return list(self._parameters.values())[index]

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())


def _checked_value(key: str, value, tensor: Tensor):
    """(the value as a host array of the tensor's dtype, None) or (None, what is wrong)."""
    try:
        if isinstance(value, Tensor):
            array = value.numpy()
        elif backend.is_array(value) and not isinstance(value, np.ndarray):
            array = value.get()  # a CuPy array
        else:
            array = np.asarray(value)
    except Exception as error:  # a value NumPy cannot read at all
        return None, f"{key}: the value ({type(value).__name__}) is not an array ({error})"
    if array.dtype.kind not in "biuf":
        return None, (f"{key}: the value is {array.dtype} ({type(value).__name__}), not numbers "
                      f"that can be copied into the parameter's {np.dtype(tensor.dtype)}")
    if array.shape != tensor.shape:
        return None, (f"size mismatch for {key}: copying a param with shape {array.shape}, the "
                      f"parameter in this model has shape {tensor.shape}")
    return array.astype(tensor.dtype), None


def _saved_items(module: Module):
    """A module's own parameters and persistent buffers: what its state_dict holds."""
    for name, tensor in [*module._parameters.items(), *module._buffers.items()]:
        if tensor is not None and name not in module._non_persistent:
            yield name, tensor


def _not_a_tensor(value) -> bool:
    """Data a layer cannot take: a NumPy array, or a list or tuple of numbers."""
    if isinstance(value, np.ndarray):
        return True
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _type_name(value) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__name__}" if cls.__module__ != "builtins" else cls.__name__
