"""The architectures the course compares (issue 23): DenseNet as torchvision's, pre-activation
ResNet as He et al. (2016) describe it, the 32x32 variants, and `mg.utils.summary`'s counts,
each checked against torch or against counts computed here independently."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
from helpers import DEVICES, requires_torch, torch

import minigrad as mg
from minigrad import nn
from minigrad.models import (
    cifar_resnet18,
    cifar_vgg16,
    densenet121,
    densenet161,
    densenet169,
    densenet201,
    load_pretrained,
    preact_resnet18,
    preact_resnet34,
    resnet18,
    vgg16,
)
from minigrad.utils import summary

# ---------------------------------------------------------------------------------------------
# DenseNet


def torch_densenet(growth_rate, block_config, num_init_features, num_classes=1000):
    """torchvision's DenseNet written out with torch.nn (torchvision is not a dependency):
    the same modules under the same names, the same forward."""
    t = torch()
    tnn = t.nn

    class Layer(tnn.Module):
        def __init__(self, n_in):
            super().__init__()
            self.norm1 = tnn.BatchNorm2d(n_in)
            self.relu1 = tnn.ReLU(inplace=True)
            self.conv1 = tnn.Conv2d(n_in, 4 * growth_rate, 1, bias=False)
            self.norm2 = tnn.BatchNorm2d(4 * growth_rate)
            self.relu2 = tnn.ReLU(inplace=True)
            self.conv2 = tnn.Conv2d(4 * growth_rate, growth_rate, 3, padding=1, bias=False)

        def forward(self, features):
            x = t.cat(features, 1)
            return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))

    class Block(tnn.ModuleDict):
        def __init__(self, n_layers, n_in):
            super().__init__()
            for i in range(n_layers):
                self.add_module(f"denselayer{i + 1}", Layer(n_in + i * growth_rate))

        def forward(self, x):
            features = [x]
            for _, layer in self.items():
                features.append(layer(features))
            return t.cat(features, 1)

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(OrderedDict([
                ("conv0", tnn.Conv2d(3, num_init_features, 7, 2, 3, bias=False)),
                ("norm0", tnn.BatchNorm2d(num_init_features)), ("relu0", tnn.ReLU(inplace=True)),
                ("pool0", tnn.MaxPool2d(3, 2, 1))]))
            n = num_init_features
            for i, n_layers in enumerate(block_config):
                self.features.add_module(f"denseblock{i + 1}", Block(n_layers, n))
                n += n_layers * growth_rate
                if i != len(block_config) - 1:
                    self.features.add_module(f"transition{i + 1}", tnn.Sequential(OrderedDict([
                        ("norm", tnn.BatchNorm2d(n)), ("relu", tnn.ReLU(inplace=True)),
                        ("conv", tnn.Conv2d(n, n // 2, 1, bias=False)),
                        ("pool", tnn.AvgPool2d(2, 2))])))
                    n //= 2
            self.features.add_module("norm5", tnn.BatchNorm2d(n))
            self.classifier = tnn.Linear(n, num_classes)

        def forward(self, x):
            out = tnn.functional.adaptive_avg_pool2d(tnn.functional.relu(self.features(x)), 1)
            return self.classifier(t.flatten(out, 1))

    return Net()


def _random_statistics(model):
    t = torch()
    with t.no_grad():  # running statistics and scales that are not the identity
        for module in model.modules():
            if isinstance(module, t.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return model.eval()


def _old_name(key):
    """torchvision's first DenseNet weights: `denselayer1.norm.1.weight`."""
    import re

    return re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", key)


