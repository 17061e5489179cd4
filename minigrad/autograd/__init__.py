"""Reverse-mode automatic differentiation.

A `Function` is one differentiable operation: `forward(ctx, *arrays)` computes its output from
backend arrays and saves what the gradient needs in `ctx`; `backward(ctx, grad)` returns one
gradient per input. `Function.apply` runs the forward on Tensors and, when a gradient is
wanted, records the node in the graph: the output Tensor's `grad_fn` is the `Context`, which
knows the Function and its input Tensors.

`backward` walks that graph from the output to the leaves in reverse topological order,
without recursion, so a chain of any length works; it sums the gradients of a tensor used
twice, stores the leaves' gradients in `.grad`, and frees each node's saved arrays once its
gradient has passed.

The graph's vertices are the nodes (Contexts) and the leaves. A node links to the *nodes* that
made its inputs, not to the input Tensors, so an intermediate result is freed as soon as the
program drops it unless a backward saved it: the output of a convolution that only feeds a
ReLU (which saves its own output) does not live on until the backward pass.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Sequence

import numpy as np

from minigrad.backend import CPU, device_context, device_of, get_array_module, is_array


class _GradModeState(threading.local):
    enabled = True  # each thread starts with gradients on, as in PyTorch


_grad_mode = _GradModeState()


def is_grad_enabled() -> bool:
    """Whether ops record the graph in this thread (False inside `no_grad`)."""
    return _grad_mode.enabled


class _GradMode:
    """Sets gradient recording for this thread on entry and restores it on exit; also a
    decorator. Grad mode is per thread, as in PyTorch: one thread's `no_grad` block leaves
    the others recording."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)

    def __enter__(self):
        self.previous, _grad_mode.enabled = _grad_mode.enabled, self.mode

    def __exit__(self, *exc_info):
        _grad_mode.enabled = self.previous

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _GradMode(self.mode):
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Ops inside record no graph: `with mg.no_grad(): ...` or `@mg.no_grad()`."""

    def __init__(self):
        super().__init__(False)


class enable_grad(_GradMode):
    """Record the graph again inside a `no_grad` block."""

    def __init__(self):
        super().__init__(True)


class inference_mode(_GradMode):
    """PyTorch's `inference_mode(mode=True)`: for evaluation and serving. Here it records no
    graph, as `no_grad` does (PyTorch additionally marks the tensors made inside it, which
    minigrad does not need); `inference_mode(False)` records as usual."""

    def __init__(self, mode: bool = True):
        super().__init__(not mode)


class set_grad_enabled(_GradMode):
    """Turn recording on or off; as a plain call it stays so, as a context it is restored."""

    def __init__(self, mode: bool):
        super().__init__(mode)
        super().__enter__()

    def __enter__(self):
        return self  # the mode was already set when this was made


# ---------------------------------------------------------------------------------------------
# versions: how often each buffer was changed in place

_versions: dict[int, int] = {}  # a buffer's key (_buffer_key) -> in-place changes so far


def _buffer_key(array) -> int:
    """One number for the memory that `array` views, shared by all views of it. NumPy: the id
    of the object that owns the memory (the end of the .base chain, an array or the buffer it
    was made from), which is unique while it lives, and every view keeps it alive; reading an
    address would cost a dict per call (__array_interface__), and this runs twice per saved
    array. CuPy: the address where the owner's memory begins."""
    if isinstance(array, np.ndarray):
        while getattr(array, "base", None) is not None:
            array = array.base
        return id(array)
    while is_array(getattr(array, "base", None)):
        array = array.base
    return array.data.ptr


def bump_version(array) -> None:
    """Record that the memory of `array` (and of every view of it) was changed in place."""
    key = _buffer_key(array)
    _versions[key] = _versions.get(key, 0) + 1


def version(array) -> int:
    """A count of the in-place changes to the memory of `array`: what matters is whether it
    moved between two looks (a new buffer that gets an old one's key may start above 0)."""
    return _versions.get(_buffer_key(array), 0)


