"""Helpers for testing ops: compare one op with PyTorch, and with finite differences, in one call.

    from minigrad.testing import check_op
    check_op(lambda x, y: x * y, [np.ones((2, 3)), np.ones(3)])

`fn` receives minigrad Tensors; `torch_fn` (by default `fn` itself, since `x.sum(dim=1)` reads
the same in both) receives torch tensors made from the same arrays. torch is imported only
when a comparison with it is asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np

import minigrad as mg
from minigrad import autograd, backend
from minigrad.gradcheck import gradcheck, gradgradcheck


@contextlib.contextmanager
def strict_float32():
    """Convolutions and matmuls in strict float32 inside the block (TF32 off, as
    `mg.backends.cudnn.allow_tf32 = False` and precision "highest"), then as they were. The
    comparisons below run so: torch's CPU float32 and the reference Functions are strict, and
    TF32's 10-bit products would differ from them by ~1e-3. TF32 gets tests of its own."""
    conv, matmul = backend.conv_tf32(), backend.get_float32_matmul_precision()
    backend.set_conv_tf32(False)
    backend.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        backend.set_conv_tf32(conv)
        backend.set_float32_matmul_precision(matmul)


TOLERANCES = {  # (atol, rtol) for comparing with torch, by dtype
    np.dtype(np.float32): (1e-5, 1e-4),
    np.dtype(np.float64): (1e-10, 1e-8),
}


def _as_tuple(result) -> tuple:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def _wants_grad(arrays: Sequence[np.ndarray], requires_grad) -> list:
    if requires_grad is None:
        return [np.asarray(a).dtype.kind == "f" for a in arrays]
    if len(requires_grad) != len(arrays):
        raise ValueError(f"requires_grad has {len(requires_grad)} entries for {len(arrays)} inputs")
    return list(requires_grad)


def _cast(array: np.ndarray, dtype) -> np.ndarray:
    array = np.asarray(array)
    return array.astype(dtype) if array.dtype.kind == "f" else array


def _torch_dtype_as_numpy(torch_tensor) -> np.dtype:
    import torch

    return torch.empty(0, dtype=torch_tensor.dtype).numpy().dtype


@strict_float32()
def assert_matches_torch(
    fn: Callable,
    inputs: Sequence[np.ndarray],
    torch_fn: Callable | None = None,
    *,
    dtype=np.float32,
    device: str = "cpu",
    requires_grad: Sequence[bool] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    seed: int = 0,
) -> None:
    """Assert that `fn` on minigrad and `torch_fn` on torch agree on the same inputs.

    Floating inputs are cast to `dtype`. Checked: every output's shape, dtype and values; then,
    for one random upstream gradient per output, every input gradient's presence, shape, dtype
    and values; and that backward changed neither the inputs nor the upstream gradient, and
    returned gradients with their own memory.
    """
    import torch

    arrays = [_cast(a, dtype) for a in inputs]
    wants = _wants_grad(arrays, requires_grad)
    default_atol, default_rtol = TOLERANCES[np.dtype(dtype)]
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol

    ours_in = [mg.tensor(a, device=device, requires_grad=w) for a, w in zip(arrays, wants)]
    theirs_in = [torch.tensor(a, requires_grad=w) for a, w in zip(arrays, wants)]
    ours = _as_tuple(fn(*ours_in))
    theirs = _as_tuple((torch_fn or fn)(*theirs_in))
    assert len(ours) == len(theirs), f"minigrad gives {len(ours)} outputs, torch {len(theirs)}"

    for k, (a, b) in enumerate(zip(ours, theirs)):
        _assert_same(f"output {k}", a.numpy(), b.detach().numpy(), atol, rtol)
        assert a.device == device, f"output {k} is on {a.device}, expected {device}"
        assert a.requires_grad == b.requires_grad, (
            f"output {k}: requires_grad is {a.requires_grad}, in torch {b.requires_grad}"
        )

    differentiable = [k for k, b in enumerate(theirs) if b.requires_grad]
    if not differentiable:
        return
    rng = np.random.default_rng(seed)
    upstream = [rng.standard_normal(theirs[k].shape).astype(_torch_dtype_as_numpy(theirs[k]))
                for k in differentiable]
    upstream_before = [u.copy() for u in upstream]
    ours_upstream = [mg.tensor(u, device=device) for u in upstream]
    autograd.backward([ours[k] for k in differentiable], ours_upstream)
    torch.autograd.backward([theirs[k] for k in differentiable],
                            [torch.tensor(u) for u in upstream])

    for i, (a, b, array) in enumerate(zip(ours_in, theirs_in, arrays)):
        assert np.array_equal(a.numpy(), array, equal_nan=True), f"backward changed input {i}"
        if not wants[i]:
            continue
        if b.grad is None:
            assert a.grad is None, f"input {i}: minigrad has a gradient where torch has none"
            continue
        assert a.grad is not None, f"input {i}: minigrad computed no gradient, torch did"
        _assert_same(f"gradient of input {i}", a.grad.numpy(), b.grad.numpy(), atol, rtol)
        assert a.grad.device == device, f"gradient of input {i} is on {a.grad.device}"
        for k, u in enumerate(ours_upstream):
            assert not _shares_memory(a.grad.array, u.array), (
                f"the gradient of input {i} shares memory with upstream gradient {k}"
            )
        assert not _shares_memory(a.grad.array, a.array), f"input {i}'s gradient is its own data"
    for k, (u, before) in enumerate(zip(ours_upstream, upstream_before)):
        assert np.array_equal(u.numpy(), before), f"backward changed upstream gradient {k}"


