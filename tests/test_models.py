"""The perceptron's rule by hand; LeNet5 and VGG16 against torch models of the same layout."""

from __future__ import annotations

import tracemalloc
import zipfile

import numpy as np
import pytest
from helpers import requires_torch, torch

import minigrad as mg
from minigrad import nn
from minigrad.models import (
    LeNet5,
    Perceptron,
    freeze_features,
    load_pretrained,
    replace_head,
    vgg16,
)

NICE_DAY_X = [[1, 1], [0, 1], [1, 0], [0, 0]]
NICE_DAY_Y = [0, 0, 0, 1]

# Worked by hand with delta = lr (y - h), w_i += x_i delta, h = [w . (1, x1, x2) >= 0]:
# (pattern, windy, cloudy, target, w0, w_windy, w_cloudy, h(x), delta)
NICE_DAY_BY_HAND = [
    (1, 1, 1, 0, 1, 1, 1, 1, -1),  # 1 + 1 + 1 = 3 >= 0: wrong, every weight - 1
    (2, 0, 1, 0, 0, 0, 0, 1, -1),  # 0 >= 0: wrong; w_windy keeps 0, its input was 0
    (3, 1, 0, 0, -1, 0, -1, 0, 0),  # -1 + 0 = -1: right
    (4, 0, 0, 1, -1, 0, -1, 0, 1),  # -1: wrong, only w0 (input 1) moves
    (1, 1, 1, 0, 0, 0, -1, 0, 0),
    (2, 0, 1, 0, 0, 0, -1, 0, 0),
    (3, 1, 0, 0, 0, 0, -1, 1, -1),  # 0 + 0 = 0 >= 0: wrong
    (4, 0, 0, 1, -1, -1, -1, 0, 1),
    (1, 1, 1, 0, 0, -1, -1, 0, 0),  # third pass: nothing changes
    (2, 0, 1, 0, 0, -1, -1, 0, 0),
    (3, 1, 0, 0, 0, -1, -1, 0, 0),
    (4, 0, 0, 1, 0, -1, -1, 1, 0),
]


def test_perceptron_history_on_the_nice_day_table_is_the_rule_by_hand():
    perceptron = Perceptron(2, lr=1.0, weights=[1, 1, 1])
    history = perceptron.fit(NICE_DAY_X, NICE_DAY_Y)
    rows = [(s.pattern, *s.inputs, s.target, *s.weights, s.output, s.delta) for s in history]
    assert rows == NICE_DAY_BY_HAND
    assert perceptron.converged and perceptron.epochs == 3
    assert perceptron.weights.tolist() == [0, -1, -1]
    assert perceptron.predict(NICE_DAY_X).tolist() == NICE_DAY_Y


def test_perceptron_cannot_learn_xor():
    perceptron = Perceptron(2)
    history = perceptron.fit([[0, 0], [0, 1], [1, 0], [1, 1]], [0, 1, 1, 0], max_epochs=50)
    assert not perceptron.converged and perceptron.epochs == 50 and len(history) == 200
    assert perceptron.predict([[0, 0], [0, 1], [1, 0], [1, 1]]).tolist() != [0, 1, 1, 0]


def test_perceptron_learns_and_with_a_learning_rate():
    perceptron = Perceptron(2, lr=0.5)
    perceptron.fit([[0, 0], [0, 1], [1, 0], [1, 1]], [0, 0, 0, 1])
    assert perceptron.converged
    assert perceptron.predict([[0, 0], [0, 1], [1, 0], [1, 1]]).tolist() == [0, 0, 0, 1]
    with pytest.raises(ValueError, match="expected 3 weights"):
        Perceptron(2, weights=[1, 2])
    with pytest.raises(ValueError, match="targets must be"):
        Perceptron(2).fit([[0, 0]], [2])


