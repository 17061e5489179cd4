"""`minigrad.models`: the Rosenblatt perceptron, LeNet5, VGG16 (configuration D),
ResNet-18/34, DenseNet-121/161/169/201, pre-activation ResNet-18/34 and U-Net."""

from minigrad.models.densenet import (
    DenseNet,
    densenet121,
    densenet161,
    densenet169,
    densenet201,
)
from minigrad.models.lenet import LeNet5
from minigrad.models.perceptron import Perceptron, Step
from minigrad.models.preact_resnet import (
    CifarResNet,
    PreActBlock,
    PreActResNet,
    cifar_resnet18,
    cifar_resnet34,
    preact_resnet18,
    preact_resnet34,
)
from minigrad.models.resnet import BasicBlock, ResNet, replace_fc, resnet18, resnet34
from minigrad.models.unet import UNet, unet
from minigrad.models.vgg import (
    VGG,
    CifarVGG,
    cifar_vgg16,
    freeze_features,
    load_pretrained,
    replace_head,
    vgg16,
)