@requires_torch
def test_densenet121_loads_torchvision_weights_old_names_too_and_gives_its_logits(tmp_path):
    t = torch()
    t.manual_seed(0)
    theirs = _random_statistics(torch_densenet(32, (6, 12, 24, 16), 64))
    ours = densenet121()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert sum(p.numel() for p in ours.parameters()) == 7_978_856  # torchvision's count
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    expected = theirs(t.tensor(x)).detach().numpy()
    t.save(theirs.state_dict(), tmp_path / "densenet121.pth")
    load_pretrained(ours, tmp_path / "densenet121.pth")
    ours.eval()
    np.testing.assert_allclose(ours(mg.tensor(x)).numpy(), expected, atol=1e-4, rtol=1e-4)

    old = OrderedDict((_old_name(k), v) for k, v in theirs.state_dict().items()
                      if not k.endswith("num_batches_tracked"))  # (the old files predate it)
    assert sum(k != _old_name(k) for k in theirs.state_dict()) > 100  # names did change
    np.savez(tmp_path / "old.npz", **{k: v.numpy() for k, v in old.items()})
    t.save(old, tmp_path / "old.pth")
    for path in (tmp_path / "old.npz", tmp_path / "old.pth"):
        fresh = densenet121()
        result = load_pretrained(fresh, path)
        assert not result.missing_keys and not result.unexpected_keys
        fresh.eval()
        np.testing.assert_allclose(fresh(mg.tensor(x)).numpy(), expected, atol=1e-4, rtol=1e-4)


@requires_torch
@pytest.mark.parametrize("make, config, count", [
    (densenet161, (48, (6, 12, 36, 24), 96), 28_681_000),
    (densenet169, (32, (6, 12, 32, 32), 64), 14_149_480),
    (densenet201, (32, (6, 12, 48, 32), 64), 20_013_928),
])
def test_the_other_densenets_have_torchvisions_names_and_counts(make, config, count):
    ours, theirs = make(), torch_densenet(*config)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    assert sum(p.numel() for p in ours.parameters()) == count


@requires_torch
def test_a_small_densenet_trains_as_torchs_gradient_for_gradient():
    t = torch()
    t.manual_seed(1)
    theirs = torch_densenet(4, (2, 3), 8, num_classes=5).double()
    ours = mg.models.DenseNet(4, (2, 3), 8, num_classes=5)
    ours.load_state_dict(theirs.state_dict())
    ours = ours.double()
    x = np.random.default_rng(1).standard_normal((3, 3, 24, 24))
    (theirs(t.tensor(x)) ** 2).sum().backward()  # training mode: batch statistics
    (ours(mg.tensor(x)) ** 2).sum().backward()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=name)


def test_densenet_refuses_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="DenseNet: num_classes"):
        densenet121(num_classes=0)
    with pytest.raises(ValueError, match="DenseNet: drop_rate"):
        densenet121(drop_rate=1.5)
    with pytest.raises(ValueError, match=r"DenseNet: expected images \(N, 3, H, W\)"):
        mg.models.DenseNet(4, (1,), 8)(mg.randn(1, 1, 32, 32))
    model = mg.models.DenseNet(4, (2,), 8, drop_rate=0.5, memory_efficient=True)
    model.eval()  # dropout only in training; memory_efficient changes nothing here
    x = mg.randn(2, 3, 16, 16)
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())


# ---------------------------------------------------------------------------------------------
# pre-activation ResNet and the 32x32 variants