def torch_lenet5():
    tnn = torch().nn
    model = tnn.Module()
    model.features = tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
                                    tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2))
    model.classifier = tnn.Sequential(tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(),
                                      tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))
    model.forward = lambda x: model.classifier(model.features(x))
    return model


def torch_vgg16(width_mult: float, num_classes: int, batch_norm: bool = False):
    """torchvision's vgg16 layout, written with torch.nn (torchvision is not installed here)."""
    tnn = torch().nn
    layers, channels = [], 3
    for item in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                 512, 512, 512, "M"):
        if item == "M":
            layers.append(tnn.MaxPool2d(2, 2))
            continue
        width = round(item * width_mult)
        layers += [tnn.Conv2d(channels, width, 3, padding=1)]
        layers += [tnn.BatchNorm2d(width)] if batch_norm else []
        layers += [tnn.ReLU(True)]
        channels = width
    hidden = round(4096 * width_mult)
    model = tnn.Module()
    model.features = tnn.Sequential(*layers)
    model.avgpool = tnn.AdaptiveAvgPool2d((7, 7))
    model.classifier = tnn.Sequential(
        tnn.Linear(channels * 49, hidden), tnn.ReLU(True), tnn.Dropout(),
        tnn.Linear(hidden, hidden), tnn.ReLU(True), tnn.Dropout(), tnn.Linear(hidden, num_classes))
    model.forward = lambda x: model.classifier(torch().flatten(model.avgpool(model.features(x)), 1))
    return model


def test_lenet5_shapes_and_parameter_count():
    model = LeNet5()
    assert model(mg.randn(3, 1, 28, 28)).shape == (3, 10)
    assert LeNet5(num_classes=4)(mg.randn(2, 1, 28, 28)).shape == (2, 4)
    assert sum(p.numel() for p in model.parameters()) == 61706
    with pytest.raises(ValueError, match=r"LeNet5: expected images of shape \(N, 1, 28, 28\)"):
        model(mg.randn(2, 1, 32, 32))


@requires_torch
def test_lenet5_loads_a_torch_state_dict_and_gives_its_logits():
    theirs = torch_lenet5().double()
    ours = LeNet5().double()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28))
    np.testing.assert_allclose(ours(mg.tensor(x)).numpy(),
                               theirs(torch().tensor(x)).detach().numpy(), rtol=1e-10)


def test_vgg16_has_torchvision_s_parameter_count_and_names():
    model = vgg16()
    # torchvision.models.vgg16(): 138,357,544 parameters
    assert sum(p.numel() for p in model.parameters()) == 138_357_544
    names = list(model.state_dict())
    assert names[:2] == ["features.0.weight", "features.0.bias"]
    assert names[-6:] == ["classifier.0.weight", "classifier.0.bias", "classifier.3.weight",
                          "classifier.3.bias", "classifier.6.weight", "classifier.6.bias"]
    assert len([n for n in names if n.startswith("features") and n.endswith("weight")]) == 13
    assert model.classifier[0].weight.shape == (4096, 25088)


@requires_torch
@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg16_loads_a_torch_state_dict_and_gives_its_logits(batch_norm):
    theirs = torch_vgg16(0.125, 20, batch_norm).double().eval()
    ours = vgg16(num_classes=20, width_mult=0.125, batch_norm=batch_norm).double().eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for size in (32, 64):  # 32 reaches 1x1 before the adaptive pool, 64 reaches 2x2
        x = np.random.default_rng(size).standard_normal((2, 3, size, size))
        np.testing.assert_allclose(ours(mg.tensor(x)).numpy(),
                                   theirs(torch().tensor(x)).detach().numpy(), rtol=1e-8,
                                   atol=1e-12)


