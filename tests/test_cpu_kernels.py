"""The compiled CPU kernels (minigrad/kernels/cpu.py) and the fast paths built on them
(ops/fast/cpu_activation.py, cpu_norm.py, cpu_embedding.py): each against its reference
Function (the fast paths off), values and gradients for random shapes and upstream gradients,
against torch, on the values where float arithmetic is delicate (NaN, infinities, saturation,
denormals), and with the kernels off, where the NumPy code must run on its own.

Without Numba the fast paths step aside (a test says so) and the comparisons are skipped:
the test extra installs it.
"""

from __future__ import annotations

import math
import threading
from unittest import mock

import numpy as np
import pytest
from helpers import kernel_threads, requires_torch, rngs, torch
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.nn.functional as F
from minigrad.kernels import cpu as kernels
from minigrad.ops import activation, fast, upsample
from minigrad.ops import normalization as norm
from minigrad.ops.fast import cpu_activation, cpu_embedding, cpu_norm

needs_numba = pytest.mark.skipif(kernels.numba is None, reason="Numba is not installed")
pytestmark = needs_numba


def _run(fn, arrays, requires_grad, fast_on: bool, seed: int = 1):
    """fn(*tensors) with the fast paths on or off: (output, gradients, the output's node)."""
    fast.enable(fast_on)
    try:
        tensors = [mg.tensor(a, requires_grad=r) for a, r in zip(arrays, requires_grad)]
        out = fn(*tensors)
        upstream = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
        out.backward(mg.tensor(upstream))
        return out.numpy(), [t.grad.numpy() if r else None for t, r in
                             zip(tensors, requires_grad)], out.grad_fn
    finally:
        fast.enable(True)


def assert_fast_path_agrees(fn, arrays, fast_function, requires_grad=None, atol=2e-5, rtol=1e-4,
                            float32_floor=False):
    """fn through the fast path (checked to have run) against fn through the references, on
    the same values in float64: the kernels sum in float64, and where an op is ill-conditioned
    (a row of two close values) the float32 reference is the one that rounds.

    float32_floor: for a kernel whose elementwise arithmetic is float32 (the norms'
    backward), each gradient may also be off the float64 one by up to 4x what the float32
    reference is off on this input (a group of two close values: 1/std large, the gradient a
    difference of nearly equal terms, 5e-5 relative in torch's float32 too)."""
    requires_grad = requires_grad or [True] * len(arrays)
    with mock.patch.object(fast_function, "forward", wraps=fast_function.forward) as forward:
        out, grads, _ = _run(fn, arrays, requires_grad, True)
    assert forward.called, f"{fast_function.__name__} did not run"
    ref_out, ref_grads, _ = _run(fn, [a.astype(np.float64) for a in arrays], requires_grad,
                                 False)
    floors = [0.0] * len(arrays)
    if float32_floor:
        _, grads32, _ = _run(fn, arrays, requires_grad, False)
        floors = [0.0 if ref is None else 4 * float(np.nanmax(np.abs(g32 - ref), initial=0))
                  for g32, ref in zip(grads32, ref_grads)]
    np.testing.assert_allclose(out, ref_out, atol=atol, rtol=rtol, equal_nan=True)
    for k, (g, ref) in enumerate(zip(grads, ref_grads)):
        if ref is not None:
            assert g.dtype == arrays[k].dtype and g.shape == ref.shape, k
            np.testing.assert_allclose(g, ref, atol=max(atol, floors[k]), rtol=rtol,
                                       equal_nan=True, err_msg=f"gradient of input {k}")