def torch_preact_resnet(layers, num_classes=10, width=64):
    """The pre-activation ResNet of He et al. (2016) written with torch.nn from the paper:
    BN-relu before each conv, the 1x1 shortcut on the pre-activated input, BN-relu at the
    end."""
    t = torch()
    tnn, F = t.nn, t.nn.functional

    class Block(tnn.Module):
        def __init__(self, n_in, planes, stride):
            super().__init__()
            self.bn1 = tnn.BatchNorm2d(n_in)
            self.conv1 = tnn.Conv2d(n_in, planes, 3, stride, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.shortcut = (tnn.Sequential(tnn.Conv2d(n_in, planes, 1, stride, bias=False))
                             if stride != 1 or n_in != planes else None)

        def forward(self, x):
            out = F.relu(self.bn1(x))
            short = x if self.shortcut is None else self.shortcut(out)
            return self.conv2(F.relu(self.bn2(self.conv1(out)))) + short

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            widths = [width, 2 * width, 4 * width, 8 * width]
            self.conv1 = tnn.Conv2d(3, width, 3, 1, 1, bias=False)
            n = width
            for i, (w, blocks) in enumerate(zip(widths, layers)):
                stage = [Block(n, w, 1 if i == 0 else 2)] + [Block(w, w, 1)
                                                              for _ in range(1, blocks)]
                setattr(self, f"layer{i + 1}", tnn.Sequential(*stage))
                n = w
            self.bn = tnn.BatchNorm2d(n)
            self.avgpool = tnn.AdaptiveAvgPool2d(1)
            self.fc = tnn.Linear(n, num_classes)

        def forward(self, x):
            out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
            return self.fc(t.flatten(self.avgpool(F.relu(self.bn(out))), 1))

    return Net()


@requires_torch
def test_preact_resnet18_is_the_papers_network_value_and_gradient():
    t = torch()
    t.manual_seed(2)
    theirs = _random_statistics(torch_preact_resnet([2, 2, 2, 2]))
    ours = preact_resnet18()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(ours(mg.tensor(x)).numpy(), theirs(t.tensor(x)).detach().numpy(),
                               atol=1e-4, rtol=1e-4)
    # training mode, float64, a narrow network: every gradient as torch's
    small_t = torch_preact_resnet([1, 2, 1, 1], num_classes=3, width=4).double()
    small = mg.models.PreActResNet([1, 2, 1, 1], num_classes=3, width_mult=4 / 64)
    small.load_state_dict(small_t.state_dict())
    small = small.double()
    x = np.random.default_rng(3).standard_normal((4, 3, 16, 16))
    g = np.random.default_rng(4).standard_normal((4, 3))
    small_t(t.tensor(x)).backward(t.tensor(g))
    small(mg.tensor(x)).backward(mg.tensor(g))
    for (name, p), q in zip(small.named_parameters(), small_t.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=name)
    assert list(preact_resnet34().state_dict()) == list(
        torch_preact_resnet([3, 4, 6, 3]).state_dict())


def test_the_32x32_networks_classify_cifar_sized_images_and_refuse_others():
    mg.manual_seed(0)
    for make in (preact_resnet18, cifar_resnet18, cifar_vgg16):
        model = make(num_classes=7, width_mult=0.125)
        out = model(mg.randn(2, 3, 32, 32))
        assert out.shape == (2, 7)
        out.sum().backward()
        assert all(p.grad is not None and np.abs(p.grad.numpy()).sum() > 0
                   for p in model.parameters()), make.__name__
        with pytest.raises(ValueError, match=r"expected images \(N, 3,"):
            model(mg.randn(2, 1, 32, 32))
    # the stem keeps 32x32 for the first stage (no 7x7/2, no max pool)
    seen = []
    model = cifar_resnet18(width_mult=0.125)
    model.layer1.register_forward_hook(lambda m, a, o: seen.append(o.shape))
    model(mg.randn(1, 3, 32, 32))
    assert seen == [(1, 8, 32, 32)]


# ---------------------------------------------------------------------------------------------
# summary


def _vgg16_mult_adds(size=224):
    """Configuration D by hand: each 3x3 conv is H*W*C_out*C_in*9 multiply-adds."""
    total, channels = 0, 3
    for item in mg.models.vgg.CONFIG_D:
        if item == "M":
            size //= 2
            continue
        total += size * size * item * channels * 9
        channels = item
    return total + 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000


def _resnet18_mult_adds():
    """ResNet-18 at 224x224 by hand (convs, the downsampling 1x1s, fc; BN: 2C per layer)."""
    total = 112 * 112 * 64 * 3 * 49 + 2 * 64  # conv1, bn1
    size, channels = 56, 64
    for stage, width in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage and not block else 1
            out = size // stride
            total += out * out * width * channels * 9 + out * out * width * width * 9
            total += 2 * (2 * width)  # two BN
            if stride != 1 or channels != width:
                total += out * out * width * channels + 2 * width
            channels, size = width, out
    return total + 512 * 1000


def test_summary_reproduces_the_published_figures_of_vgg16_and_resnet18(capsys):
    stats = summary(vgg16(), input_size=(1, 3, 224, 224))
    printed = capsys.readouterr().out
    assert stats.total_params == stats.trainable_params == 138_357_544
    assert stats.total_mult_adds == _vgg16_mult_adds()
    assert "Total mult-adds (G): 15.47" in printed and "Total params: 138,357,544" in printed
    assert stats.total_param_bytes == 138_357_544 * 4 and stats.total_input == 3 * 224 * 224 * 4
    stats = summary(resnet18(), input_size=(1, 3, 224, 224), verbose=0)
    assert stats.total_params == 11_689_512
    assert stats.total_mult_adds == _resnet18_mult_adds()
    assert "Total mult-adds (G): 1.81" in str(stats)
    assert f"{2_359_296:,}" in str(stats)  # a 3x3 512->512 conv's parameters, on its row


class _Attention(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.q, self.k = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)

    def forward(self, x):
        return (self.q(x) @ self.k(x).transpose(-2, -1)).softmax(-1) @ x


class _Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2)
        self.bn = nn.BatchNorm2d(6)
        self.up = nn.ConvTranspose2d(6, 3, 2, stride=2)
        self.conv1d = nn.Conv1d(3, 5, 3)
        self.lstm = nn.LSTM(5, 7, num_layers=2, batch_first=True)
        self.gru = nn.GRU(7, 4, bidirectional=True)
        self.norm = nn.LayerNorm(8)
        self.attention = _Attention(8)
        self.head = nn.Linear(8, 2)
        self.embed = nn.Embedding(10, 8)

    def forward(self, x, tokens):
        y = self.up(self.bn(self.conv(x)))  # (N, 3, 10, 10)
        y = self.conv1d(y.flatten(2)[:, :, :12])  # (N, 5, 10)
        y, _ = self.lstm(y.transpose(1, 2))  # (N, 10, 7)
        y, _ = self.gru(y.transpose(0, 1))  # (10, N, 8)
        y = self.attention(self.norm(y.transpose(0, 1)) + self.embed(tokens))  # (N, 10, 8)
        return self.head(y)


