"""ResNet-18 and ResNet-34 (He et al., 2015) with torchvision's layout and names, so that
torchvision's weights load as they are (`load_pretrained`) and give its logits.

A residual block learns a correction to its input rather than a whole new map:
    out = relu(F(x) + shortcut(x)),  F = conv3x3 -> BN -> relu -> conv3x3 -> BN
The shortcut is x itself, or a 1x1 convolution + BN (`downsample`) where the block halves
the size (stride 2) or widens the channels. The gradient reaches early layers through the
`+` undiminished, which is what lets 18 or 34 (or 152) layers train.
"""

from __future__ import annotations

from minigrad import checks, nn
from minigrad.tensor import Tensor


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """conv 7x7/2 -> BN -> relu -> max pool 3x3/2 -> four stages of blocks (64, 128, 256, 512
    channels; each after the first halves the size) -> global average pool -> fc."""

    def __init__(self, block: type[BasicBlock], layers: list[int], num_classes: int = 1000,
                 width_mult: float = 1.0):
        super().__init__()
        checks.integer("ResNet", "num_classes", num_classes, minimum=1)
        checks.number("ResNet", "width_mult", width_mult, low=0, low_open=True)
        widths = [max(1, int(round(w * width_mult))) for w in (64, 128, 256, 512)]
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"ResNet: expected images (N, 3, H, W), got shape {x.shape}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(num_classes: int = 1000, width_mult: float = 1.0) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, width_mult)


def resnet34(num_classes: int = 1000, width_mult: float = 1.0) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, width_mult)


def replace_fc(model: ResNet, num_classes: int) -> ResNet:
    """A new last layer for `num_classes` outputs (fine-tuning starts here)."""
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model