class Context:
    """A node of the graph: what a Function's forward leaves for its backward.

    `needs_input_grad[i]` says whether input i wants a gradient (a backward skips the others);
    `save_for_backward(*arrays)` keeps arrays until the gradient has passed this node.
    Small facts (shapes, axes) are stored as plain attributes: `ctx.axis = axis`.

    For the backward pass it also knows, per input, the vertex the gradient goes on to
    (`parents`: the input's own node, the input itself if it is a leaf, None if it wants no
    gradient), and its output's shape and dtype, with a weak link to the output Tensor for
    `retain_grad`.
    """

    def __init__(self, function: type[Function], inputs: tuple, needs_input_grad: tuple):
        self.function = function
        self.parents = tuple(_vertex(t) if t.requires_grad else None for t in inputs)
        self.needs_input_grad = needs_input_grad
        self._saved: tuple | None = ()
        self._versions: tuple = ()
        self._released = False
        self.output_shape, self.output_dtype, self._output = (), None, None

    # for a recorded backward (autograd/higher.py), set where they are needed
    _out_id = None  # id(the output array)
    _alias_id = None  # id(the array an in-place op copied the output into), where one did
    _kept = None  # (ops/inplace.py: the array _out_id names, kept alive with the node)
    _inputs = _settings = None  # an op differentiated again through its formula: its inputs
    _input_versions = ()  # (and their versions then)
    _hooks = None  # {handle id: hook} of the output tensor's register_hook, where it has any

    def save_for_backward(self, *arrays) -> None:
        """Keep `arrays` for the backward, with the version of each one's memory: a backward
        whose saved array was changed in place since then refuses to run."""
        self._saved = arrays
        self._versions = tuple(version(a) if is_array(a) else None for a in arrays)

    @property
    def saved_tensors(self) -> tuple:
        if self._released:
            raise RuntimeError(
                f"{self.function.__name__}.backward: its saved arrays were freed after the first "
                "backward; call backward(retain_graph=True) the first time to go through the "
                "graph twice"
            )
        for k, (array, saved_version) in enumerate(zip(self._saved, self._versions)):
            if saved_version is not None and version(array) != saved_version:
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified by "
                    f"an inplace operation: {self.function.__name__}Backward saved an array of "
                    f"shape {tuple(array.shape)} and dtype {array.dtype} (saved array {k}), "
                    f"which was changed in place {version(array) - saved_version} time(s) "
                    f"since. Make that change out of place (x = x * 2 rather than x *= 2), or "
                    f"after backward()"
                )
        return self._saved

    def release(self) -> None:
        """Free the saved arrays and the links to the inputs once the gradient has passed."""
        self._saved = None
        if self._inputs is not None:
            self._inputs = None
        self.parents = ()
        self._released = True

    def __repr__(self) -> str:
        return f"<{self.function.__name__}Backward>"


def _vertex(tensor):
    """Where a gradient for `tensor` goes in the graph: its node, or the leaf itself."""
    return tensor if tensor.grad_fn is None else tensor.grad_fn