def _shares_memory(a, b) -> bool:
    """Whether the memory ranges of two arrays (numpy or cupy) overlap.

    Compared by address range rather than with `shares_memory`, whose exact mode in CuPy 14.2
    answers True for any two distinct 0-d arrays. Overlapping ranges with interleaved
    elements count as shared: a gradient should not even be near its input."""
    return _overlap(_memory_range(a), _memory_range(b))


def _memory_range(array) -> tuple[int, int]:
    """[first byte, one past the last byte] that `array` can address; empty for size 0."""
    if array.size == 0:
        return (0, 0)
    address = (array.__array_interface__["data"][0] if isinstance(array, np.ndarray)
               else array.data.ptr)
    low = high = address
    for length, stride in zip(array.shape, array.strides):
        reach = (length - 1) * stride
        low, high = (low + reach, high) if reach < 0 else (low, high + reach)
    return (low, high + array.itemsize)


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < a[1] and b[0] < b[1] and a[0] < b[1] and b[0] < a[1]


def _assert_same(what: str, ours: np.ndarray, theirs: np.ndarray, atol: float, rtol: float,
                 ours_name: str = "minigrad", theirs_name: str = "torch"):
    assert ours.shape == theirs.shape, (
        f"{what}: shape {ours.shape}, {theirs_name} gives {theirs.shape}")
    assert ours.dtype == theirs.dtype, (
        f"{what}: dtype {ours.dtype}, {theirs_name} gives {theirs.dtype}")
    if ours.dtype.kind in "biu":
        assert np.array_equal(ours, theirs), f"{what}: values differ from {theirs_name}'s"
        return
    close = np.isclose(ours, theirs, atol=atol, rtol=rtol, equal_nan=True)
    if not close.all():
        worst = np.unravel_index(np.argmax(np.abs(ours - theirs) * ~close), ours.shape)
        raise AssertionError(
            f"{what}: {(~close).sum()} of {ours.size} values differ from {theirs_name}'s; at "
            f"index {tuple(int(i) for i in worst)} {ours_name} gives {ours[worst]!r}, "
            f"{theirs_name} {theirs[worst]!r} (atol={atol}, rtol={rtol})"
        )


@strict_float32()
def assert_functions_agree(
    fast,
    reference,
    inputs: Sequence[np.ndarray],
    *,
    dtype=np.float64,
    device: str = "cpu",
    requires_grad: Sequence[bool] | None = None,
    atol: float = 1e-10,
    rtol: float = 1e-9,
    seed: int = 0,
    **settings,
) -> None:
    """Assert that two Functions compute the same op: a fast path and its reference.

    Both are applied to the same inputs (floating ones cast to `dtype`, on `device`) with the
    same settings; the outputs and, for one random upstream gradient, every input gradient
    must agree in shape, dtype and value, and the fast output must be on `device`."""
    arrays = [_cast(a, dtype) for a in inputs]
    wants = _wants_grad(arrays, requires_grad)
    runs = []
    for function in (fast, reference):
        tensors = [mg.tensor(a, device=device, requires_grad=w) for a, w in zip(arrays, wants)]
        out = function.apply(*tensors, **settings)
        upstream = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
        if out.requires_grad:
            out.backward(mg.tensor(upstream, device=device))
        runs.append((out, tensors))
    (out, tensors), (ref_out, ref_tensors) = runs
    names = (fast.__name__, reference.__name__)
    assert out.device == device, f"{names[0]}: output on {out.device}, expected {device}"
    _assert_same("output", out.numpy(), ref_out.numpy(), atol, rtol, *names)
    for i, (a, b) in enumerate(zip(tensors, ref_tensors)):
        if (a.grad is None) != (b.grad is None):
            raise AssertionError(f"gradient of input {i}: {names[0]} gives "
                                 f"{'none' if a.grad is None else 'one'}, {names[1]} "
                                 f"{'none' if b.grad is None else 'one'}")
        if a.grad is not None:
            _assert_same(f"gradient of input {i}", a.grad.numpy(), b.grad.numpy(), atol, rtol,
                         *names)


