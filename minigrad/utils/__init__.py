"""`minigrad.utils.data` is `minigrad.data` under PyTorch's name (`torch.utils.data`), so that
`from minigrad.utils.data import DataLoader, Dataset` works in code ported from PyTorch."""

import sys

from minigrad import data

sys.modules[__name__ + ".data"] = data
