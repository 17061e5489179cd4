"""`minigrad.models`: the Rosenblatt perceptron, LeNet5, VGG16 (configuration D),
ResNet-18/34 and U-Net."""

from minigrad.models.lenet import LeNet5
from minigrad.models.perceptron import Perceptron, Step
from minigrad.models.resnet import BasicBlock, ResNet, replace_fc, resnet18, resnet34
from minigrad.models.unet import UNet, unet
from minigrad.models.vgg import VGG, freeze_features, load_pretrained, replace_head, vgg16