def check_gradient(
    fn: Callable,
    inputs: Sequence[np.ndarray],
    *,
    device: str = "cpu",
    requires_grad: Sequence[bool] | None = None,
    seed: int = 0,
    **tolerances,
) -> None:
    """`gradcheck` of `fn` on float64 copies of the arrays `inputs` (floating ones get grads)."""
    arrays = [_cast(a, np.float64) for a in inputs]
    wants = _wants_grad(arrays, requires_grad)
    tensors = [mg.tensor(a, device=device, requires_grad=w) for a, w in zip(arrays, wants)]
    gradcheck(fn, tensors, seed=seed, **tolerances)


def check_second_gradient(
    fn: Callable,
    inputs: Sequence[np.ndarray],
    *,
    device: str = "cpu",
    requires_grad: Sequence[bool] | None = None,
    seed: int = 0,
    **tolerances,
) -> None:
    """`gradgradcheck` of `fn` on float64 copies of the arrays `inputs`."""
    arrays = [_cast(a, np.float64) for a in inputs]
    wants = _wants_grad(arrays, requires_grad)
    tensors = [mg.tensor(a, device=device, requires_grad=w) for a, w in zip(arrays, wants)]
    gradgradcheck(fn, tensors, seed=seed, **tolerances)


@strict_float32()
def assert_double_backward_matches_torch(
    fn: Callable,
    inputs: Sequence[np.ndarray],
    torch_fn: Callable | None = None,
    *,
    dtype=np.float64,
    device: str = "cpu",
    requires_grad: Sequence[bool] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    seed: int = 0,
) -> None:
    """Assert that `fn`'s second derivatives agree with torch's double backward.

    With random output gradients u (which require a gradient), the first gradients g_i of
    every input are computed with create_graph=True by both; then, for random v_i, the
    gradients of sum_i <g_i, v_i> with respect to every input and every u: Hessian-vector
    products, and the derivative of the backward in its output gradient. A gradient one side
    does not compute (None: it does not depend on that input) must be zeros on the other.
    """
    import torch

    arrays = [_cast(a, dtype) for a in inputs]
    wants = _wants_grad(arrays, requires_grad)
    default_atol, default_rtol = TOLERANCES[np.dtype(dtype)]
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol
    rng = np.random.default_rng(seed)
    ours_in = [mg.tensor(a, device=device, requires_grad=w) for a, w in zip(arrays, wants)]
    theirs_in = [torch.tensor(a, requires_grad=w) for a, w in zip(arrays, wants)]
    theirs = [t for t in _as_tuple((torch_fn or fn)(*theirs_in)) if t.requires_grad]
    ours = [t for t in _as_tuple(fn(*ours_in)) if t.requires_grad]
    assert len(ours) == len(theirs), (f"minigrad has {len(ours)} differentiable outputs, torch "
                                      f"{len(theirs)}")
    upstream = [rng.standard_normal(t.shape).astype(_torch_dtype_as_numpy(t)) for t in theirs]
    ours_u = [mg.tensor(u, device=device, requires_grad=True) for u in upstream]
    theirs_u = [torch.tensor(u, requires_grad=True) for u in upstream]
    targets = [k for k, w in enumerate(wants) if w]
    ours_g = autograd.grad(ours, [ours_in[k] for k in targets], ours_u, create_graph=True,
                           allow_unused=True)
    theirs_g = torch.autograd.grad(theirs, [theirs_in[k] for k in targets], theirs_u,
                                   create_graph=True, allow_unused=True)
    for k, a, b in zip(targets, ours_g, theirs_g):
        _assert_same_or_zero(f"gradient of input {k}", a, b, atol, rtol)

    vs = [rng.standard_normal(ours_in[k].shape).astype(arrays[k].dtype) for k in targets]
    ours_terms = [(g * mg.tensor(v, device=device)).sum() for g, v in zip(ours_g, vs)
                  if g is not None and g.requires_grad]
    theirs_terms = [(g * torch.tensor(v)).sum() for g, v in zip(theirs_g, vs)
                    if g is not None and g.requires_grad]
    wrt_ours = [ours_in[k] for k in targets] + ours_u
    wrt_theirs = [theirs_in[k] for k in targets] + theirs_u
    names = [f"input {k}" for k in targets] + [f"output gradient {k}" for k in range(len(ours_u))]
    ours_h = (autograd.grad(sum(ours_terms[1:], ours_terms[0]), wrt_ours, allow_unused=True)
              if ours_terms else [None] * len(wrt_ours))
    theirs_h = (torch.autograd.grad(sum(theirs_terms), wrt_theirs, allow_unused=True)
                if theirs_terms else [None] * len(wrt_theirs))
    for name, a, b in zip(names, ours_h, theirs_h):
        _assert_same_or_zero(f"second derivative, with respect to {name},", a, b, atol, rtol)


