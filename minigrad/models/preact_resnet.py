"""Pre-activation ResNet-18/34 for 32x32 images (He et al., 2016, "Identity Mappings in Deep
Residual Networks"), and the original ResNet-18/34 laid out for 32x32 images beside them, so
that the two compare fairly.

The original block (models/resnet.py) ends with a relu after the addition:
    out = relu(BN(conv(relu(BN(conv(x))))) + shortcut(x))
so the signal from one block to the next passes through a relu. The pre-activation block
moves BN and relu before each convolution and adds nothing after the sum:
    out = conv(relu(BN(conv(relu(BN(x)))))) + shortcut(relu(BN(x)))
and x reaches the last block, and the gradient the first, through additions alone. The
shortcut is x itself, or a 1x1 convolution where the block halves the size (stride 2) or
widens the channels; it reads the block's pre-activated input, as in the paper. As the
signal is never normalised after the last sum, the network ends with BN -> relu before the
pooling.

For 32x32 inputs (CIFAR-10) both networks start with one 3x3 convolution (no 7x7/2 and no
max pool, which would leave 8x8 maps for the first stage); the stages give 32, 16, 8 and 4
pixels.
"""

from __future__ import annotations

from minigrad import checks, nn
from minigrad.models.resnet import BasicBlock
from minigrad.nn import functional as F
from minigrad.tensor import Tensor


class PreActBlock(nn.Module):
    """BN -> relu -> conv3x3 -> BN -> relu -> conv3x3, plus the shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """conv3x3 -> four stages of pre-activation blocks (64, 128, 256, 512 channels; each
    after the first halves the size) -> BN -> relu -> global average pool -> fc."""

    def __init__(self, layers: list[int], num_classes: int = 10, width_mult: float = 1.0):
        super().__init__()
        checks.integer("PreActResNet", "num_classes", num_classes, minimum=1)
        checks.number("PreActResNet", "width_mult", width_mult, low=0, low_open=True)
        widths = [max(1, int(round(w * width_mult))) for w in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        in_planes = widths[0]
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            stage = [PreActBlock(in_planes, planes, stride)]
            stage += [PreActBlock(planes, planes) for _ in range(1, blocks)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            in_planes = planes
        self.bn = nn.BatchNorm2d(in_planes)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_planes, num_classes)
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"PreActResNet: expected images (N, 3, H, W), got shape {x.shape}")
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        return self.fc(self.avgpool(out).flatten(1))


class CifarResNet(nn.Module):
    """The original ResNet (models/resnet.py's BasicBlock, torchvision's names) with a 3x3
    stem for 32x32 images: conv3x3 -> BN -> relu -> four stages -> pool -> fc."""

    def __init__(self, layers: list[int], num_classes: int = 10, width_mult: float = 1.0):
        super().__init__()
        checks.integer("CifarResNet", "num_classes", num_classes, minimum=1)
        checks.number("CifarResNet", "width_mult", width_mult, low=0, low_open=True)
        widths = [max(1, int(round(w * width_mult))) for w in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        in_planes = widths[0]
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or in_planes != planes:
                downsample = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes))
            stage = [BasicBlock(in_planes, planes, stride, downsample)]
            stage += [BasicBlock(planes, planes) for _ in range(1, blocks)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            in_planes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_planes, num_classes)
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"CifarResNet: expected images (N, 3, H, W), got shape {x.shape}")
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(self.avgpool(out).flatten(1))


def _init(model: nn.Module) -> None:
    for module in model.modules():  # as torchvision's ResNet
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def preact_resnet18(num_classes: int = 10, width_mult: float = 1.0) -> PreActResNet:
    return PreActResNet([2, 2, 2, 2], num_classes, width_mult)


def preact_resnet34(num_classes: int = 10, width_mult: float = 1.0) -> PreActResNet:
    return PreActResNet([3, 4, 6, 3], num_classes, width_mult)


def cifar_resnet18(num_classes: int = 10, width_mult: float = 1.0) -> CifarResNet:
    return CifarResNet([2, 2, 2, 2], num_classes, width_mult)


def cifar_resnet34(num_classes: int = 10, width_mult: float = 1.0) -> CifarResNet:
    return CifarResNet([3, 4, 6, 3], num_classes, width_mult)
