"""The CuPy stand-in refuses what CuPy refuses, so that the device tests can fail."""

import fake_cupy as fcp
import numpy as np
import pytest

import minigrad as mg


def test_device_arrays_do_not_mix_with_host_arrays():
    device = fcp.asarray(np.ones(3))
    with pytest.raises(TypeError, match="cannot mix a device array with a NumPy array"):
        device + np.ones(3)
    with pytest.raises(TypeError, match="cannot mix"):
        np.ones(3) * device
    with pytest.raises(TypeError, match="implicit conversion to a NumPy array is not allowed"):
        np.asarray(device)
    with pytest.raises(TypeError, match="numpy.concatenate was called on a device array"):
        np.concatenate([device, device])
    with pytest.raises(TypeError, match="a NumPy array was passed where a device array belongs"):
        fcp.maximum(device, np.zeros(3))


def test_only_functions_cupy_has_and_device_results_from_reductions():
    with pytest.raises(AttributeError, match="has no function 'histogram'"):
        getattr(fcp, "histogram")  # noqa: B009 - the lookup is what is tested
    total = fcp.asarray(np.arange(4.0)).sum()
    assert isinstance(total, fcp.ndarray) and total.ndim == 0 and float(total) == 6.0
    np.testing.assert_array_equal(fcp.asnumpy(fcp.exp(fcp.zeros(2))), [1.0, 1.0])


def test_where_and_indices_refuse_what_cupy_refuses():
    """Found on an H100: cupy.where needs a device array as its condition (a Python bool
    fails), and cupy.indices has no sparse=."""
    grad = fcp.asarray(np.ones(3))
    with pytest.raises(AttributeError, match="condition must be a device array, got bool"):
        fcp.where(3 == 0, 0, grad)
    np.testing.assert_array_equal(fcp.asnumpy(fcp.where(grad > 0, 0, grad)), [0, 0, 0])
    with pytest.raises(TypeError, match="unexpected keyword argument 'sparse'"):
        fcp.indices((2, 3), sparse=True)
    assert fcp.indices((2, 3)).shape == (2, 2, 3)


def test_open_grid_is_numpys_sparse_indices_on_either_device():
    for xp in (np, fcp):
        grid = mg.backend.open_grid(xp, (2, 3, 4))
        for got, want in zip(grid, np.indices((2, 3, 4), sparse=True)):
            np.testing.assert_array_equal(fcp.asnumpy(got) if xp is fcp else got, want)


@pytest.mark.skipif(not fcp.installed, reason="a real GPU is present; the stand-in is not used")
def test_minigrad_cuda_tensors_live_on_the_stand_in_and_meet_cpu_tensors_with_an_error():
    x = mg.ones(3, device="cuda")
    assert isinstance(x.array, fcp.ndarray) and x.device == "cuda:0"
    with pytest.raises(RuntimeError, match="cpu and cuda:0"):
        mg.ones(3) + x
    with pytest.raises(TypeError, match="can't convert a cuda:0 tensor to NumPy implicitly"):
        np.asarray(x)
    assert x.numpy().tolist() == [1.0, 1.0, 1.0]


@pytest.mark.skipif(not fcp.installed, reason="a real GPU is present; the stand-in is not used")
def test_a_training_step_on_cuda_never_reads_back_to_the_host():
    """No .item(), float() or numpy() inside a step: each would make the step wait for the
    GPU. Cross-entropy's check that every target is a valid class stays on the device."""
    mg.manual_seed(0)
    model = mg.models.LeNet5().to("cuda")
    optimizer = mg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = mg.randn(8, 1, 28, 28, device="cuda")
    labels = mg.randint(0, 10, (8,), device="cuda")
    reads_before = fcp.host_reads
    for _ in range(3):
        loss = mg.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert fcp.host_reads == reads_before
    loss.item()  # the first read makes the queued checks, all together
    assert fcp.host_reads - reads_before <= 2


@pytest.mark.skipif(not fcp.installed, reason="a real GPU is present; the stand-in is not used")
def test_batch_norm_with_a_cumulative_average_never_reads_the_batch_count():
    layer = mg.nn.BatchNorm2d(3, momentum=None).to("cuda")
    reads_before = fcp.host_reads
    batches = [np.random.default_rng(k).standard_normal((4, 3, 2, 2)) for k in range(3)]
    for batch in batches:
        layer(mg.tensor(batch, dtype=mg.float32, device="cuda"))
    assert fcp.host_reads == reads_before
    expected = np.mean([b.mean(axis=(0, 2, 3)) for b in batches], axis=0)  # equal weights
    np.testing.assert_allclose(layer.running_mean.numpy(), expected, rtol=1e-5)
    assert layer.running_mean.dtype == mg.float32


@pytest.mark.skipif(not fcp.installed, reason="a real GPU is present; the stand-in is not used")
def test_a_bad_target_on_cuda_is_reported_at_the_next_read_or_at_once_with_sync_checks():
    F = mg.nn.functional
    logits = mg.randn(3, 4, device="cuda")
    bad = mg.tensor([0, 7, 1], device="cuda")
    loss = F.cross_entropy(logits, bad)  # queued, not read: the GPU would not wait
    with pytest.raises(IndexError, match="cross_entropy: target 7 is out of range for 4 "):
        loss.item()
    loss.item()  # reported once
    probabilities = mg.tensor([0.5, 1.5], device="cuda")
    with np.errstate(invalid="ignore"):  # the GPU computes log(1 - 1.5) too, silently
        F.binary_cross_entropy(probabilities, mg.tensor([0.0, 1.0], device="cuda"))
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\], found values in "
                                         r"\[0.5, 1.5\]"):
        mg.zeros(1, device="cuda").cpu()
    mg.backend.set_sync_checks(True)
    try:
        with pytest.raises(IndexError, match="target 7 is out of range"):
            F.cross_entropy(logits, bad)
    finally:
        mg.backend.set_sync_checks(False)