def _assert_same_or_zero(what: str, ours, theirs, atol: float, rtol: float) -> None:
    """Two gradients (a minigrad Tensor and a torch tensor), where None stands for zeros."""
    if theirs is not None and theirs._is_zerotensor():  # torch's zeros that hold no memory
        theirs = None
    if ours is None and theirs is None:
        return
    ours = None if ours is None else ours.numpy()
    theirs = None if theirs is None else theirs.detach().numpy()
    _assert_same(what, np.zeros_like(theirs) if ours is None else ours,
                 np.zeros_like(ours) if theirs is None else theirs, atol, rtol)


def check_op(
    fn: Callable,
    inputs: Sequence[np.ndarray],
    torch_fn: Callable | None = None,
    *,
    devices: Sequence[str] = ("cpu",),
    dtypes: Sequence = (np.float32, np.float64),
    requires_grad: Sequence[bool] | None = None,
    double_backward: bool = False,
    seed: int = 0,
) -> None:
    """Finite differences (float64) and torch (each of `dtypes`) on each device, in one call.
    With double_backward=True, the second derivatives too: gradgradcheck (float64) and torch's
    double backward (each of `dtypes`)."""
    for device in devices:
        check_gradient(fn, inputs, device=device, requires_grad=requires_grad, seed=seed)
        for dtype in dtypes:
            assert_matches_torch(fn, inputs, torch_fn, dtype=dtype, device=device,
                                 requires_grad=requires_grad, seed=seed)
        if double_backward:
            check_second_gradient(fn, inputs, device=device, requires_grad=requires_grad,
                                  seed=seed)
            for dtype in dtypes:
                assert_double_backward_matches_torch(fn, inputs, torch_fn, dtype=dtype,
                                                     device=device, requires_grad=requires_grad,
                                                     seed=seed)


@strict_float32()
def assert_module_matches_torch(
    module,
    torch_module,
    inputs: Sequence[np.ndarray],
    *,
    dtype=np.float32,
    device: str = "cpu",
    training: bool = True,
    atol: float | None = None,
    rtol: float | None = None,
    seed: int = 0,
) -> None:
    """Assert that a minigrad module equals a torch module given the same weights.

    torch_module's state_dict is loaded into `module` (so the names and shapes must agree);
    both run in the same mode on the same inputs; then the outputs, the gradients of the
    inputs and of every parameter (by name, for a random upstream gradient), and every
    buffer afterwards (running statistics) are compared.
    """
    import torch

    torch_dtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    torch_module = torch_module.to(torch_dtype).train(training)
    module.to(dtype)
    module.load_state_dict({k: v.detach().numpy() for k, v in torch_module.state_dict().items()})
    module.to(device).train(training)
    default_atol, default_rtol = TOLERANCES[np.dtype(dtype)]
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol

    arrays = [_cast(a, dtype) for a in inputs]
    wants = _wants_grad(arrays, None)
    ours_in = [mg.tensor(a, device=device, requires_grad=w) for a, w in zip(arrays, wants)]
    theirs_in = [torch.tensor(a, requires_grad=w) for a, w in zip(arrays, wants)]
    ours, theirs = module(*ours_in), torch_module(*theirs_in)
    _assert_same("output", ours.numpy(), theirs.detach().numpy(), atol, rtol)

    upstream = np.random.default_rng(seed).standard_normal(theirs.shape).astype(dtype)
    ours.backward(mg.tensor(upstream, device=device))
    theirs.backward(torch.tensor(upstream))
    for i, (a, b) in enumerate(zip(ours_in, theirs_in)):
        if wants[i]:
            _assert_same(f"gradient of input {i}", a.grad.numpy(), b.grad.numpy(), atol, rtol)
    own = dict(module.named_parameters())
    for name, param in torch_module.named_parameters():
        assert name in own, f"torch has parameter {name}, minigrad does not"
        if param.grad is None:
            assert own[name].grad is None, f"{name}: minigrad has a gradient, torch has none"
            continue
        assert own[name].grad is not None, f"{name}: torch has a gradient, minigrad has none"
        _assert_same(f"gradient of {name}", own[name].grad.numpy(), param.grad.numpy(), atol,
                     rtol)
    state = module.state_dict()
    for name, buffer in torch_module.named_buffers():
        _assert_same(f"buffer {name}", np.asarray(state[name]), buffer.numpy(), atol, rtol)
