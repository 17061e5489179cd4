"""`minigrad.models`: the Rosenblatt perceptron, LeNet5 and VGG16 (configuration D)."""

from minigrad.models.lenet import LeNet5
from minigrad.models.perceptron import Perceptron, Step
from minigrad.models.vgg import VGG, freeze_features, load_pretrained, replace_head, vgg16