def f32(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the scalar functions inside the kernels


def _elementwise(helper):
    numba = kernels.numba

    @numba.njit
    def apply(x, out):
        for i in range(x.size):
            out[i] = helper(x[i])

    def run(x):
        out = np.empty_like(x)
        apply(x, out)
        return out

    return run


@pytest.mark.parametrize("name, exact, dtype, bound", [
    ("tanh32", math.tanh, np.float32, 5e-7),  # in float32 arithmetic: a few of its roundings
    ("erf32", math.erf, np.float32, 5e-7),
])
def test_rational_tanh_and_erf_are_within_float32_rounding(name, exact, dtype, bound):
    x = np.concatenate([np.linspace(-12, 12, 200_001), [0.0, -0.0, 1e-300, -1e-300, 4.0, 9.0,
                                                        1e30, -1e30]]).astype(dtype)
    got = _elementwise(getattr(kernels, name))(x)
    assert got.dtype == dtype
    expected = np.array([exact(v) for v in x.astype(np.float64)])
    assert np.abs(got - expected).max() < bound
    small = (np.abs(x) < 0.5) & (x != 0)  # and relatively exact near 0
    assert (np.abs(got - expected)[small] / np.abs(expected[small])).max() < 4 * bound
    assert np.abs(got).max() <= 1.0  # never outside [-1, 1]
    special = _elementwise(getattr(kernels, name))(np.array([np.nan, np.inf, -np.inf], dtype))
    assert np.isnan(special[0]) and special[1] == 1.0 and special[2] == -1.0


def test_float32_exp_of_nonpositive_numbers_is_within_two_units_in_the_last_place():
    y = np.concatenate([np.linspace(-87, 0, 200_001), [-1e-30, -0.0, -1e-45, -86.99]])
    y = y.astype(np.float32)
    got = _elementwise(kernels.exp32_nonpositive)(y)
    assert got.dtype == np.float32
    exact = np.exp(y.astype(np.float64))
    # float32's unit in the last place is 6e-8 to 1.2e-7 of the value
    assert np.max(np.abs(got - exact) / exact) < 3e-7
    far = _elementwise(kernels.exp32_nonpositive)(np.float32([-88.0, -1e4, -np.inf, np.nan]))
    assert far[0] == 0 and far[1] == 0 and far[2] == 0 and np.isnan(far[3])


def test_fmax_passes_over_nan_as_a_row_maximum_needs():
    numba = kernels.numba

    @numba.njit
    def row_max(x):
        top = np.float32(-np.inf)
        for v in x:
            top = kernels.fmax(top, v)
        return top

    assert row_max(np.float32([1, np.nan, 3, -2])) == 3
    assert row_max(np.float32([np.nan, np.nan])) == -np.inf
    assert row_max(np.float32([-np.inf, np.inf])) == np.inf
    rng = np.random.default_rng(3)
    x = rng.standard_normal(1001).astype(np.float32)
    assert row_max(x) == x.max()


@pytest.mark.parametrize("name, dtype, bound", [("sigmoid32", np.float32, 4e-7)])
def test_sigmoid_is_relatively_exact_on_both_sides(name, dtype, bound):
    x = np.linspace(-80, 80, 100_001).astype(dtype)
    got = _elementwise(getattr(kernels, name))(x)
    assert got.dtype == dtype
    x = x.astype(np.float64)
    expected = 1 / (1 + np.exp(-x))
    assert np.max(np.abs(got - expected) / expected) < bound
    special = _elementwise(getattr(kernels, name))(np.array([np.nan, np.inf, -np.inf], dtype))
    assert np.isnan(special[0]) and special[1] == 1 and special[2] == 0


# ---------------------------------------------------------------------------------------------
# the kernels' threads


@given(total=st.integers(0, 50), multiple=st.integers(1, 4), threads=st.integers(1, 5))
def test_parts_cut_a_range_into_a_part_per_thread(total, multiple, threads):
    before = kernels.get_num_threads()
    kernels.set_num_threads(threads)
    try:
        ranges = kernels.parts(total, multiple)
    finally:
        kernels.set_num_threads(before)
    assert len(ranges) <= threads
    starts = [0] + [z for _, z in ranges[:-1]]
    assert [a for a, _ in ranges] == starts[:len(ranges)]  # contiguous, in order
    assert (ranges[-1][1] if ranges else 0) == total
    assert all(a < z for a, z in ranges)
    assert all((z - a) % multiple == 0 for a, z in ranges[:-1])
    if total >= threads * multiple:  # as many parts as threads, none much larger than another
        assert len(ranges) == threads
        sizes = [z - a for a, z in ranges]
        assert max(sizes) - min(sizes) <= 2 * multiple


@given(work=st.integers(0, 10**9), threads=st.integers(1, 5))
def test_parts_give_each_thread_enough_work(work, threads):
    before = kernels.get_num_threads()
    kernels.set_num_threads(threads)
    try:
        ranges = kernels.parts(64, 2, work=work)
    finally:
        kernels.set_num_threads(before)
    assert ranges[-1][1] == 64
    assert len(ranges) == max(1, min(threads, work // kernels.MIN_WORK_PER_THREAD))


@pytest.mark.parametrize("total, multiple, work, expected", [
    (6, 2, 30e6, [(0, 6)]),  # 3 pairs over 2 threads would save only 10 M: not split
    (6, 2, 60e6, [(0, 2), (2, 6)]),  # saves 20 M
    (16, 2, 30.7e6, [(0, 8), (8, 16)]),  # halves: saves 15.35 M
    (3, 1, 1e12, [(0, 1), (1, 2), (2, 3)]),
])
def test_parts_split_only_where_the_split_saves_enough_work(total, multiple, work, expected):
    with kernel_threads(3 if total == 3 else 2):
        kernels.MIN_WORK_PER_THREAD = 15_000_000
        assert kernels.parts(total, multiple, work=work) == expected


def test_run_split_runs_every_job_and_raises_an_error_of_one():
    seen = []
    lock = threading.Lock()

    def job(k):
        with lock:
            seen.append((k, threading.current_thread().name))

    before = kernels.get_num_threads()
    kernels.set_num_threads(3)
    try:
        kernels.run_split(job, [])
        assert seen == []
        kernels.run_split(job, [(0,), (1,), (2,)])
        assert sorted(k for k, _ in seen) == [0, 1, 2]
        assert dict(seen)[0] == threading.current_thread().name  # the first on this thread

        def failing(k):
            if k == 2:
                raise ValueError("job 2 failed")

        with pytest.raises(ValueError, match="job 2 failed"):
            kernels.run_split(failing, [(0,), (1,), (2,)])
    finally:
        kernels.set_num_threads(before)


def _blas_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
            if lib["user_api"] == "blas"]


def test_run_split_blas_holds_blas_to_one_thread_per_job_and_gives_its_threads_back():
    before_blas = _blas_threads()
    assert before_blas, "NumPy's BLAS is not visible to threadpoolctl"
    seen = {}
    lock = threading.Lock()

    def job(lo, hi):
        a = np.ones((hi - lo, 8), dtype=np.float32)
        with lock:
            seen[lo] = (_blas_threads(), float((a @ a.T).sum()))

    before = kernels.get_num_threads()
    kernels.set_num_threads(2)
    try:
        kernels.run_split_blas(job, [(0, 3), (3, 5)])
    finally:
        kernels.set_num_threads(before)
    assert seen == {0: ([1] * len(before_blas), 72.0), 3: ([1] * len(before_blas), 32.0)}
    assert _blas_threads() == before_blas


def test_blas_parts_is_one_range_without_threadpoolctl(monkeypatch):
    with kernel_threads(2):
        assert kernels.blas_parts(10, work=1e9) == [(0, 5), (5, 10)]
        monkeypatch.setattr(kernels, "threadpoolctl", None)
        assert kernels.blas_parts(10, work=1e9) == [(0, 10)]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_takes_a_positive_int(bad):
    with pytest.raises(ValueError, match="set_num_threads"):
        kernels.set_num_threads(bad)


@pytest.mark.parametrize("first, env, expected", [
    ("import minigrad", None, "14"),  # minigrad first: OpenBLAS's idle threads sleep at once
    ("import minigrad", "20", "20"),  # the user's setting is kept
    ("import numpy; import minigrad", None, None),  # too late: OpenBLAS has read it
])
def test_minigrad_imported_first_keeps_openblas_threads_from_spinning(first, env, expected):
    import os
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if env is not None:
        environ["OPENBLAS_THREAD_TIMEOUT"] = env
    code = f"{first}; import os; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"
    result = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == str(expected)


# ---------------------------------------------------------------------------------------------
# activations


@given(rng=rngs(), shape=st.lists(st.integers(1, 5), min_size=0, max_size=4),
       approximate=st.sampled_from(["none", "tanh"]))
def test_gelu_fast_path_matches_the_reference(rng, shape, approximate):
    assert_fast_path_agrees(lambda x: F.gelu(x, approximate=approximate),
                            [f32(rng, shape, 3)], cpu_activation.GELUCPU)


@given(rng=rngs(), shape=st.lists(st.integers(1, 5), min_size=0, max_size=4))
def test_silu_fast_path_matches_the_reference(rng, shape):
    assert_fast_path_agrees(F.silu, [f32(rng, shape, 3)], cpu_activation.SiLUCPU)


@given(rng=rngs(), shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), data=st.data(),
       log=st.booleans(), threads=st.sampled_from([1, 2, 3]))
def test_softmax_fast_paths_match_the_reference(rng, shape, data, log, threads):
    """Its rows on 1, 2 or 3 threads."""
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    fn, function = ((F.log_softmax, cpu_activation.LogSoftmaxCPU) if log else
                    (F.softmax, cpu_activation.SoftmaxCPU))
    with kernel_threads(threads):
        assert_fast_path_agrees(lambda x: fn(x, dim), [f32(rng, shape, 4)], function)


@given(rng=rngs(), shape=st.lists(st.integers(1, 5), min_size=0, max_size=4),
       after_conv=st.booleans())
def test_relu_fast_path_matches_the_reference(rng, shape, after_conv):
    def fn(x):
        if after_conv:  # the batch-innermost layout the CPU conv hands out
            x = F.conv2d(x.reshape(1, 1, 1, -1), mg.tensor(np.ones((2, 1, 1, 1), x.numpy().dtype)))
        return F.relu(x)

    x = f32(rng, shape)
    x.reshape(-1)[::3] = 0  # the kink: no gradient at 0, as the reference
    assert_fast_path_agrees(fn, [x], cpu_activation.ReLUCPU)


SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, 50, -50, 1e4, -1e4, 3, -3, 88,
                    -88, -100, 100], dtype=np.float32)


