"""`minigrad.utils.data` is `minigrad.data` under PyTorch's name (`torch.utils.data`), so that
`from minigrad.utils.data import DataLoader, Dataset` works in code ported from PyTorch."""

import sys

from minigrad import data
from minigrad.utils import hooks  # noqa: F401  (minigrad.utils.hooks.RemovableHandle)

sys.modules[__name__ + ".data"] = data