class Function:
    """One differentiable operation. Subclasses write `forward` and `backward` side by side:

        class Exp(Function):
            @staticmethod
            def forward(ctx, x):
                out = xp.exp(x); ctx.save_for_backward(out); return out
            @staticmethod
            def backward(ctx, grad):
                (out,) = ctx.saved_tensors; return grad * out

    Both work on backend arrays (numpy or cupy). Inputs are the positional Tensors of `apply`;
    keyword arguments are passed to `forward` as plain settings.

    Gradients of gradients (a backward pass with create_graph=True, minigrad/autograd/
    higher.py) need each node's backward to be recorded too. An op says how, in one of two ways:

    - `twice_differentiable = True`: its backward is written with operators, methods and
      `get_array_module(grad)` functions that Tensors have as well, so the same lines run on
      Tensors and record their own graph (Exp's above: `grad * out`). What it saves must be its
      inputs or its output (they are linked back into the graph) or masks and indices (bool or
      integer arrays, constant almost everywhere); a saved float array of any other kind is an
      error when a second derivative reaches it.
    - `formula`: the op written with twice-differentiable ops (BatchNorm as means, a square
      root and a division). The node keeps its inputs, and a recorded backward differentiates
      the formula. A fast path (ops/fast) names its `reference` and uses the reference's way.

    An op with neither raises an error naming it when a second derivative reaches it.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # whether a node keeps its inputs, for a second derivative through the formula
        cls._keeps_inputs = not (cls.saves_as_reference or (cls.twice_differentiable and
                                                            cls.reference is None)) and (
            cls.formula is not None or cls.reference is not None)

    twice_differentiable = False
    constant_saves: tuple = ()  # positions of saved float arrays constant almost everywhere
    formula = None  # staticmethod(*input Tensors, **settings) -> the output Tensor
    reference = None  # a fast path's reference Function (ops/fast)
    saves_as_reference = False  # a fast path whose ctx holds what the reference's would

    @staticmethod
    def forward(ctx: Context, *arrays, **settings):
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad):
        raise NotImplementedError

    @classmethod
    def run(cls, *values, **settings):
        """The op on Tensors (`apply`), or its forward alone on arrays. For a backward whose
        formula is itself an op: the gradient of indexing is a scatter-add into zeros, whose
        gradient is indexing again; such a backward reads the same on arrays and on Tensors."""
        from minigrad.tensor import Tensor

        if any(isinstance(v, Tensor) for v in values):
            return cls.apply(*values, **settings)
        return cls.forward(Context(cls, (), (False,) * len(values)), *values, **settings)

    @classmethod
    def apply(cls, *inputs, **settings):
        from minigrad.tensor import Tensor

        device = _common_device(cls, inputs)
        if _grad_mode.enabled:
            needs_input_grad = tuple(t.requires_grad for t in inputs)
            record = any(needs_input_grad)
        else:
            needs_input_grad, record = (False,) * len(inputs), False
        ctx = Context(cls, inputs if record else (), needs_input_grad)
        arrays = [t.array for t in inputs]
        if device.type == "cpu":
            out = cls.forward(ctx, *arrays, **settings)
        else:
            with device_context(device):
                out = cls.forward(ctx, *arrays, **settings)
        result = Tensor(out)
        if record:
            if result.array is not out:  # a NumPy scalar (a 0-d result), made an array
                out = _as_output_array(ctx, out, result.array)
            result.requires_grad = True
            result.grad_fn = ctx
            # the output's id tells a recorded backward which saved array is this output (or,
            # for the next node, its input): an array saved while it is alive, so equal ids
            # mean the same array (autograd/higher.py)
            ctx.output_shape, ctx.output_dtype, ctx._out_id = out.shape, out.dtype, id(out)
            ctx._output = weakref.ref(result)
            if cls._keeps_inputs:  # (with their versions: a change in place is refused)
                ctx._inputs, ctx._settings = arrays, settings
                ctx._input_versions = tuple(map(version, arrays))
        return result


def _as_output_array(ctx: Context, scalar, out):
    """The 0-d array `out` that Tensor made of a forward's NumPy scalar, put in the scalar's
    place among the saved arrays too, so that a saved output is still known to be the output
    (autograd/higher.py)."""
    if ctx._saved and any(item is scalar for item in ctx._saved):
        ctx._saved = tuple(out if item is scalar else item for item in ctx._saved)
        ctx._versions = tuple(version(a) if is_array(a) else None for a in ctx._saved)
    return out


def _common_device(function: type[Function], inputs: tuple):
    """The device of all inputs, or an error naming the op and the devices that differ."""
    if all(type(t.array) is np.ndarray for t in inputs):  # the common case, decided at once
        return CPU
    device = device_of(inputs[0].array)
    for t in inputs[1:]:
        other = device_of(t.array)
        if other != device:
            raise RuntimeError(
                f"{function.__name__.lower()}: expected all tensors on one device, but found "
                f"tensors on {device} and {other}; move them with .to(device) first"
            )
    return device


def _topological_order(roots: Sequence, stop=()) -> list:
    """Vertices (nodes and leaves) reachable from `roots`, each after all of its inputs; the
    search does not go past the vertices whose ids are in `stop`.

    An iterative depth-first search (a stack of (vertex, inputs_done) pairs), so a graph of any
    depth is sorted without Python's recursion limit.
    """
    order, visited = [], set()
    stack = [(root, False) for root in roots]
    while stack:
        vertex, inputs_done = stack.pop()
        if inputs_done:
            order.append(vertex)
            continue
        if id(vertex) in visited:
            continue
        visited.add(id(vertex))
        stack.append((vertex, True))
        if isinstance(vertex, Context) and (not stop or id(vertex) not in stop):
            if vertex._released:
                raise RuntimeError(
                    "backward: trying to go through the graph a second time, but its saved "
                    "arrays were freed by the first backward; pass retain_graph=True to the "
                    "first call if you need to"
                )
            for parent in vertex.parents:
                if parent is not None and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None,
             create_graph: bool = False, inputs=None) -> None:
    """Compute the gradients of `tensors` with respect to the graph's leaves.

    `grad_tensors` gives the gradient of each output (it may be omitted for a single-element
    output, where it is 1). Leaves accumulate into `.grad`, as in PyTorch; with `inputs`, only
    those tensors do. `create_graph=True` records the backward pass itself, so the gradients
    in `.grad` can be differentiated again; it keeps the graph (retain_graph) unless told not to.
    """
    from minigrad.tensor import Tensor

    if retain_graph is None:
        retain_graph = create_graph
    only = None
    if inputs is not None:
        inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
        if not inputs:
            raise RuntimeError("backward: inputs argument was passed as an empty list; leave it "
                               "out to accumulate into every leaf")
        for k, t in enumerate(inputs):
            if not isinstance(t, Tensor) or not t.requires_grad:
                raise RuntimeError(f"backward: inputs[{k}] does not require grad")
        only = {id(_vertex(t)): t for t in inputs}
    _run_backward(tensors, grad_tensors, retain_graph, wanted=None, create_graph=create_graph,
                  only=only)


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple:
    """torch.autograd.grad: the gradients of `outputs` with respect to `inputs`, returned as
    a tuple (None for an input that the outputs do not depend on, if allow_unused) instead of
    accumulated into any `.grad`. With create_graph=True the gradients are part of a graph and
    can be differentiated again (gradients of gradients, minigrad/autograd/higher.py)."""
    from minigrad.tensor import Tensor

    single = isinstance(inputs, Tensor)
    inputs = (inputs,) if single else tuple(inputs)
    for k, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(f"grad: input {k} does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    wanted = {id(_vertex(t)): None for t in inputs}
    _run_backward(outputs, grad_outputs, bool(retain_graph), wanted, create_graph=create_graph)
    result = []
    for k, t in enumerate(inputs):
        found = wanted[id(_vertex(t))]
        if found is None and not allow_unused:
            raise RuntimeError(f"grad: input {k} was not used to compute the outputs; pass "
                               "allow_unused=True to get None for it")
        result.append(found if found is None or isinstance(found, Tensor) else Tensor(found))
    return tuple(result)


def _run_backward(tensors, grad_tensors, retain_graph: bool, wanted: dict | None,
                  create_graph: bool = False, only: dict | None = None, stop=()) -> None:
    """The backward pass. With `wanted` ({id of a vertex: None}), the gradient reaching each
    of those vertices is stored there and no `.grad` is touched (autograd.grad); else leaves
    (and tensors that retain_grad) accumulate into `.grad`, or only the vertices in `only`.

    With `create_graph`, the gradients are Tensors and each node's backward is recorded
    (higher.recorded_backward), so what comes out can be differentiated again; the search
    does not go past the vertices in `stop` (higher's differentiation of a formula)."""
    from minigrad.tensor import Tensor

    tensors = (tensors,) if isinstance(tensors, Tensor) else tuple(tensors)
    if grad_tensors is None:
        grad_tensors = (None,) * len(tensors)
    elif isinstance(grad_tensors, Tensor):
        grad_tensors = (grad_tensors,)
    else:
        grad_tensors = tuple(grad_tensors)
    if len(grad_tensors) != len(tensors):
        raise ValueError(
            f"backward: got {len(tensors)} tensors but {len(grad_tensors)} gradients for them"
        )
    if create_graph:
        with enable_grad():
            _run_recorded(tensors, grad_tensors, wanted, only, stop)
        return
    grads = {}
    for tensor, gradient in zip(tensors, grad_tensors):
        seed, key = _seed_gradient(tensor, gradient).array, id(_vertex(tensor))
        grads[key] = grads[key] + seed if key in grads else seed
    handed_out = list(grads.values())  # arrays a leaf's .grad must not share memory with

    order = _topological_order([_vertex(t) for t in tensors])
    for position in range(len(order) - 1, -1, -1):
        vertex = order[position]
        order[position] = None  # let the node go as soon as its gradient has passed
        grad = grads.pop(id(vertex), None)
        if grad is None:
            continue
        if vertex._hooks:  # Tensor.register_hook
            grad = _run_hooks(vertex, Tensor(grad)).array
        if wanted is not None and id(vertex) in wanted:
            wanted[id(vertex)] = grad.copy()
        if not isinstance(vertex, Context):  # a leaf
            if wanted is None and (only is None or id(vertex) in only):
                _accumulate_into_grad(vertex, grad, handed_out)
            continue
        if wanted is None:
            if only is None:
                output = vertex._output()
                if output is not None and output._retains_grad:
                    _accumulate_into_grad(output, grad, handed_out)
            elif id(vertex) in only:  # backward(inputs=[...]) names a non-leaf
                _accumulate_into_grad(only[id(vertex)], grad, handed_out)
        if type(grad) is np.ndarray:
            input_grads = vertex.function.backward(vertex, grad)
        else:
            device = device_of(grad)
            with device_context(device):
                input_grads = vertex.function.backward(vertex, grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if len(input_grads) != len(vertex.parents):
            _wrong_count(vertex, input_grads)
        for parent, parent_grad, needed in zip(vertex.parents, input_grads,
                                               vertex.needs_input_grad):
            if not needed or parent_grad is None or parent is None:
                continue
            parent_grad = _checked_gradient(vertex, parent, parent_grad)
            key = id(parent)
            grads[key] = grads[key] + parent_grad if key in grads else parent_grad
        if not retain_graph:
            vertex.release()


def _run_recorded(tensors, grad_tensors, wanted, only, stop) -> None:
    """_run_backward's recorded pass: the same walk, on Tensors, each node's backward recorded.
    The graph is kept (its nodes are in the new one: Exp's gradient reads Exp's output)."""
    from minigrad.autograd.higher import recorded_backward

    grads = {}
    for tensor, gradient in zip(tensors, grad_tensors):
        seed, key = _seed_gradient(tensor, gradient), id(_vertex(tensor))
        grads[key] = grads[key] + seed if key in grads else seed
    for vertex in reversed(_topological_order([_vertex(t) for t in tensors], stop)):
        grad = grads.pop(id(vertex), None)
        if grad is None:
            continue
        if vertex._hooks:  # Tensor.register_hook
            grad = _run_hooks(vertex, grad)
        # what is handed out is a copy (Clone, in the graph): a gradient may be the caller's
        # seed, another leaf's (a + b hands both the same), or a read-only broadcast view
        if wanted is not None and id(vertex) in wanted:
            wanted[id(vertex)] = grad.clone()
        if not isinstance(vertex, Context):  # a leaf
            if wanted is None and (only is None or id(vertex) in only):
                vertex.grad = grad.clone() if vertex.grad is None else vertex.grad + grad
            continue
        if wanted is None:
            output = vertex._output() if only is None else only.get(id(vertex))
            if output is not None and (output._retains_grad or only is not None):
                output.grad = grad.clone() if output.grad is None else output.grad + grad
        if id(vertex) in stop:
            continue
        device = device_of(grad.array)
        if device.type == "cpu":
            input_grads = recorded_backward(vertex, grad)
        else:
            with device_context(device):
                input_grads = recorded_backward(vertex, grad)
        _pass_on_recorded(vertex, input_grads, grads)


def _run_hooks(vertex, grad):
    """The gradient reaching `vertex` (a leaf, or the node that made a tensor) passed through
    the hooks registered on that tensor (Tensor.register_hook), in order: each gets the
    gradient and may return a replacement of the same shape, dtype and device."""
    from minigrad.tensor import Tensor

    for hook in list(vertex._hooks.values()):
        new = hook(grad)
        if new is None:
            continue
        if not isinstance(new, Tensor):
            raise TypeError(f"register_hook: the hook {getattr(hook, '__name__', hook)!r} "
                            f"returned a {type(new).__name__}, not a Tensor or None")
        if new.shape != grad.shape or new.dtype != grad.dtype or new.device != grad.device:
            raise RuntimeError(
                f"register_hook: the hook {getattr(hook, '__name__', hook)!r} returned a "
                f"gradient of shape {tuple(new.shape)}, dtype {new.dtype} on {new.device} for "
                f"one of shape {tuple(grad.shape)}, dtype {grad.dtype} on {grad.device}")
        grad = new
    return grad


def _wrong_count(vertex: Context, input_grads: tuple) -> None:
    raise RuntimeError(f"{vertex.function.__name__}.backward returned {len(input_grads)} "
                       f"gradients for {len(vertex.parents)} inputs")


def _pass_on_recorded(vertex: Context, input_grads, grads: dict) -> None:
    """The recorded pass's step of _run_backward's loop: add the gradients (Tensors) a node's
    backward returned to those of the vertices it came from. An array among them is an error:
    some step of the formula went outside the graph, and a second derivative would be lost."""
    from minigrad.tensor import Tensor

    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    if len(input_grads) != len(vertex.parents):
        _wrong_count(vertex, input_grads)
    for parent, parent_grad, needed in zip(vertex.parents, input_grads, vertex.needs_input_grad):
        if not needed or parent_grad is None or parent is None:
            continue
        if not isinstance(parent_grad, Tensor):
            raise RuntimeError(
                f"{vertex.function.__name__}.backward returned a {type(parent_grad).__name__} "
                "in a recorded backward pass (create_graph=True), not a Tensor: some step of "
                "its formula works on arrays only, so its second derivative would be lost")
        parent_grad = _checked_gradient(vertex, parent, parent_grad)
        key = id(parent)
        grads[key] = grads[key] + parent_grad if key in grads else parent_grad


def _seed_gradient(tensor, gradient):
    """The Tensor that starts the backward pass at `tensor`, checked against its shape."""
    from minigrad.tensor import Tensor

    if not tensor.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad and has no grad_fn; set "
            "requires_grad=True on the leaves you want gradients for"
        )
    if gradient is None:
        if tensor.array.size != 1:
            raise RuntimeError(
                f"backward: a gradient can be created implicitly only for a single-element "
                f"output, but this tensor has shape {tensor.shape}; pass "
                f"backward(gradient=...) of that shape"
            )
        return Tensor(get_array_module(tensor.array).ones_like(tensor.array))
    if not isinstance(gradient, Tensor):
        raise TypeError(f"backward: gradient must be a Tensor, got {type(gradient).__name__}")
    if gradient.shape != tensor.shape or gradient.dtype != tensor.dtype:
        raise RuntimeError(
            f"backward: gradient has shape {gradient.shape} and dtype {gradient.dtype}, but the "
            f"tensor has shape {tensor.shape} and dtype {tensor.dtype}; they must match"
        )
    if gradient.device != tensor.device:
        raise RuntimeError(
            f"backward: gradient is on {gradient.device} but the tensor is on {tensor.device}"
        )
    return gradient


def _checked_gradient(node: Context, parent, grad):
    """A gradient from `node`'s backward, checked to have its input's shape and dtype.

    A mismatch is a bug in that op's backward; catching it here stops it from being broadcast
    or promoted silently further down the graph.
    """
    if not is_array(grad) and not hasattr(grad, "grad_fn"):  # (a Tensor in a recorded pass)
        grad = get_array_module(grad).asarray(grad)  # NumPy turns 0-d results into scalars
    if isinstance(parent, Context):
        shape, dtype = parent.output_shape, parent.output_dtype
    else:
        shape, dtype = parent.array.shape, parent.array.dtype
    if grad.shape != shape or grad.dtype != dtype:
        raise RuntimeError(
            f"{node.function.__name__}.backward returned a gradient of shape {grad.shape} and "
            f"dtype {grad.dtype} for an input of shape {shape} and dtype {dtype}"
        )
    return grad


def _accumulate_into_grad(tensor, grad, handed_out: list) -> None:
    """Add `grad` to `tensor.grad`, copying it first where it may share memory with the
    caller's seed gradient or another leaf's gradient.

    A backward may hand the same array to two inputs (the gradient of `a + b`) or pass the
    seed through unchanged, or as a view (a reshape); a leaf's `.grad` must own its memory.
    """
    from minigrad.tensor import Tensor

    if tensor.grad is None:
        xp = get_array_module(grad)
        if any(type(other) is type(grad) and xp.may_share_memory(grad, other)
               for other in handed_out):
            grad = grad.copy()
        handed_out.append(grad)
        tensor.grad = Tensor(grad)
    else:
        tensor.grad.array = tensor.grad.array + grad


def __getattr__(name: str):
    """mg.autograd.gradcheck and gradgradcheck, as torch.autograd has them (they live in
    minigrad/gradcheck.py, which imports this module)."""
    if name in ("gradcheck", "gradgradcheck", "GradcheckError"):
        import importlib

        return getattr(importlib.import_module("minigrad.gradcheck"), name)
    raise AttributeError(f"module 'minigrad.autograd' has no attribute {name!r}")