@pytest.mark.parametrize("fn, function", [
    (F.relu, cpu_activation.ReLUCPU),
    (F.gelu, cpu_activation.GELUCPU),
    (lambda x: F.gelu(x, approximate="tanh"), cpu_activation.GELUCPU),
    (F.silu, cpu_activation.SiLUCPU),
    (lambda x: F.softmax(x.reshape(4, 4), 1), cpu_activation.SoftmaxCPU),
    (lambda x: F.log_softmax(x.reshape(4, 4), 1), cpu_activation.LogSoftmaxCPU),
], ids=["relu", "gelu", "gelu_tanh", "silu", "softmax", "log_softmax"])
def test_special_values_go_through_as_in_the_reference(fn, function):
    with np.errstate(all="ignore"):
        out, (grad,), node = _run(fn, [SPECIAL], [True], True)
        ref_out, (ref_grad,), _ = _run(fn, [SPECIAL], [True], False)
    assert node.function is function or node.function.__name__ == "Reshape"
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref_out))
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(ref_grad))
    # log-softmax's fast path sums in float64: where 1 + e^-12 rounds in float32 it is the
    # more exact one, so the comparison is absolute
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_softmax_of_masked_rows():
    x = np.array([[-np.inf, 1.0, 2.0], [-np.inf, -np.inf, -np.inf]], dtype=np.float32)
    with np.errstate(all="ignore"):
        out, _, _ = _run(lambda t: F.softmax(t, 1), [x], [True], True)
        ref, _, _ = _run(lambda t: F.softmax(t, 1), [x], [True], False)
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-6)
    assert out[0, 0] == 0 and np.isnan(out[1]).all() and np.isnan(ref[1]).all()


