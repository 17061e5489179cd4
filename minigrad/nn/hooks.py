"""A module's hooks, as PyTorch's: code that runs around its forward, and on its gradients.

    handle = model.layer4.register_forward_hook(lambda m, args, out: features.append(out))
    handle.remove()

- `register_forward_pre_hook(hook)`: hook(module, args) before forward; may return new args.
- `register_forward_hook(hook)`: hook(module, args, output) after it; may return a new output.
  (with_kwargs=True: hook(module, args, kwargs) -> (args, kwargs), hook(module, args, kwargs,
  output).)
- `register_full_backward_hook(hook)`: hook(module, grad_input, grad_output) once the
  gradients of the module's tensor inputs are known; may return replacements for grad_input.

A full backward hook needs to see all of a module's input gradients at once. The inputs go
into the forward through one node (HookedInputs: their values packed into one array, then
each read back out), and each output through another (HookedOutput) that notes its gradient;
when the backward reaches the inputs' node, the hook gets both. That costs a copy of the
inputs, only while the module has a backward hook.
"""

from __future__ import annotations

from minigrad import backend
from minigrad.autograd import Function, is_grad_enabled
from minigrad.backend import get_array_module
from minigrad.tensor import Tensor
from minigrad.utils.hooks import RemovableHandle


def register(hooks: dict, hook, prepend: bool, flags: dict | None = None, flag=None):
    """Add `hook` to `hooks` (first if prepend) and return its handle."""
    if not callable(hook):
        raise TypeError(f"register hook: expected a callable, got {type(hook).__name__}")
    handle = RemovableHandle(hooks, *(() if flags is None else (flags,)))
    hooks[handle.id] = hook
    if prepend:
        hooks.move_to_end(handle.id, last=False)
    if flags is not None and flag:
        flags[handle.id] = True
    return handle


def call(module, args: tuple, kwargs: dict):
    """module.forward(*args, **kwargs) with its hooks run around it."""
    for key, hook in list(module._forward_pre_hooks.items()):
        if module._hooks_with_kwargs.get(key):
            result = hook(module, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(f"{type(module).__name__}: a forward pre-hook with "
                                       "kwargs must return None or (args, kwargs)")
                args, kwargs = result
        else:
            result = hook(module, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
    state = None
    if module._backward_hooks and is_grad_enabled():
        state = _BackwardState(module)
        args = state.wrap_inputs(args)
    output = module.forward(*args, **kwargs)
    for key, hook in list(module._forward_hooks.items()):
        if module._hooks_with_kwargs.get(key):
            result = hook(module, args, kwargs, output)
        else:
            result = hook(module, args, output)
        if result is not None:
            output = result
    if state is not None:
        output = state.wrap_outputs(output)
    return output


class _BackwardState:
    """One forward's bookkeeping for its module's full backward hooks."""

    def __init__(self, module):
        self.module, self.hooks = module, list(module._backward_hooks.values())
        self.input_count, self.grad_output, self.pending, self.has_inputs = 0, [], 0, False

    def wrap_inputs(self, args: tuple) -> tuple:
        tensors = [k for k, a in enumerate(args) if isinstance(a, Tensor)]
        self.input_count = len(tensors)
        wanted = [k for k in tensors if args[k].requires_grad]
        if not wanted:
            return args
        dtypes = {args[k].dtype for k in wanted}
        if len(dtypes) > 1:
            raise NotImplementedError(
                f"{type(self.module).__name__}: a full backward hook on a module whose inputs "
                f"that require grad have different dtypes ({sorted(map(str, dtypes))})")
        self.has_inputs = True
        self.positions = [tensors.index(k) for k in wanted]
        packed = HookedInputs.apply(*[args[k] for k in wanted], state=self)
        args, start = list(args), 0
        for k in wanted:
            size = args[k].numel()
            args[k] = packed[start : start + size].reshape(args[k].shape)
            start += size
        return tuple(args)

    def wrap_outputs(self, output):
        single = isinstance(output, Tensor)
        outputs = [output] if single else list(output) if isinstance(output, (tuple, list)) \
            else None
        if outputs is None:
            return output
        self.grad_output = [None] * len(outputs)
        for k, out in enumerate(outputs):
            if isinstance(out, Tensor) and out.requires_grad:
                outputs[k] = HookedOutput.apply(out, state=self, position=k)
                self.pending += 1
        if single:
            return outputs[0]
        return type(output)(outputs)

    def output_gradient(self, position: int, grad) -> None:
        self.grad_output[position] = Tensor(grad)
        self.pending -= 1
        if self.pending == 0 and not self.has_inputs:  # no input wants a gradient: call now
            self.run((None,) * self.input_count)

    def run(self, grad_input: tuple) -> tuple:
        for hook in self.hooks:
            result = hook(self.module, grad_input, tuple(self.grad_output))
            if result is not None:
                result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
                if len(result) != len(grad_input):
                    raise RuntimeError(
                        f"{type(self.module).__name__}: a backward hook returned "
                        f"{len(result)} gradients for {len(grad_input)} inputs")
                for new, old in zip(result, grad_input):
                    if new is not None and old is not None and new.shape != old.shape:
                        raise RuntimeError(
                            f"{type(self.module).__name__}: a backward hook returned a "
                            f"gradient of shape {tuple(new.shape)} for an input of shape "
                            f"{tuple(old.shape)}")
                grad_input = result
        return grad_input


class HookedInputs(Function):
    """The module's inputs that require grad, packed into one flat array (read back out by
    slices); its backward hands their gradients to the full backward hooks."""

    @staticmethod
    def forward(ctx, *inputs, state):
        ctx.state, ctx.shapes = state, [x.shape for x in inputs]
        return get_array_module(inputs[0]).concatenate([x.reshape(-1) for x in inputs])

    @staticmethod
    def backward(ctx, grad):
        state, pieces, start = ctx.state, [], 0
        for shape in ctx.shapes:
            size = 1
            for n in shape:
                size *= n
            pieces.append(grad[start : start + size].reshape(shape))
            start += size
        grad_input = [None] * state.input_count
        for position, piece in zip(state.positions, pieces):
            grad_input[position] = Tensor(piece)
        grad_input = state.run(tuple(grad_input))
        out = []
        for position, piece in zip(state.positions, pieces):
            new = grad_input[position]
            out.append(piece if new is None else backend.get_array_module(piece).asarray(
                new.array, dtype=piece.dtype))
        return tuple(out)


class HookedOutput(Function):
    """An output of the module, as it is; its backward notes the output's gradient."""

    @staticmethod
    def forward(ctx, x, state, position):
        ctx.state, ctx.position = state, position
        return x.view()

    @staticmethod
    def backward(ctx, grad):
        ctx.state.output_gradient(ctx.position, grad)
        return grad
