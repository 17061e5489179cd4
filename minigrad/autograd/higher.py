"""Gradients of gradients: the recorded backward pass (create_graph=True).

A first-order backward hands each node's `backward` arrays; nothing it computes is recorded,
which is what makes it fast. To differentiate a gradient again, the backward pass must itself
build a graph, and `recorded_backward` runs one node's backward so that it does, in one of two
ways (which one is the op's choice, in its Function: autograd/__init__.py):

1. Its own formula, on Tensors (`twice_differentiable`). Exp's backward is `grad * out`: run
   with Tensors, that line is a Mul node of the new graph. Here `grad` is a Tensor and
   `ctx.saved_tensors` gives Tensors: a saved input or output is linked back into the graph
   (the saved output's node is this very node, so the second derivative of exp goes through
   exp again), a saved mask or index array is a constant, and any other saved float array is
   an error, since a gradient through it would be lost.
2. Its `formula` (ops too heavy to write so, and the fast paths): the op written again with
   ops of kind 1 (a batch norm as a mean, a variance and a division), applied to the node's
   own inputs and differentiated by a recorded pass of its own, which stops at those inputs.
   The heavy op's first-order backward stays what it was, fast; a second derivative pays for
   computing the formula once more.

Each input of a formula goes through an `Alias` node first, so that an input used twice
(conv2d(x, x)) still gets one gradient per use.
"""

from __future__ import annotations

import numpy as np

from minigrad.autograd import Context, Function, _run_backward, _vertex, version
from minigrad.backend import is_array


class Alias(Function):
    """The identity: one node per input of a formula (see above)."""

    twice_differentiable = True

    @staticmethod
    def forward(ctx, x):
        return x.view()  # another array object: its node's output is told apart from x

    @staticmethod
    def backward(ctx, grad):
        return grad


def recorded_backward(node: Context, grad):
    """The input gradients (Tensors, in a graph of their own) of `node` for the output
    gradient `grad` (a Tensor), by the op's own formula or by its `formula`."""
    function = node.function
    if function.reference is not None:  # a fast path: as its reference does
        if function.saves_as_reference and function.reference.twice_differentiable:
            return _by_own_formula(node, function.reference, grad)
    elif function.twice_differentiable:
        return _by_own_formula(node, function, grad)
    formula = _formula(function)
    if formula is None:
        raise RuntimeError(
            f"{function.__name__}: its backward works on arrays only, so it cannot be "
            "differentiated again (a backward pass with create_graph=True reached it). Mark "
            "the Function twice_differentiable if its backward's formula runs on Tensors too, "
            "or give it a formula (minigrad/autograd/higher.py)"
        )
    return _by_formula(node, formula, grad)


def _formula(function):
    """The formula a node of `function` is differentiated again through, or None."""
    if function.formula is not None:
        return function.formula
    reference = function.reference
    if reference is None:
        return None
    if getattr(reference, "formula", None) is not None:
        return reference.formula
    return reference.apply if getattr(reference, "twice_differentiable", False) else None


def _linked(array, parent):
    """A Tensor holding `array` whose gradient goes to `parent` (a node, a leaf, or None for
    an input that wants no gradient)."""
    from minigrad.tensor import Tensor

    if parent is None:
        return Tensor(array)
    if not isinstance(parent, Context):  # a leaf: itself
        return parent
    output = parent._output()
    if output is not None and output.array is array:
        return output
    linked = Tensor(array)
    linked.requires_grad, linked.grad_fn = True, parent
    return linked


def _holds(vertex, array) -> bool:
    """Whether `array` is the value of a graph vertex: a leaf's array, or a node's output."""
    if isinstance(vertex, Context):
        return (id(array) in (vertex._out_id, vertex._alias_id)
                and array.shape == vertex.output_shape and array.dtype == vertex.output_dtype)
    return vertex.array is array


def _by_own_formula(node: Context, function, grad):
    """Run `function.backward` on Tensors: grad, and the saved arrays as Tensors linked into
    the graph (inputs to their nodes, the output to this node)."""
    from minigrad.tensor import Tensor

    saved = node.saved_tensors  # (which checks the versions)
    untracked = any(parent is None for parent in node.parents)
    tensors = []
    for k, array in enumerate(saved):
        if isinstance(array, np.generic):  # NumPy's 0-d results are scalars
            array = np.asarray(array)
        if not is_array(array):  # None, or a number
            tensors.append(array)
            continue
        if _holds(node, array):
            tensors.append(_linked(array, node))
            continue
        parent = next((p for p in node.parents if p is not None and _holds(p, array)), None)
        if parent is not None:
            tensors.append(_linked(array, parent))
            continue
        # an input that wants no gradient is not told apart from other arrays (nothing of the
        # inputs is recorded, so that the first-order pass costs what it did): a constant
        if not untracked and array.dtype.kind not in "biu" and k not in function.constant_saves:
            raise RuntimeError(
                f"{function.__name__}: its backward reads a saved float array (saved array "
                f"{k}, shape {tuple(array.shape)}) that is neither an input nor the output, "
                "so a second derivative through it cannot be recorded; the op needs a "
                "formula (minigrad/autograd/higher.py)"
            )
        tensors.append(Tensor(array))  # a mask, indices, a constant input
    # saved_tensors gives the Tensors while this backward runs (their versions were checked)
    arrays, versions = node._saved, node._versions
    node._saved, node._versions = tuple(tensors), (None,) * len(tensors)
    try:
        return function.backward(node, grad)
    finally:
        node._saved, node._versions = arrays, versions


def _by_formula(node: Context, formula, grad):
    """Differentiate `formula` applied to the node's inputs, by a recorded pass that stops at
    them."""
    if node._inputs is None:
        raise RuntimeError(
            f"{node.function.__name__}: its inputs were freed by an earlier backward; pass "
            "retain_graph=True to go through the graph again"
        )
    for k, (array, before) in enumerate(zip(node._inputs, node._input_versions)):
        if version(array) != before:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: {node.function.__name__}Backward's input {k} (shape "
                f"{tuple(array.shape)}, dtype {array.dtype}) was changed in place "
                f"{version(array) - before} time(s) since; a second derivative recomputes the "
                "op from its inputs. Make that change out of place, or after backward()")
    inputs = [_linked(a, parent)
              for a, parent in zip(node._inputs, node.parents)]
    aliases = [Alias.apply(t) if t.requires_grad else t for t in inputs]
    out = formula(*aliases, **node._settings)
    wanted = {id(_vertex(t)): None for t in aliases if t.requires_grad}
    if not out.requires_grad:  # nothing in the formula depends on a wanted input
        return (None,) * len(aliases)
    _run_backward((out,), (grad,), True, wanted, create_graph=True, stop=wanted)
    return tuple(wanted[id(_vertex(t))] if t.requires_grad else None for t in aliases)
