"""VGG16: configuration D of Simonyan & Zisserman, "Very Deep Convolutional Networks for
Large-Scale Image Recognition" (2015), laid out and named as torchvision's `vgg16`, so that its
weights load for transfer learning.

    features:   13 conv 3x3 (padding 1) + ReLU in blocks of 2-2-3-3-3 with 64-128-256-512-512
                channels, a 2x2 max pool after each block     224x224 -> 7x7
    avgpool:    AdaptiveAvgPool2d((7, 7)), so that smaller inputs also reach 7x7
    classifier: FC-4096, ReLU, Dropout, FC-4096, ReLU, Dropout, FC-num_classes
"""

from __future__ import annotations

from minigrad import checks, nn
from minigrad.serialization import read_state_dict

# configuration D: channels of each conv, "M" for a max pool
CONFIG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    def __init__(self, config=CONFIG_D, num_classes: int = 1000, batch_norm: bool = False,
                 dropout: float = 0.5, width_mult: float = 1.0):
        super().__init__()
        checks.integer("VGG", "num_classes", num_classes, minimum=1)
        checks.number("VGG", "width_mult", width_mult, low=0, low_open=True)
        layers, channels = [], 3
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            width = max(1, round(item * width_mult))
            layers.append(nn.Conv2d(channels, width, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU())
            channels = width
        hidden = max(1, round(4096 * width_mult))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(channels * 7 * 7, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        self._initialize()

    def _initialize(self) -> None:
        """torchvision's initialisation: He (fan_out) for convs, N(0, 0.01) for the FCs."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG: expected RGB images of shape (N, 3, H, W), got {x.shape}")
        if min(x.shape[2:]) < 32:
            raise ValueError(f"VGG: images must be at least 32x32 (five 2x2 poolings), got "
                             f"{x.shape[2:]}")
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def vgg16(num_classes: int = 1000, batch_norm: bool = False, dropout: float = 0.5,
          width_mult: float = 1.0) -> VGG:
    """VGG16 (configuration D); width_mult scales every channel count (for CPU smoke runs)."""
    return VGG(CONFIG_D, num_classes, batch_norm, dropout, width_mult)


def load_pretrained(model: nn.Module, path, strict: bool = True):
    """Load torchvision-named weights into `model` from an .npz (name -> array, e.g. a torch
    state_dict exported with np.savez), a checkpoint of `mg.save` (a state_dict, or the
    "model" of a training checkpoint such as runs/vgg16_voc/best.npz or last.npz), or a
    PyTorch .pth state_dict (also wrapped as {"state_dict": ...} or {"model": ...}; reading
    it needs torch, and never unpickles anything but tensors). Errors name the file."""
    wanted = set(model.state_dict())
    if hasattr(model, "old_key_names"):  # DenseNet: torchvision's old names load too
        wanted |= model.old_key_names()
    state = read_state_dict(path, wanted=wanted, who="load_pretrained")
    try:
        return model.load_state_dict(state, strict=strict)
    except RuntimeError as error:
        raise RuntimeError(f"load_pretrained: {path}: {error}") from None


def freeze_features(model: VGG) -> VGG:
    """Transfer learning: the convolutional features stop learning; only the head trains."""
    model.features.requires_grad_(False)
    return model


def replace_head(model: VGG, num_classes: int) -> VGG:
    """A new last layer for `num_classes` outputs, freshly initialised (fine-tuning starts here)."""
    old = model.classifier[6]
    head = nn.Linear(old.in_features, num_classes)
    nn.init.normal_(head.weight, 0.0, 0.01)
    nn.init.zeros_(head.bias)
    model.classifier[6] = head
    return model


class CifarVGG(nn.Module):
    """VGG16's 13 convolutions (configuration D) for 32x32 images, as CIFAR studies use it:
    BN after each conv (by default), five poolings leave 1x1x512, and one linear layer
    classifies (no 4096-wide layers: at 32x32 they would hold 90% of the parameters)."""

    def __init__(self, num_classes: int = 10, batch_norm: bool = True, width_mult: float = 1.0):
        super().__init__()
        checks.integer("CifarVGG", "num_classes", num_classes, minimum=1)
        vgg = VGG(CONFIG_D, num_classes, batch_norm, width_mult=width_mult)
        self.features = vgg.features  # (and its initialisation)
        self.classifier = nn.Linear(_last_width(vgg.features), num_classes)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != (32, 32):
            raise ValueError(f"CifarVGG: expected images (N, 3, 32, 32), got shape {x.shape}")
        return self.classifier(self.features(x).flatten(1))


def _last_width(features: nn.Sequential) -> int:
    return [m for m in features if isinstance(m, nn.Conv2d)][-1].out_channels


def cifar_vgg16(num_classes: int = 10, batch_norm: bool = True,
                width_mult: float = 1.0) -> CifarVGG:
    return CifarVGG(num_classes, batch_norm, width_mult)
