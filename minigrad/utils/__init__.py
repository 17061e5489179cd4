"""`minigrad.utils.data` is `minigrad.data` under PyTorch's name (`torch.utils.data`), so that
`from minigrad.utils.data import DataLoader, Dataset` works in code ported from PyTorch;
`minigrad.utils.summary(model, input_size=...)` is a model's size and cost, layer by layer."""

import sys

from minigrad import data
from minigrad.utils import hooks  # noqa: F401  (minigrad.utils.hooks.RemovableHandle)
from minigrad.utils.summary import ModelStatistics, summary  # noqa: F401

sys.modules[__name__ + ".data"] = data