# ---------------------------------------------------------------------------------------------
# normalization


@given(rng=rngs(), shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), data=st.data(),
       affine=st.sampled_from(["both", "weight", "bias", "none"]),
       threads=st.sampled_from([1, 2, 3]))
def test_layer_norm_fast_path_matches_the_reference(rng, shape, data, affine, threads):
    """Its rows on 1, 2 or 3 threads (the weight's and bias's gradients summed over them)."""
    normalized = tuple(shape[data.draw(st.integers(0, len(shape) - 1)):])
    arrays = [f32(rng, shape, 2) + 1, f32(rng, normalized), f32(rng, normalized)]
    wanted = [True, affine in ("both", "weight"), affine in ("both", "bias")]

    def fn(x, w, b):
        return F.layer_norm(x, normalized, w if wanted[1] else None, b if wanted[2] else None)

    with kernel_threads(threads):
        assert_fast_path_agrees(fn, arrays, cpu_norm.LayerNormCPU, requires_grad=wanted,
                                float32_floor=True)


@given(rng=rngs(), n=st.integers(1, 3), groups=st.integers(1, 3), per_group=st.integers(1, 3),
       spatial=st.lists(st.integers(1, 4), max_size=2), affine=st.booleans(),
       threads=st.sampled_from([1, 2, 3]))
