"""DenseNet-121/161/169/201 (Huang et al., 2017) with torchvision's layout and names, so that
torchvision's weights load as they are (`load_pretrained`, also with the old key names) and
give its logits.

A ResNet adds a block's output to its input; a DenseNet concatenates. Inside a dense block,
layer i sees the feature maps of the block's input and of every layer before it, and adds
`growth_rate` new maps of its own:
    x_i = H_i(cat(x_0, x_1, ..., x_{i-1})),  H = BN -> relu -> conv1x1 -> BN -> relu -> conv3x3
(the 1x1 "bottleneck" first narrows the growing input to bn_size * growth_rate maps). Between
blocks a transition (BN -> relu -> conv1x1 -> avg pool 2x2) halves the maps and the size.
Every layer reaches the loss through short paths, and features are reused rather than
relearned, so a DenseNet-121 has 8.0 M parameters to a ResNet-50's 25.6 M.

torchvision's `memory_efficient=True` recomputes each bottleneck in the backward to save
memory (checkpointing); minigrad accepts the argument and ignores it: the result and the
gradients are the same, only the memory differs.
"""

from __future__ import annotations

import re
from collections import OrderedDict

from minigrad import checks, nn
from minigrad.nn import functional as F
from minigrad.ops.shape import cat
from minigrad.tensor import Tensor


class _DenseLayer(nn.Module):
    """BN -> relu -> conv1x1 (to bn_size * growth_rate maps) -> BN -> relu -> conv3x3 (to
    growth_rate maps), on the concatenation of all the maps before it."""

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int,
                 drop_rate: float, memory_efficient: bool = False):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient  # accepted, ignored (module docstring)

    def forward(self, features) -> Tensor:
        x = cat(list(features), 1) if isinstance(features, (list, tuple)) else features
        bottleneck = self.conv1(self.relu1(self.norm1(x)))
        new = self.conv2(self.relu2(self.norm2(bottleneck)))
        if self.drop_rate > 0:
            new = F.dropout(new, p=self.drop_rate, training=self.training)
        return new


class _DenseBlock(nn.ModuleDict):
    """num_layers dense layers, `denselayer1`...; the output is the input's maps followed by
    every layer's new ones: num_input_features + num_layers * growth_rate maps."""

    def __init__(self, num_layers: int, num_input_features: int, bn_size: int,
                 growth_rate: int, drop_rate: float, memory_efficient: bool = False):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", _DenseLayer(
                num_input_features + i * growth_rate, growth_rate, bn_size, drop_rate,
                memory_efficient))

    def forward(self, init_features: Tensor) -> Tensor:
        features = [init_features]
        for _, layer in self.items():
            features.append(layer(features))
        return cat(features, 1)


class _Transition(nn.Sequential):
    """BN -> relu -> conv1x1 (halving the maps) -> avg pool 2x2 (halving the size)."""

    def __init__(self, num_input_features: int, num_output_features: int):
        super().__init__(OrderedDict([
            ("norm", nn.BatchNorm2d(num_input_features)),
            ("relu", nn.ReLU(inplace=True)),
            ("conv", nn.Conv2d(num_input_features, num_output_features, 1, bias=False)),
            ("pool", nn.AvgPool2d(2, stride=2)),
        ]))


class DenseNet(nn.Module):
    """conv 7x7/2 -> BN -> relu -> max pool 3x3/2 -> dense blocks with transitions between
    them -> BN -> relu -> global average pool -> classifier (torchvision's DenseNet)."""

    def __init__(self, growth_rate: int = 32, block_config=(6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, drop_rate: float = 0,
                 num_classes: int = 1000, memory_efficient: bool = False):
        super().__init__()
        for name, value in [("growth_rate", growth_rate), ("num_init_features",
                            num_init_features), ("bn_size", bn_size),
                            ("num_classes", num_classes)]:
            checks.integer("DenseNet", name, value, minimum=1)
        checks.number("DenseNet", "drop_rate", drop_rate, low=0, high=1, high_open=True)
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(3, num_init_features, 7, stride=2, padding=3, bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(3, stride=2, padding=1)),
        ]))
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}", _DenseBlock(
                num_layers, num_features, bn_size, growth_rate, drop_rate, memory_efficient))
            num_features += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}",
                                         _Transition(num_features, num_features // 2))
                num_features //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"DenseNet: expected images (N, 3, H, W), got shape {x.shape}")
        out = F.relu(self.features(x))
        out = F.adaptive_avg_pool2d(out, (1, 1))
        return self.classifier(out.flatten(1))

    def load_state_dict(self, state_dict, strict: bool = True):
        """As Module's, and the old key names of torchvision's first DenseNet weights
        (`...denselayer1.norm.1.weight` for `...denselayer1.norm1.weight`) are renamed first,
        as torchvision does when it loads them."""
        return super().load_state_dict(rename_old_keys(state_dict), strict=strict)

    def old_key_names(self) -> set:
        """The old names of this model's keys (what `load_pretrained` reads too)."""
        return {_NEW_KEY.sub(r"\1.\2", key) for key in self.state_dict()}


_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


_NEW_KEY = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))([12])(?=\.)")


def rename_old_keys(state_dict) -> OrderedDict:
    """`features.denseblock1.denselayer1.norm.1.weight` -> `...norm1.weight`: the names of the
    weights torchvision first published (a module named "norm.1" is not a valid attribute)."""
    renamed = OrderedDict()
    for key, value in state_dict.items():
        match = _OLD_KEY.match(key)
        renamed[match.group(1) + match.group(2) if match else key] = value
    return renamed


def _densenet(growth_rate: int, block_config, num_init_features: int, **kwargs) -> DenseNet:
    return DenseNet(growth_rate, block_config, num_init_features, **kwargs)


def densenet121(num_classes: int = 1000, **kwargs) -> DenseNet:
    """7,978,856 parameters (for 1000 classes), as torchvision's."""
    return _densenet(32, (6, 12, 24, 16), 64, num_classes=num_classes, **kwargs)


def densenet161(num_classes: int = 1000, **kwargs) -> DenseNet:
    return _densenet(48, (6, 12, 36, 24), 96, num_classes=num_classes, **kwargs)


def densenet169(num_classes: int = 1000, **kwargs) -> DenseNet:
    return _densenet(32, (6, 12, 32, 32), 64, num_classes=num_classes, **kwargs)


def densenet201(num_classes: int = 1000, **kwargs) -> DenseNet:
    return _densenet(32, (6, 12, 48, 32), 64, num_classes=num_classes, **kwargs)