@pytest.mark.skipif(not fcp.installed, reason="a real GPU is present; the stand-in is not used")
def test_a_vgg_bn_step_with_bce_never_waits_for_the_device():
    """The VOC example's step (VGG16-BN, BCE with logits, SGD momentum): no host reads."""
    mg.manual_seed(0)
    model = mg.models.vgg16(num_classes=20, width_mult=0.125, batch_norm=True).to("cuda")
    optimizer = mg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    images = mg.randn(2, 3, 32, 32, device="cuda")
    targets = (mg.rand(2, 20, device="cuda") > 0.5).float()
    reads_before = fcp.host_reads
    for _ in range(2):
        loss = mg.nn.functional.binary_cross_entropy_with_logits(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert fcp.host_reads == reads_before


@pytest.mark.skipif(not fcp.installed, reason="a real GPU is present; the stand-in is not used")
def test_a_vgg_step_on_cuda_runs_2d_gemms_and_no_poorly_coalesced_elementwise_op():
    """What made the first real-GPU run slow, caught on the CPU: a batched (3-D) matmul for a
    convolution (CuPy's batched path ignores TF32 and copies its operands), and elementwise
    ops on arrays whose innermost axis is not contiguous (6x slower on the H100)."""
    mg.manual_seed(0)
    model = mg.models.vgg16(num_classes=20, width_mult=0.125, batch_norm=True).to("cuda")
    optimizer = mg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images, labels = mg.randn(4, 3, 64, 64, device="cuda"), mg.randint(0, 20, (4,), device="cuda")
    fcp.stats.reset()
    loss = mg.nn.functional.cross_entropy(model(images), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    # the one strided copy allowed: each conv weight, transposed once per backward so that
    # cuBLAS runs an NN GEMM (faster than TN on the H100); a weight is small
    weights_transposed = {(w.shape[1] * w.shape[2] * w.shape[3], w.shape[0])
                          for name, w in model.named_parameters()
                          if name.endswith("weight") and w.ndim == 4}
    strided = [shape for shape, _ in fcp.stats.strided_elementwise]
    assert set(strided) <= weights_transposed
    batched = [dims for dims in fcp.stats.matmuls if dims != (2, 2)]
    # only the adaptive average pool's small bin matrices (7x7 over 2x2) are batched through
    # CuPy's matmul; the 3x3 layers with 16 channels in or more run Winograd, whose batched
    # GEMMs call cuBLAS directly (3 a layer), the others im2col's 2-D GEMMs (3 a layer)
    from minigrad.ops.fast import cuda_winograd

    convs = [m for m in model.modules() if isinstance(m, mg.nn.Conv2d)]
    winograd = sum(m.in_channels >= cuda_winograd.MIN_CHANNELS for m in convs)
    assert winograd == 10
    assert len(batched) <= 4 and len(fcp.stats.matmuls) >= 3 * (len(convs) - winograd)
    assert sum(ndim == 3 for ndim, _, _ in fcp.stats.gemm_precisions) == 3 * winograd
    assert {"minigrad_im2col", "minigrad_col2im", "minigrad_max_pool",
            "minigrad_batch_norm_backward", "minigrad_relu_backward",
            "minigrad_winograd_input_f2", "minigrad_winograd_gather_f2"} <= set(
        fcp.stats.kernels)


@pytest.mark.skipif(not fcp.installed, reason="a real GPU is present; the stand-in is not used")
@pytest.mark.parametrize("budget_images", [1, 3])
def test_cuda_conv_keeps_its_columns_within_the_budget(budget_images):
    """The columns of a 3x3 conv are 9x its input; the CUDA path never holds more than one
    chunk of them (and of their gradient), so memory stays near the activations'."""
    from unittest import mock

    from minigrad.ops.fast import cuda_conv, cuda_winograd

    n, c, size = 8, 16, 32
    per_image = c * 9 * size * size * 4  # bytes of one image's columns
    x = mg.randn(n, c, size, size, device="cuda", requires_grad=True)
    weight = mg.randn(c, c, 3, 3, device="cuda", requires_grad=True)
    upstream = mg.randn(n, c, size, size, device="cuda")
    with mock.patch.object(cuda_conv, "COLS_BUDGET_BYTES", budget_images * per_image), \
            mock.patch.object(cuda_winograd, "_enabled", False):  # im2col's columns
        with fcp.track_memory() as memory:
            mg.nn.functional.conv2d(x, weight, padding=1).backward(upstream)
    activation = n * c * size * size * 4
    # the output and grad_x (one activation each), the gradients of the chunk on their way
    # to GEMM layout, and at most two chunks of columns (cols and grad_cols) alive at once
    # (all of the columns at once would be 9 activations, 4.7 MB)
    assert memory.peak <= 3 * activation + 2 * budget_images * per_image + 64 * 1024
