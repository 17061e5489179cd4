"""`minigrad.data`: datasets, the DataLoader, transforms, splits, MNIST/Fashion-MNIST,
CIFAR-10/CIFAR-100, VOC."""

from minigrad.data import joint, transforms
from minigrad.data.cifar import CIFAR10, CIFAR100, make_synthetic_cifar
from minigrad.data.dataset import Dataset, Subset, TensorDataset, random_split
from minigrad.data.loader import DataLoader, WorkerInfo, default_collate, get_worker_info
from minigrad.data.mnist import MNIST, FashionMNIST, read_idx
from minigrad.data.splits import KFold
from minigrad.data.voc import (
    VOC_CLASSES,
    VOCClassification,
    VOCSegmentation,
    download_voc,
    make_synthetic_voc,
)
