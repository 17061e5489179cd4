"""`mg.autograd.functional`, torch.autograd.functional's first-order part: `vjp` and
`jacobian`, with torch's signatures and return structures.

Both call `func` on copies of the inputs that require a gradient (detached from any graph the
inputs are in) and run reverse-mode backward passes through what it built: `vjp` one pass with
the given `v`, `jacobian` one pass per element of each output (its row of the Jacobian).
The second-order functions (`hvp`, `vhp`, `hessian`, and `jvp`, which torch computes as a
double vjp) need gradients of gradients (`create_graph=True`), which minigrad's backward
passes do not record yet: they are not offered, and `create_graph=True` raises.
"""

from __future__ import annotations

from collections.abc import Callable

from minigrad.autograd import grad
from minigrad.backend import get_array_module
from minigrad.tensor import Tensor, zeros


def _as_tuple(value, what: str, who: str) -> tuple[bool, tuple]:
    """(was it a tuple, the Tensors as a tuple), or a TypeError in torch's words."""
    is_tuple = isinstance(value, (tuple, list))
    items = tuple(value) if is_tuple else (value,)
    for item in items:
        if not isinstance(item, Tensor):
            raise TypeError(f"The {what} given to {who} must be either a Tensor or a tuple of "
                            f"Tensors but the given {what} has type {type(item)}.")
    return is_tuple, items


def _prepared(inputs: tuple) -> tuple:
    """Leaf copies of the inputs (same memory) that require a gradient."""
    return tuple(Tensor(t.array, requires_grad=True) for t in inputs)


def _no_create_graph(create_graph: bool, who: str) -> None:
    if create_graph:
        raise NotImplementedError(f"{who}: create_graph=True needs gradients of gradients, "
                                  "which minigrad's backward passes do not record yet")


def _filled(gradients: tuple, inputs: tuple, strict: bool, who: str, output: int | None):
    """None gradients (an input the output does not depend on) as zeros, or, with strict, the
    error torch raises."""
    result = []
    for k, (g, x) in enumerate(zip(gradients, inputs)):
        if g is None:
            if strict:
                of = "the outputs" if output is None else f"output {output}"
                raise RuntimeError(f"{who}: {of} of the user-provided function is independent "
                                   f"of input {k}. This is not allowed in strict mode.")
            g = zeros(*x.shape, dtype=x.dtype, device=x.device)
        result.append(g)
    return tuple(result)


def vjp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T J): the outputs (detached) and the vector-Jacobian product, each a
    Tensor or a tuple of Tensors as `func`'s outputs and `inputs` are. `v` has the outputs'
    shapes; it may be left out where the output is a single element (then it is 1)."""
    _no_create_graph(create_graph, "vjp")
    inputs_tuple, inputs = _as_tuple(inputs, "inputs", "vjp")
    inputs = _prepared(inputs)
    outputs_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function",
                                       "vjp")
    if v is None:
        if len(outputs) != 1 or outputs[0].numel() != 1:
            raise RuntimeError("vjp: the vector v can only be None if the user-provided "
                               "function returns a single Tensor with a single element.")
        vs = (None,)
    else:
        _, vs = _as_tuple(v, "v", "vjp")
        if len(vs) != len(outputs):
            raise RuntimeError(f"vjp: v has {len(vs)} Tensors but the function returns "
                               f"{len(outputs)} outputs")
        for k, (vk, out) in enumerate(zip(vs, outputs)):
            if vk.shape != out.shape:
                raise RuntimeError(f"vjp: v[{k}] has shape {tuple(vk.shape)} but output {k} of "
                                   f"the function has shape {tuple(out.shape)}")
    used = [(out, vk) for out, vk in zip(outputs, vs) if out.requires_grad]
    if used:
        gradients = grad([out for out, _ in used], inputs,
                         grad_outputs=[vk for _, vk in used], allow_unused=True)
    else:  # no output depends on any input
        gradients = (None,) * len(inputs)
    products = _filled(gradients, inputs, strict, "vjp", None)
    detached = tuple(out.detach() for out in outputs)
    return (detached if outputs_tuple else detached[0],
            products if inputs_tuple else products[0])


def jacobian(func: Callable, inputs, create_graph: bool = False, strict: bool = False,
             vectorize: bool = False, strategy: str = "reverse-mode"):
    """The Jacobian of `func` at `inputs`, in torch's structure: for one output and one input a
    Tensor of shape output.shape + input.shape; a tuple over the inputs where they are a tuple;
    a tuple over the outputs (of tuples over the inputs) where func returns a tuple.
    Reverse mode, one backward pass per output element (`vectorize` is accepted and changes
    nothing here: torch's batches the passes with vmap)."""
    _no_create_graph(create_graph, "jacobian")
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError(f'jacobian: expected strategy to be either "forward-mode" or '
                         f'"reverse-mode", got {strategy!r}')
    if strategy == "forward-mode":
        raise NotImplementedError("jacobian: strategy='forward-mode' needs forward-mode "
                                  "differentiation, which minigrad does not have; use "
                                  "'reverse-mode'")
    inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
    inputs = _prepared(inputs)
    outputs_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function",
                                       "jacobian")
    per_output = []
    for i, out in enumerate(outputs):
        rows = [[] for _ in inputs]
        for j in range(out.numel()):
            if out.requires_grad:
                one_hot = zeros(out.numel(), dtype=out.dtype, device=out.device)
                one_hot.array[j] = 1
                gradients = grad(out, inputs, grad_outputs=one_hot.reshape(out.shape),
                                 retain_graph=True, allow_unused=True)
            else:
                gradients = (None,) * len(inputs)
            for k, g in enumerate(_filled(gradients, inputs, strict, "jacobian", i)):
                rows[k].append(g.array.reshape(-1))
        blocks = []
        for k, x in enumerate(inputs):
            if rows[k]:
                block = get_array_module(rows[k][0]).stack(rows[k])
            else:  # an output with no elements
                block = zeros(0, x.numel(), dtype=x.dtype, device=x.device).array
            blocks.append(Tensor(block.reshape(*out.shape, *x.shape)))
        per_output.append(tuple(blocks) if inputs_tuple else blocks[0])
    return tuple(per_output) if outputs_tuple else per_output[0]
