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


@pytest.mark.skipif(not fcp.installed, reason="a real GPU is present; the stand-in is not used")
def test_minigrad_cuda_tensors_live_on_the_stand_in_and_meet_cpu_tensors_with_an_error():
    x = mg.ones(3, device="cuda")
    assert isinstance(x.data, fcp.ndarray) and x.device == "cuda:0"
    with pytest.raises(RuntimeError, match="cpu and cuda:0"):
        mg.ones(3) + x
    with pytest.raises(TypeError, match="can't convert a cuda:0 tensor to NumPy implicitly"):
        np.asarray(x)
    assert x.numpy().tolist() == [1.0, 1.0, 1.0]


@pytest.mark.skipif(not fcp.installed, reason="a real GPU is present; the stand-in is not used")
def test_a_training_step_on_cuda_reads_back_to_the_host_once_at_most():
    """No .item(), float() or numpy() inside a step: each would make the step wait for the
    GPU. The one read left is cross-entropy's check that every target is a valid class."""
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
    assert fcp.host_reads - reads_before <= 3


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
