"""`minigrad.optim`: optimizers and learning-rate schedules, step for step as torch.optim."""

from minigrad.optim import lr_scheduler
from minigrad.optim.adam import Adam, AdamW
from minigrad.optim.adam_variants import Adamax, NAdam, RAdam
from minigrad.optim.adaptive import Adadelta, Adagrad, RMSprop
from minigrad.optim.lbfgs import LBFGS
from minigrad.optim.optimizer import Optimizer
from minigrad.optim.sgd import SGD