def test_group_norm_fast_path_matches_the_reference(rng, n, groups, per_group, spatial, affine,
                                                    threads):
    """Its samples on 1, 2 or 3 threads."""
    c = groups * per_group
    arrays = [f32(rng, (n, c, *spatial), 2), f32(rng, (c,)), f32(rng, (c,))]
    if n * per_group * int(np.prod(spatial)) == 1:
        arrays[0][:] = 0  # one value per group: var = 0, as in the reference

    def fn(x, w, b):
        return F.group_norm(x, groups, w if affine else None, b if affine else None)

    with kernel_threads(threads):
        assert_fast_path_agrees(fn, arrays, cpu_norm.GroupNormCPU,
                                requires_grad=[True, affine, affine], float32_floor=True)


@given(rng=rngs(), shape=st.sampled_from([(5, 3), (4, 3, 6), (3, 2, 4, 5), (1, 4, 3, 3)]),
       layout=st.sampled_from(["nchw", "batch-innermost", "strided"]),
       training=st.booleans(), affine=st.booleans())
def test_batch_norm_fast_path_matches_the_reference(rng, shape, layout, training, affine):
    c = shape[1]
    running = [rng.standard_normal(c).astype(np.float32), rng.uniform(0.5, 2, c)
               .astype(np.float32)]
    statistics = {True: [r.copy() for r in running], False: [r.copy() for r in running]}
    fast_on = []

    def fn(x, w, b):
        if layout == "batch-innermost" and x.ndim == 4:  # as the CPU conv hands it out
            x = F.conv2d(x, mg.tensor(np.eye(c, dtype=x.numpy().dtype).reshape(c, c, 1, 1)))
        elif layout == "strided":
            x = x[:, :, ::2] if x.ndim > 2 else x[::2]
        mean, var = (mg.tensor(s.astype(x.numpy().dtype)) for s in statistics[fast.enabled()])
        fast_on.append(fast.enabled())
        out = F.batch_norm(x, mean, var, w if affine else None, b if affine else None,
                           training=training, momentum=0.3)
        statistics[fast.enabled()] = [mean.numpy(), var.numpy()]
        return out

    arrays = [f32(rng, shape, 2) + 0.5, f32(rng, (c,)), f32(rng, (c,))]
    assert_fast_path_agrees(fn, arrays, cpu_norm.BatchNormCPU,
                            requires_grad=[True, affine, affine])
    for ours, reference in zip(statistics[True], statistics[False]):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
    assert fast_on == [True, False]


