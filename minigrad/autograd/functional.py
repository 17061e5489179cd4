"""`mg.autograd.functional`: torch.autograd.functional's `vjp`, `jvp`, `jacobian`, `hessian`,
`vhp` and `hvp`, with torch's signatures and return structures.

Each calls `func` on aliases of the inputs that require a gradient and runs reverse-mode
passes through what it built: `vjp` one pass with the given `v`; `jacobian` one pass per
element of each output (its row of the Jacobian). The others need gradients of gradients,
recorded backward passes (create_graph=True, autograd/higher.py):

    jvp(v)  = J v       the "double vjp": u -> J^T u is linear in u, so its vjp with v is J v
    vhp(v)  = v^T H     the gradient of <grad f(x), v>
    hvp(v)  = H v       the same numbers (H is symmetric where f is twice differentiable)
    hessian = the Jacobian of the gradient

With create_graph=False the results are detached, as torch's; with create_graph=True they
stay in the graph of the inputs (a Hessian-vector product can be differentiated again).
"""

from __future__ import annotations

from collections.abc import Callable

from minigrad.autograd import enable_grad, grad
from minigrad.backend import get_array_module
from minigrad.tensor import Tensor, zeros, zeros_like


def _as_tuple(value, what: str, who: str) -> tuple[bool, tuple]:
    """(was it a tuple, the Tensors as a tuple), or a TypeError in torch's words."""
    is_tuple = isinstance(value, (tuple, list))
    items = tuple(value) if is_tuple else (value,)
    for item in items:
        if not isinstance(item, Tensor):
            raise TypeError(f"The {what} given to {who} must be either a Tensor or a tuple of "
                            f"Tensors but the given {what} has type {type(item)}.")
    return is_tuple, items


def _prepared(inputs: tuple, create_graph: bool) -> tuple:
    """What `func` is called on: with create_graph, an input that requires a gradient enters
    through an identity node, so the results stay linked to its graph; otherwise (and for
    the others) a leaf on the same memory (a view: another array object, never taken for the
    input itself where func also reads that) that requires a gradient."""
    from minigrad.autograd.higher import Alias

    return tuple(Alias.apply(t) if create_graph and t.requires_grad
                 else Tensor(t.array.view(), requires_grad=True) for t in inputs)


def _finished(tensors: tuple, create_graph: bool) -> tuple:
    return tensors if create_graph else tuple(t.detach() for t in tensors)


def _outputs_of(func: Callable, inputs: tuple, who: str) -> tuple[bool, tuple]:
    with enable_grad():
        return _as_tuple(func(*inputs), "outputs of the user-provided function", who)


def _check_v(v, outputs_or_inputs: tuple, what: str, who: str) -> tuple:
    """`v` as a tuple, one Tensor of the shape of each of `outputs_or_inputs`."""
    _, vs = _as_tuple(v, "v", who)
    if len(vs) != len(outputs_or_inputs):
        raise RuntimeError(f"{who}: v has {len(vs)} Tensors but there are "
                           f"{len(outputs_or_inputs)} {what}")
    for k, (vk, t) in enumerate(zip(vs, outputs_or_inputs)):
        if vk.shape != t.shape:
            raise RuntimeError(f"{who}: v[{k}] has shape {tuple(vk.shape)} but {what[:-1]} {k} "
                               f"has shape {tuple(t.shape)}")
    return vs


def _single_element(outputs: tuple, who: str, what: str = "v can only be None") -> None:
    if len(outputs) != 1 or outputs[0].numel() != 1:
        raise RuntimeError(f"{who}: the vector {what} if the user-provided function returns a "
                           "single Tensor with a single element.")