def test_summary_counts_each_kind_of_layer_as_its_formula():
    n = 3
    model = _Mixed()
    stats = summary(model, input_size=[(n, 4, 5, 5), (n, 10)], dtypes=[mg.float32, mg.int64],
                    verbose=0)
    rows = {info.name: info for info in stats.summary_list}
    # conv: N * H_out * W_out * C_out * (C_in / groups) * k * k (dilation adds no taps)
    assert rows["conv"].output_shape == [[n, 6, 5, 5]]
    assert rows["conv"].mult_adds == n * 5 * 5 * 6 * (4 // 2) * 3 * 3
    assert rows["bn"].mult_adds == n * 2 * 6  # its scale and shift, once per sample
    # transposed: every input pixel meets every weight of its group
    assert rows["up"].mult_adds == n * 5 * 5 * 6 * 3 * 2 * 2
    assert rows["conv1d"].mult_adds == n * 10 * 5 * 3 * 3
    lstm = n * 10 * (4 * 7 * (5 + 7) + 4 * 7 * (7 + 7))  # 4 gates, layer 1 and 2
    assert rows["lstm"].mult_adds == lstm and rows["lstm"].output_shape[0] == [n, 10, 7]
    assert rows["gru"].mult_adds == 10 * n * 2 * 3 * 4 * (7 + 4)  # 3 gates, 2 directions
    assert rows["norm"].mult_adds == n * 2 * 8
    # the attention's own products: (N, 10, 8) @ (N, 8, 10) and (N, 10, 10) @ (N, 10, 8)
    assert rows["attention"].mult_adds == n * 10 * 10 * 8 + n * 10 * 8 * 10
    assert rows["attention.q"].mult_adds == n * 10 * 8 * 8
    assert rows["head"].mult_adds == n * 10 * 8 * 2 and rows["embed"].mult_adds == 0
    assert stats.total_mult_adds == sum(info.mult_adds for info in stats.summary_list)
    assert stats.total_params == sum(p.numel() for p in model.parameters())
    assert stats.input_size == [[n, 4, 5, 5], [n, 10]]
    assert stats.total_input == n * 4 * 5 * 5 * 4 + n * 10 * 8
    assert rows["attention"].children_mult_adds == 2 * n * 10 * 8 * 8


def test_summary_leaves_the_model_as_it_was_and_counts_a_shared_layer_once():
    from minigrad.ops.linalg import MatMul

    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    model.train()
    before = {k: np.array(v) for k, v in model.state_dict().items()}
    stats = summary(model, input_data=mg.randn(2, 4), verbose=0)
    assert model.training and not model._forward_hooks and not shared._forward_pre_hooks
    assert "apply" not in MatMul.__dict__  # the counting wrapper is gone
    assert all(np.array_equal(np.asarray(v), before[k]) for k, v in model.state_dict().items())
    assert stats.total_params == 20
    calls = [info for info in stats.summary_list if info.class_name == "Linear"]
    assert [c.num_params for c in calls] == [20, 0]  # the second call adds no parameters
    assert [c.mult_adds for c in calls] == [2 * 16, 2 * 16]  # but it computes again
    assert stats.total_output_bytes == 2 * 3 * (2 * 4 * 4)  # three leaf outputs, kept twice


def test_summary_depth_folds_the_rows_below_it():
    stats = summary(resnet18(), input_size=(1, 3, 64, 64), depth=1, verbose=0)
    text = str(stats)
    assert "layer1.0" not in text and "(layer4)" in text
    layer4 = next(i for i in stats.summary_list if i.name == "layer4")
    assert f"{layer4.children_mult_adds:,}" in text and layer4.children_mult_adds > 0


def test_summary_errors_name_the_problem():
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="summary: give input_size .* or input_data"):
        summary(model, verbose=0)
    with pytest.raises(ValueError, match=r"summary: input_size \(3, 0\)"):
        summary(model, input_size=(3, 0), verbose=0)
    with pytest.raises(ValueError, match="summary: 2 dtypes for 1 inputs"):
        summary(model, input_size=(1, 3), dtypes=[mg.float32, mg.float32], verbose=0)
    with pytest.raises(TypeError, match="summary: expected a minigrad nn.Module"):
        summary(lambda x: x, input_size=(1, 3), verbose=0)
    with pytest.raises(TypeError, match="summary: input_data must be minigrad Tensors"):
        summary(model, input_data=np.ones((1, 3)), verbose=0)
    with pytest.raises(ValueError, match="Linear"):  # the model's own error comes through
        summary(model, input_size=(1, 4), verbose=0)
    assert not model._forward_hooks


def test_summary_of_a_densenet_matches_torchvisions_figure():
    stats = summary(densenet121(), input_size=(1, 3, 224, 224), depth=1, verbose=0)
    assert stats.total_params == 7_978_856
    assert math.isclose(stats.total_mult_adds / 1e9, 2.83, abs_tol=0.005)  # torchvision: 2.83


@pytest.mark.parametrize("device", DEVICES)
def test_summary_makes_its_inputs_where_the_model_is(device):
    seen = []
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)).to(device)
    model[0].register_forward_hook(lambda m, args, out: seen.append(args[0].device))
    stats = summary(model, input_size=(2, 3, 8, 8), verbose=0)
    assert str(seen[0]) == str(model[2].weight.device)
    assert stats.total_mult_adds == 2 * 6 * 6 * 4 * 3 * 9 + 2 * 144 * 2
    stats = summary(model.double(), input_size=(2, 3, 8, 8), dtypes=[mg.float64], device=device,
                    verbose=0)
    assert stats.total_input == 2 * 3 * 8 * 8 * 8  # float64 inputs, as asked