@requires_torch
def test_pretrained_weights_load_from_npz_and_pth_then_head_and_freezing(tmp_path):
    t = torch()
    theirs = torch_vgg16(0.125, 1000)
    state = {k: v.numpy() for k, v in theirs.state_dict().items()}
    np.savez(tmp_path / "vgg16.npz", **state)
    t.save(theirs.state_dict(), tmp_path / "vgg16.pth")
    for path in (tmp_path / "vgg16.npz", tmp_path / "vgg16.pth"):
        model = vgg16(width_mult=0.125)
        load_pretrained(model, path)
        np.testing.assert_array_equal(model.features[0].weight.numpy(), state["features.0.weight"])
    replace_head(model, 20)
    freeze_features(model)
    assert model.classifier[6].weight.shape == (20, 512)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("classifier") for n in trainable)
    model(mg.randn(2, 3, 32, 32)).sum().backward()
    assert model.features[0].weight.grad is None and model.classifier[6].weight.grad is not None


class _NotATensor:
    pass


@requires_torch
def test_load_pretrained_reads_every_form_of_weights_file(tmp_path):
    t = torch()
    theirs = torch_vgg16(0.125, 1000)
    state = {k: v.numpy() for k, v in theirs.state_dict().items()}
    mg.save(state, tmp_path / "bare.npz")  # a state_dict saved by minigrad
    mg.save({"model": state, "epoch": 3, "history": []}, tmp_path / "last.npz")  # fit's
    t.save({"state_dict": theirs.state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
    t.save({"model": theirs.state_dict()}, tmp_path / "model.pt")
    t.save({k: v.to(t.bfloat16) for k, v in theirs.state_dict().items()}, tmp_path / "bf16.pth")
    np.savez(tmp_path / "named-anything.weights", **state)  # found by content, not suffix
    for name in ("bare.npz", "last.npz", "wrapped.pth", "model.pt", "bf16.pth",
                 "named-anything.weights.npz"):
        model = vgg16(width_mult=0.125)
        load_pretrained(model, tmp_path / name)
        expected = state["features.0.weight"]
        if name == "bf16.pth":
            expected = theirs.features[0].weight.detach().to(t.bfloat16).float().numpy()
        np.testing.assert_array_equal(model.features[0].weight.numpy(), expected, err_msg=name)


@requires_torch
def test_load_pretrained_errors_name_the_file_and_never_suggest_unpickling(tmp_path):
    t = torch()
    model = vgg16(width_mult=0.125)
    text = tmp_path / "weights.pth"
    text.write_text("these are not weights\n")
    with pytest.raises(mg.CheckpointError, match=r"load_pretrained: .*weights.pth is not a "
                                                 r"PyTorch weights file, an .npz file or a "
                                                 r"minigrad checkpoint"):
        load_pretrained(model, text)
    evil = tmp_path / "evil.pth"
    t.save({"features.0.weight": t.zeros(1), "config": _NotATensor()}, evil)
    with pytest.raises(mg.CheckpointError) as caught:
        load_pretrained(model, evil)
    message = str(caught.value)
    assert str(evil) in message and "never unpickles" in message
    assert "weights_only=False" not in message
    extra = tmp_path / "extra.pth"
    t.save({"features.0.weight": t.zeros(1), "epoch": 3}, extra)
    with pytest.raises(mg.CheckpointError, match="extra.pth: entry 'epoch' is a int"):
        load_pretrained(model, extra)
    with pytest.raises(FileNotFoundError, match="load_pretrained: no such file: .*absent.npz"):
        load_pretrained(model, tmp_path / "absent.npz")
    listed = tmp_path / "list.npz"
    mg.save([np.ones(2)], listed)
    with pytest.raises(mg.CheckpointError, match="list.npz is a minigrad checkpoint, but of a "
                                                 "list"):
        load_pretrained(model, listed)
    odd = tmp_path / "float8.pth"
    t.save({"features.0.weight": t.zeros(2).to(t.float8_e4m3fn)}, odd)
    with pytest.raises(mg.CheckpointError, match=r"float8.pth: entry 'features.0.weight' "
                                                 r"\(torch.float8_e4m3fn.*cannot become a NumPy"):
        load_pretrained(model, odd)
    small = tmp_path / "small.npz"
    np.savez(small, **{"features.0.weight": np.zeros((3, 3, 3, 3))})
    with pytest.raises(RuntimeError, match=r"load_pretrained: .*small.npz: Error\(s\) in "
                                           r"loading state_dict(.|\n)*size mismatch"):
        load_pretrained(model, small)


def test_load_pretrained_reads_only_the_members_the_model_names(tmp_path):
    model = nn.Sequential(nn.Linear(2, 1))
    path = tmp_path / "w.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in (("0.weight", np.ones((1, 2))), ("0.bias", np.ones(1)),
                            ("hidden", np.zeros(2**26, dtype=np.float32))):
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array)
    tracemalloc.start()
    try:
        with pytest.raises(RuntimeError, match="Unexpected key.*hidden"):
            load_pretrained(model, path)
        result = load_pretrained(model, path, strict=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.unexpected_keys == ["hidden"] and peak < 16 * 2**20
    assert model[0].weight.tolist() == [[1.0, 1.0]]


def torch_resnet(layers, num_classes=1000):
    """torchvision's ResNet with BasicBlock, written out with torch.nn (torchvision is not a
    dependency): the same modules under the same names."""
    tnn = torch().nn

    class Block(tnn.Module):
        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.relu = tnn.ReLU(inplace=True)
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.inplanes = 64
            self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.relu = tnn.ReLU(inplace=True)
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            self.layer1 = self.make(64, layers[0])
            self.layer2 = self.make(128, layers[1], 2)
            self.layer3 = self.make(256, layers[2], 2)
            self.layer4 = self.make(512, layers[3], 2)
            self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
            self.fc = tnn.Linear(512, num_classes)

        def make(self, planes, blocks, stride=1):
            down = None
            if stride != 1 or self.inplanes != planes:
                down = tnn.Sequential(tnn.Conv2d(self.inplanes, planes, 1, stride, bias=False),
                                      tnn.BatchNorm2d(planes))
            out = [Block(self.inplanes, planes, stride, down)]
            self.inplanes = planes
            return tnn.Sequential(*out, *[Block(planes, planes) for _ in range(1, blocks)])

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch().flatten(self.avgpool(x), 1))

    return Net()