def _grads(outputs, inputs, grad_outputs, create_graph: bool) -> tuple:
    """autograd.grad over the outputs that depend on something, None where nothing does."""
    used = [(out, g) for out, g in zip(outputs, grad_outputs) if out.requires_grad]
    if not used:
        return (None,) * len(inputs)
    return grad([out for out, _ in used], inputs, grad_outputs=[g for _, g in used],
                create_graph=create_graph, retain_graph=True, allow_unused=True)


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
    """(func(inputs), v^T J): the outputs and the vector-Jacobian product, each a Tensor or a
    tuple of Tensors as `func`'s outputs and `inputs` are. `v` has the outputs' shapes; it may
    be left out where the output is a single element (then it is 1)."""
    inputs_tuple, inputs = _as_tuple(inputs, "inputs", "vjp")
    inputs = _prepared(inputs, create_graph)
    outputs_tuple, outputs = _outputs_of(func, inputs, "vjp")
    if v is None:
        _single_element(outputs, "vjp")
        vs = (None,)
    else:
        vs = _check_v(v, outputs, "outputs", "vjp")
    products = _filled(_grads(outputs, inputs, vs, create_graph), inputs, strict, "vjp", None)
    outputs, products = _finished(outputs, create_graph), _finished(products, create_graph)
    return (outputs if outputs_tuple else outputs[0],
            products if inputs_tuple else products[0])


def jvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), J v): the outputs and the Jacobian-vector product. `v` has the inputs'
    shapes (it may be left out for a single input of one element). Computed as torch's is,
    by the double vjp: for a dummy u (zeros that require a gradient) g(u) = J^T u is linear
    in u, and the vjp of g with v is J v."""
    inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jvp")
    inputs = _prepared(inputs, create_graph)
    if v is None:
        if len(inputs) != 1 or inputs[0].numel() != 1:
            raise RuntimeError("jvp: the vector v can only be None if the input to the "
                               "user-provided function is a single Tensor with a single "
                               "element.")
        vs = (None,)
    else:
        vs = _check_v(v, inputs, "inputs", "jvp")
    outputs_tuple, outputs = _outputs_of(func, inputs, "jvp")
    dummies = tuple(zeros_like(out).requires_grad_() for out in outputs)
    with enable_grad():
        back = _grads(outputs, inputs, dummies, create_graph=True)
    pairs = [(b, vk) for b, vk in zip(back, vs) if b is not None and b.requires_grad]
    if pairs:
        gradients = grad([b for b, _ in pairs], dummies, grad_outputs=[vk for _, vk in pairs],
                         create_graph=create_graph, allow_unused=True)
    else:
        gradients = (None,) * len(dummies)
    result = []
    for k, (g, out) in enumerate(zip(gradients, outputs)):
        if g is None:
            if strict:
                raise RuntimeError(f"jvp: output {k} of the user-provided function is "
                                   "independent of the inputs. This is not allowed in strict "
                                   "mode.")
            g = zeros_like(out)
        result.append(g)
    outputs, result = _finished(outputs, create_graph), _finished(tuple(result), create_graph)
    return (outputs if outputs_tuple else outputs[0], result if outputs_tuple else result[0])


def jacobian(func: Callable, inputs, create_graph: bool = False, strict: bool = False,
             vectorize: bool = False, strategy: str = "reverse-mode"):
    """The Jacobian of `func` at `inputs`, in torch's structure: for one output and one input a
    Tensor of shape output.shape + input.shape; a tuple over the inputs where they are a tuple;
    a tuple over the outputs (of tuples over the inputs) where func returns a tuple.
    Reverse mode, one backward pass per output element (`vectorize` is accepted and changes
    nothing here: torch's batches the passes with vmap)."""
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError(f'jacobian: expected strategy to be either "forward-mode" or '
                         f'"reverse-mode", got {strategy!r}')
    if strategy == "forward-mode":
        raise NotImplementedError("jacobian: strategy='forward-mode' needs forward-mode "
                                  "differentiation, which minigrad does not have; use "
                                  "'reverse-mode'")
    inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
    inputs = _prepared(inputs, create_graph)
    outputs_tuple, outputs = _outputs_of(func, inputs, "jacobian")
    per_output = [_jacobian_blocks(out, i, inputs, create_graph, strict, "jacobian")
                  for i, out in enumerate(outputs)]
    per_output = [tuple(blocks) if inputs_tuple else blocks[0] for blocks in per_output]
    return tuple(per_output) if outputs_tuple else per_output[0]


def _jacobian_blocks(out: Tensor, i: int, inputs: tuple, create_graph: bool, strict: bool,
                     who: str) -> list:
    """d out / d input for each input, of shape out.shape + input.shape: one backward pass
    per element of `out`. With create_graph the rows are stacked by a differentiable stack."""
    from minigrad.ops.shape import stack

    rows = [[] for _ in inputs]
    for j in range(out.numel()):
        one_hot = zeros(out.numel(), dtype=out.dtype, device=out.device)
        one_hot.array[j] = 1
        gradients = _grads((out,), inputs, (one_hot.reshape(out.shape),), create_graph)
        for k, g in enumerate(_filled(gradients, inputs, strict, who, i)):
            rows[k].append(g.reshape(-1))
    blocks = []
    for k, x in enumerate(inputs):
        if not rows[k]:  # an output with no elements
            block = zeros(0, x.numel(), dtype=x.dtype, device=x.device)
        elif create_graph:
            block = stack(rows[k])
        else:
            block = Tensor(get_array_module(rows[k][0].array).stack([r.array for r in rows[k]]))
        blocks.append(block.reshape(*out.shape, *x.shape))
    return blocks


def _scalar_function(func: Callable, inputs: tuple, who: str) -> Tensor:
    _, outputs = _outputs_of(func, inputs, who)
    if len(outputs) != 1 or outputs[0].numel() != 1:
        raise RuntimeError(f"{who}: the function given to {who} should return a single Tensor "
                           "with a single element")
    return outputs[0]


def hessian(func: Callable, inputs, create_graph: bool = False, strict: bool = False,
            vectorize: bool = False, outer_jacobian_strategy: str = "reverse-mode"):
    """The Hessian of a scalar `func` at `inputs`: the Jacobian of its gradient. For one input
    a Tensor of shape input.shape + input.shape; for a tuple of inputs a tuple of tuples,
    H[i][j] of shape inputs[i].shape + inputs[j].shape."""
    if outer_jacobian_strategy != "reverse-mode":
        raise NotImplementedError("hessian: outer_jacobian_strategy='forward-mode' needs "
                                  "forward-mode differentiation, which minigrad does not have")
    inputs_tuple, inputs = _as_tuple(inputs, "inputs", "hessian")
    inputs = _prepared(inputs, create_graph)
    out = _scalar_function(func, inputs, "hessian")
    with enable_grad():
        gradients = _filled(_grads((out,), inputs, (None,), create_graph=True), inputs, strict,
                            "hessian", None)
    # row i: the Jacobian of the gradient of input i (zeros where it is a constant)
    rows = [_jacobian_blocks(g, i, inputs, create_graph, strict, "hessian")
            for i, g in enumerate(gradients)]
    if not create_graph:
        rows = [[block.detach() for block in row] for row in rows]
    if not inputs_tuple:
        return rows[0][0]
    return tuple(tuple(row) for row in rows)


def vhp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T H) for a scalar `func`: the gradient of <grad func, v>. `v` has the
    inputs' shapes (it may be left out for a single input of one element)."""
    return _hessian_product(func, inputs, v, create_graph, strict, "vhp")


def hvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), H v) for a scalar `func`. Where func is twice continuously
    differentiable H is symmetric, so H v = (v^T H)^T, computed as vhp is (torch's takes one
    more backward pass, for the same numbers up to rounding)."""
    return _hessian_product(func, inputs, v, create_graph, strict, "hvp")


def _hessian_product(func, inputs, v, create_graph: bool, strict: bool, who: str):
    inputs_tuple, inputs = _as_tuple(inputs, "inputs", who)
    inputs = _prepared(inputs, create_graph)
    if v is None:
        if len(inputs) != 1 or inputs[0].numel() != 1:
            raise RuntimeError(f"{who}: the vector v can only be None if the input to the "
                               "user-provided function is a single Tensor with a single "
                               "element.")
        vs = (Tensor(get_array_module(inputs[0].array).ones_like(inputs[0].array)),)
    else:
        vs = _check_v(v, inputs, "inputs", who)
    out = _scalar_function(func, inputs, who)
    with enable_grad():
        gradients = _grads((out,), inputs, (None,), create_graph=True)
    pairs = [(g, vk) for g, vk in zip(gradients, vs) if g is not None and g.requires_grad]
    if pairs:
        products = grad([g for g, _ in pairs], inputs, grad_outputs=[vk for _, vk in pairs],
                        create_graph=create_graph, allow_unused=True)
    else:
        products = (None,) * len(inputs)
    products = _filled(products, inputs, strict, who, None)
    out, products = _finished((out,), create_graph)[0], _finished(products, create_graph)
    return out, products if inputs_tuple else products[0]