def test_batch_norm_keeps_the_layout_it_is_given():
    x = F.conv2d(mg.tensor(np.ones((4, 3, 5, 5), dtype=np.float32)),
                 mg.tensor(np.ones((6, 3, 3, 3), dtype=np.float32)))
    out = F.batch_norm(x, None, None, training=True)
    assert out.grad_fn is None or out.array.strides == x.array.strides
    assert out.array.strides == x.array.strides  # batch innermost in, batch innermost out


# ---------------------------------------------------------------------------------------------
# embedding


@given(rng=rngs(), rows=st.integers(1, 8), index_shape=st.lists(st.integers(0, 5), max_size=3),
       padding=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       index_dtype=st.sampled_from([np.int64, np.int32, np.uint8]))
def test_embedding_gathers_and_adds_repeated_rows_as_the_reference(rng, rows, index_shape,
                                                                   padding, dtype, index_dtype):
    """Any index shape (0-d, empty) and integer dtype; the backward adds a repeated row."""
    indices = rng.integers(0, rows, index_shape).astype(index_dtype)
    padding_idx = int(rng.integers(0, rows)) if padding else None
    weight = rng.standard_normal((rows, 3)).astype(dtype)
    assert_fast_path_agrees(
        lambda w: F.embedding(mg.tensor(indices), w, padding_idx=padding_idx), [weight],
        cpu_embedding.EmbeddingCPU, atol=1e-12 if dtype == np.float64 else 1e-5)


def test_embedding_of_a_transposed_table_gathers_its_rows():
    table = np.arange(15, dtype=np.float32).reshape(3, 5)
    weight = mg.tensor(table, requires_grad=True)
    out = F.embedding(mg.tensor(np.array([[4, 0], [4, 2]])), weight.T)  # (5, 3), F-ordered
    assert out.grad_fn.function is cpu_embedding.EmbeddingCPU
    np.testing.assert_array_equal(out.numpy(), table.T[[[4, 0], [4, 2]]])
    out.backward(mg.tensor(np.ones((2, 2, 3), dtype=np.float32)))
    np.testing.assert_array_equal(weight.grad.numpy(), [[1, 0, 1, 0, 2]] * 3)


# ---------------------------------------------------------------------------------------------
# against torch, and the dispatch


@requires_torch
@pytest.mark.parametrize("name", ["gelu", "gelu_tanh", "silu", "softmax", "log_softmax",
                                  "layer_norm", "group_norm", "batch_norm", "embedding",
                                  "relu", "conv2d_direct", "max_pool_after_conv"])
def test_fast_paths_match_torch_in_float32(name):
    t = torch()
    rng = np.random.default_rng(3)
    x = f32(rng, (4, 6, 5, 5), 2)
    w, b = f32(rng, (6,)), f32(rng, (6,))
    cases = {
        "gelu": (lambda lib, x: lib.nn.functional.gelu(x), [x]),
        "gelu_tanh": (lambda lib, x: lib.nn.functional.gelu(x, approximate="tanh"), [x]),
        "silu": (lambda lib, x: lib.nn.functional.silu(x), [x]),
        "softmax": (lambda lib, x: lib.nn.functional.softmax(x, 1), [x]),
        "log_softmax": (lambda lib, x: lib.nn.functional.log_softmax(x, -1), [x]),
        "layer_norm": (lambda lib, x, w, b: lib.nn.functional.layer_norm(x, (5,), w, b),
                       [x, w[:5], b[:5]]),
        "group_norm": (lambda lib, x, w, b: lib.nn.functional.group_norm(x, 3, w, b),
                       [x, w, b]),
        "batch_norm": (lambda lib, x, w, b: lib.nn.functional.batch_norm(
            x, None, None, w, b, training=True), [x, w, b]),
        "embedding": (lambda lib, w: lib.nn.functional.embedding(
            lib.tensor(np.array([[0, 2, 2], [5, 0, 1]])), w), [x[0, :, 0]]),
        "relu": (lambda lib, x: lib.nn.functional.relu(x), [x]),
        # LeNet5's first layer at a batch of 32: the direct convolution
        "conv2d_direct": (lambda lib, x, w, b: lib.nn.functional.conv2d(x, w, b, padding=2),
                          [f32(rng, (32, 1, 12, 12)), f32(rng, (6, 1, 5, 5)), b]),
        "max_pool_after_conv": (lambda lib, x, w: lib.nn.functional.max_pool2d(
            lib.nn.functional.conv2d(x, w), 2), [f32(rng, (32, 2, 8, 8)), f32(rng, (3, 2, 1, 1))]),
    }
    fn, arrays = cases[name]
    ours = [mg.tensor(a, requires_grad=True) for a in arrays]
    theirs = [t.tensor(a, requires_grad=True) for a in arrays]
    out, out_t = fn(mg, *ours), fn(t, *theirs)
    assert "CPU" in out.grad_fn.function.__name__, out.grad_fn
    upstream = f32(rng, out.shape)
    out.backward(mg.tensor(upstream))
    out_t.backward(t.tensor(upstream))
    np.testing.assert_allclose(out.numpy(), out_t.detach().numpy(), rtol=1e-4, atol=1e-5)
    for a, b in zip(ours, theirs):
        expected = b.grad.numpy()  # a weight's gradient sums thousands of float32 products:
        scale = max(1.0, float(np.abs(expected).max()))  # compare to its size, not to 1
        np.testing.assert_allclose(a.grad.numpy(), expected, rtol=1e-4, atol=1e-5 * scale)