@requires_torch
def test_resnet18_loads_torchvision_names_and_gives_its_logits_in_float32(tmp_path):
    from minigrad.models import resnet18, resnet34

    t = torch()
    t.manual_seed(0)
    theirs = torch_resnet([2, 2, 2, 2])
    with t.no_grad():  # running statistics that are not the identity
        for module in theirs.modules():
            if isinstance(module, t.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
    theirs.eval()
    ours = resnet18()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert sum(p.numel() for p in ours.parameters()) == 11_689_512  # torchvision's count
    t.save(theirs.state_dict(), tmp_path / "resnet18.pth")
    load_pretrained(ours, tmp_path / "resnet18.pth")
    ours.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(ours(mg.tensor(x)).numpy(), theirs(t.tensor(x)).detach().numpy(),
                               atol=1e-4, rtol=1e-4)
    assert list(resnet34().state_dict()) == list(torch_resnet([3, 4, 6, 3]).state_dict())


def test_unet_gives_a_score_map_of_the_input_size_and_its_gradients_reach_every_layer():
    from minigrad.models import unet

    mg.manual_seed(0)
    model = unet(num_classes=5, width=4, depth=3)
    for size in [(32, 32), (37, 45)]:
        x = mg.randn(2, 3, *size)
        out = model(x)
        assert out.shape == (2, 5, *size)
    out.sum().backward()
    assert all(p.grad is not None and np.abs(p.grad.numpy()).sum() > 0
               for name, p in model.named_parameters()), "a layer got no gradient"
    with pytest.raises(ValueError, match="too small for depth 3"):
        model(mg.randn(1, 3, 4, 4))
