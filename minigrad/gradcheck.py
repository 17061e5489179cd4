"""Gradient checking: does an op's `backward()` agree with central finite differences?

For a function f with inputs x and a random upstream gradient v (not all ones, which would
hide errors that cancel), the scalar L(x) = sum_k <v_k, f_k(x)> has the gradient that
`backward(v)` computes. Central differences estimate it without any backward code:

    dL/dx_j ~ (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)      error O(eps^2)

in float64, where eps = 1e-6 leaves about 10 correct digits. For large inputs, the fast mode
checks one random direction u per input instead of every element (as PyTorch's fast mode):
the directional derivative (L(x + eps u) - L(x - eps u)) / (2 eps) against <dL/dx, u>.

`gradgradcheck` checks second derivatives the same way, as PyTorch's does: the first
gradients, computed with create_graph=True for random output gradients v (which require a
gradient too), are themselves a function of (x, v), and gradcheck checks that function's
backward, a recorded backward pass, against central differences of the first gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from minigrad import autograd, backend
from minigrad.backend import get_array_module
from minigrad.tensor import Tensor


class GradcheckError(RuntimeError):
    """A backward disagrees with finite differences (or misbehaves while computing)."""


def gradcheck(
    fn: Callable,
    inputs,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    *,
    raise_exception: bool = True,
    fast_mode: bool = False,
    seed: int = 0,
) -> bool:
    """Check the gradients of `fn` at `inputs` against central differences in float64.

    `inputs` is a Tensor or a sequence of Tensors (and other arguments, passed through);
    floating tensors with `requires_grad=True` are checked, after being copied to float64.
    Returns True, or raises GradcheckError naming the input, the worst index and both values
    (returns False instead with raise_exception=False). A gradient passes where
    |analytical - numerical| <= atol + rtol * |numerical|.
    """
    try:
        return _gradcheck(fn, inputs, eps, atol, rtol, fast_mode, seed)
    except GradcheckError:
        if raise_exception:
            raise
        return False


def gradgradcheck(
    func: Callable,
    inputs,
    grad_outputs=None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    gen_non_contig_grad_outputs: bool = False,
    raise_exception: bool = True,
    fast_mode: bool = False,
    seed: int = 0,
) -> bool:
    """torch.autograd.gradgradcheck: check the second derivatives of `func` at `inputs`
    against central differences of its first derivatives, in float64.

    `grad_outputs` (one Tensor per output) are the output gradients of the first backward;
    by default random (seeded by `seed`). They are differentiated too: the second pass checks
    the derivatives with respect to the inputs and to these. `gen_non_contig_grad_outputs`
    is accepted as torch's; minigrad's gradients carry no layout of their own to test.
    """
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    inputs = tuple(_float64_copy(x, i) if isinstance(x, Tensor) else x
                   for i, x in enumerate(inputs))
    differentiable = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not differentiable:
        raise ValueError("gradgradcheck: no input tensor has requires_grad=True")
    outputs = _outputs(func(*inputs))
    used = [k for k, out in enumerate(outputs) if out.requires_grad]  # the differentiable ones
    if not used:
        raise GradcheckError("gradgradcheck: no output depends on an input that requires grad")
    if grad_outputs is None:
        rng = np.random.default_rng(seed)
        grad_outputs = [_random_like(outputs[k], rng) for k in used]
    else:
        grad_outputs = [grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs)
        if len(grad_outputs) != len(used):
            raise ValueError(f"gradgradcheck: {len(grad_outputs)} grad_outputs for "
                             f"{len(used)} differentiable outputs")
    grad_outputs = [_float64_copy(g, k).requires_grad_() for k, g in enumerate(grad_outputs)]
    n = len(inputs)

    def first_gradients(*values):
        xs, vs = values[:n], values[n:]
        with autograd.enable_grad():
            outs = _outputs(func(*xs))
            grads = autograd.grad([outs[k] for k in used], [xs[i] for i in differentiable],
                                  vs, create_graph=True, allow_unused=True)
        found = [g for g in grads if g is not None]
        if not found:
            raise GradcheckError("gradgradcheck: no input's gradient was computed")
        return tuple(found)

    return gradcheck(first_gradients, (*inputs, *grad_outputs), eps, atol, rtol,
                     raise_exception=raise_exception, fast_mode=fast_mode, seed=seed)


def _gradcheck(fn, inputs, eps, atol, rtol, fast_mode, seed) -> bool:
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    inputs = tuple(
        _float64_copy(x, i) if isinstance(x, Tensor) else x for i, x in enumerate(inputs)
    )
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input tensor has requires_grad=True")

    outputs = _outputs(fn(*inputs))
    kept = [k for k, out in enumerate(outputs) if out.requires_grad]
    if not kept:
        raise GradcheckError("gradcheck: no output depends on an input that requires grad")
    outputs = [outputs[k] for k in kept]
    rng = np.random.default_rng(seed)
    upstream = [_random_like(out, rng) for out in outputs]

    snapshot = [inputs[i].numpy() for i in checked], [g.numpy() for g in upstream]
    autograd.backward(outputs, upstream)
    _check_unchanged("input", [inputs[i] for i in checked], snapshot[0])
    _check_unchanged("upstream gradient", upstream, snapshot[1])
    analytical = [_grad_array(inputs[i]) for i in checked]

    def objective() -> float:
        with autograd.no_grad():
            results = _outputs(fn(*inputs))
        return sum(float((results[k].array * v.array).sum()) for k, v in zip(kept, upstream))

    for i, grad in zip(checked, analytical):
        x = inputs[i].array
        if fast_mode:
            _check_direction(objective, x, grad, i, eps, atol, rtol, rng)
        else:
            _check_elements(objective, x, grad, i, eps, atol, rtol)
    return True


def _float64_copy(x: Tensor, position: int) -> Tensor:
    if x.requires_grad and not backend.is_floating(x.dtype):
        raise ValueError(f"gradcheck: input {position} requires grad but has dtype {x.dtype}")
    if not backend.is_floating(x.dtype):
        return x
    copy = Tensor(x.array.astype(backend.float64, order="C", copy=True))  # C: see below
    return copy.requires_grad_(x.requires_grad)


def _outputs(result) -> list:
    outputs = [result] if isinstance(result, Tensor) else list(result)
    for k, out in enumerate(outputs):
        if not isinstance(out, Tensor):
            raise GradcheckError(f"gradcheck: output {k} is a {type(out).__name__}, not a Tensor")
    return outputs


def _random_like(out: Tensor, rng: np.random.Generator) -> Tensor:
    values = rng.standard_normal(out.shape).astype(out.dtype)
    return Tensor(backend.to_device(values, out.device))


def _grad_array(x: Tensor):
    """The gradient backward left in `x.grad` (zeros where the output does not depend on x)."""
    if x.grad is None:
        return np.zeros(x.shape)
    if x.grad.shape != x.shape or x.grad.dtype != x.dtype:
        raise GradcheckError(
            f"gradcheck: the gradient has shape {x.grad.shape} and dtype {x.grad.dtype}, "
            f"but its input has shape {x.shape} and dtype {x.dtype}"
        )
    return x.grad.numpy()


def _check_unchanged(what: str, tensors: Sequence[Tensor], before: Sequence[np.ndarray]) -> None:
    for k, (t, old) in enumerate(zip(tensors, before)):
        if not np.array_equal(t.numpy(), old, equal_nan=True):
            raise GradcheckError(f"gradcheck: backward changed {what} {k} in place")


def _check_elements(objective, x, analytical, position, eps, atol, rtol) -> None:
    """Central differences for every element of input `position` (x is perturbed in place
    and restored)."""
    flat = x.reshape(-1)  # a view: x is a fresh contiguous float64 copy
    numerical = np.empty(flat.size)
    for j in range(flat.size):
        original = flat[j].item()
        flat[j] = original + eps
        plus = objective()
        flat[j] = original - eps
        minus = objective()
        flat[j] = original
        numerical[j] = (plus - minus) / (2 * eps)
    numerical = numerical.reshape(x.shape)
    excess = np.abs(analytical - numerical) - (atol + rtol * np.abs(numerical))
    if excess.size and (excess.max() > 0 or not np.isfinite(excess).all()):
        excess = np.where(np.isfinite(excess), excess, np.inf)  # a nan gradient is the worst
        worst = np.unravel_index(np.argmax(excess), x.shape)
        raise GradcheckError(
            f"gradcheck: the gradient of input {position} (shape {tuple(x.shape)}) is wrong at "
            f"index {tuple(int(k) for k in worst)}: backward gives {analytical[worst]!r}, "
            f"central differences give {numerical[worst]!r} (atol={atol}, rtol={rtol})"
        )


def _check_direction(objective, x, analytical, position, eps, atol, rtol, rng) -> None:
    """The directional derivative along one random unit vector u, against <grad, u>."""
    xp = get_array_module(x)
    u = rng.standard_normal(x.shape)
    u /= np.linalg.norm(u) or 1.0
    u_device = backend.to_device(u, backend.device_of(x))
    original = xp.array(x, copy=True)
    x += eps * u_device
    plus = objective()
    x[...] = original - eps * u_device
    minus = objective()
    x[...] = original
    numerical = (plus - minus) / (2 * eps)
    projected = float((analytical * u).sum())
    if not abs(projected - numerical) <= atol + rtol * abs(numerical):
        raise GradcheckError(
            f"gradcheck (fast mode): the gradient of input {position} (shape {tuple(x.shape)}) "
            f"is wrong along a random direction: backward gives {projected!r}, central "
            f"differences give {numerical!r} (atol={atol}, rtol={rtol}); run with "
            "fast_mode=False to find the element"
        )