def test_select_picks_the_compiled_paths_for_float32_only():
    def chosen(reference, dtype, **settings):
        return fast.select(reference, mg.zeros(2, dtype=dtype), {"dtype": dtype, "ndim": 1},
                           **settings)

    assert chosen(activation.GELU, mg.float32) is cpu_activation.GELUCPU
    assert chosen(activation.GELU, mg.float64) is activation.GELU
    assert chosen(activation.Softmax, mg.float32) is cpu_activation.SoftmaxCPU
    assert chosen(norm.Standardize, mg.float32, kind="layer") is cpu_norm.LayerNormCPU
    assert chosen(norm.Standardize, mg.float32, kind="group") is cpu_norm.GroupNormCPU
    assert chosen(norm.BatchNorm, mg.float32) is cpu_norm.BatchNormCPU
    assert chosen(norm.BatchNorm, mg.float64) is norm.BatchNorm
    assert chosen(upsample.Embedding, mg.float64) is cpu_embedding.EmbeddingCPU
    kernels.enable(False)
    try:
        assert not kernels.available()
        for reference in (activation.GELU, activation.SiLU, activation.Softmax,
                          activation.LogSoftmax, norm.BatchNorm, upsample.Embedding):
            assert chosen(reference, mg.float32) is reference
        assert chosen(norm.Standardize, mg.float32, kind="layer") is norm.Standardize
    finally:
        kernels.enable(True)


def test_without_the_kernels_the_numpy_code_runs_and_agrees():
    rng = np.random.default_rng(0)
    x = f32(rng, (3, 4, 5), 2)

    def network(t):
        h = F.layer_norm(F.gelu(t), (5,))
        return F.log_softmax(F.silu(F.group_norm(h, 2)), -1)

    arrays, wants = [x], [True]
    out, (grad,), node = _run(network, arrays, wants, True)
    assert node.function is cpu_activation.LogSoftmaxCPU
    kernels.enable(False)
    try:
        plain, (plain_grad,), plain_node = _run(network, arrays, wants, True)
    finally:
        kernels.enable(True)
    assert plain_node.function is activation.LogSoftmax
    np.testing.assert_allclose(out, plain, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grad, plain_grad, rtol=1e-4, atol=1e-5)


def test_kernels_run_from_several_threads_at_once():
    rng = np.random.default_rng(0)
    x = f32(rng, (64, 256))
    expected = F.layer_norm(F.gelu(mg.tensor(x)), (256,)).numpy()
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(F.layer_norm(F.gelu(mg.tensor(x)), (256,)).numpy())
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 60
    for result in results:
        np.testing.assert_array_equal(result, expected)
