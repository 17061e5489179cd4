"""Making a trained network smaller: low-rank factorization and knowledge distillation.
(Pruning is `nn.utils.prune`, as torch's.)

Low-rank factorization. A Linear layer's weight W (out x in) costs out * in parameters and
multiply-adds per sample. Its singular value decomposition W = U diag(s) V^T, kept to the r
largest singular values, gives W_r = (U_r sqrt(s_r)) (sqrt(s_r) V_r^T): two thinner layers,
in -> r -> out, with r * (in + out) parameters. By the Eckart-Young theorem W_r is the best
rank-r matrix in the Frobenius norm, ||W - W_r||_F^2 = sum of the dropped s_i^2, and at full
rank (r = min(in, out)) it is W itself. A Conv2d's weight (C_out, C_in, kh, kw) is the matrix
(C_out) x (C_in * kh * kw) applied to each patch, so the same split gives a conv of r filters
of the full kernel (the patch -> r numbers) followed by a 1x1 conv (r -> C_out): exact at full
rank too, with the original stride, padding and dilation on the first one.

Distillation (Hinton, Vinyals and Dean, 2015). A small student learns from a big teacher's
softened outputs: the teacher's softmax at temperature T > 1 keeps how alike it finds the
classes ("a 3 looks like an 8"), which one-hot labels do not say. The loss mixes
    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
    + (1 - alpha) * cross_entropy(student, targets)
where T^2 keeps the soft term's gradients at the scale of the hard one's (they shrink as
1/T^2 with the temperature).
"""

from __future__ import annotations

import numpy as np

from minigrad import autograd, nn
from minigrad.nn import functional as F
from minigrad.tensor import Tensor

# ---------------------------------------------------------------------------------------------
# low-rank factorization


def _matrix(module) -> np.ndarray:
    """The layer's weight as the matrix it multiplies by (out x in), in float64."""
    if isinstance(module, nn.Linear):
        return module.weight.numpy().astype(np.float64)
    if isinstance(module, nn.Conv2d):
        if module.groups != 1:
            raise ValueError(f"factorize: {module!r} has groups={module.groups}; only "
                             "groups=1 convolutions are factorized")
        return module.weight.numpy().reshape(module.out_channels, -1).astype(np.float64)
    raise TypeError(f"factorize: expected an nn.Linear or nn.Conv2d, got "
                    f"{type(module).__name__}")


def singular_values(module) -> np.ndarray:
    """The singular values of the layer's weight matrix, largest first."""
    return np.linalg.svd(_matrix(module), compute_uv=False)


def choose_rank(module, *, energy: float | None = None, size: float | None = None) -> int:
    """The rank to factorize `module` at: the smallest keeping `energy` of the squared
    singular values (0 < energy <= 1), or the largest whose two layers hold at most `size`
    times the layer's parameters (0 < size)."""
    if (energy is None) == (size is None):
        raise ValueError("choose_rank: give energy or size, one of the two")
    s = singular_values(module)
    if energy is not None:
        if not 0 < energy <= 1:
            raise ValueError(f"choose_rank: energy must be in (0, 1], got {energy}")
        kept = np.cumsum(s ** 2) / np.sum(s ** 2)
        return int(min(np.searchsorted(kept, energy - 1e-12) + 1, len(s)))
    if not size > 0:
        raise ValueError(f"choose_rank: size must be > 0, got {size}")
    out, inner = _matrix(module).shape
    per_rank = out + inner  # each rank adds a column of U and a row of V^T
    return int(max(1, min(len(s), size * out * inner // per_rank)))


def factorize(module, rank: int) -> nn.Sequential:
    """Two layers whose product is the best rank-`rank` approximation of `module`'s weight
    (truncated SVD): Linear -> Linear(in, rank) + Linear(rank, out); Conv2d -> Conv2d(C_in,
    rank, kernel, stride, padding, dilation) + Conv2d(rank, C_out, 1). The bias goes on the
    second. Exact at full rank, min(out, in)."""
    matrix = _matrix(module)
    full = min(matrix.shape)
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank:
        raise ValueError(f"factorize: rank must be an integer >= 1, got {rank!r}")
    if rank > full:
        raise ValueError(f"factorize: rank {rank} is more than the full rank {full} of "
                         f"{module!r} (weight {tuple(module.weight.shape)})")
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    root = np.sqrt(s[:rank])
    left, right = u[:, :rank] * root, root[:, None] * vt[:rank]  # out x r, r x in
    dtype, device = module.weight.dtype, module.weight.device
    has_bias = module.bias is not None
    if isinstance(module, nn.Linear):
        first = nn.Linear(module.in_features, rank, bias=False)
        second = nn.Linear(rank, module.out_features, bias=has_bias)
        first_w, second_w = right, left
    else:
        first = nn.Conv2d(module.in_channels, rank, module.kernel_size, stride=module.stride,
                          padding=module.padding, dilation=module.dilation, bias=False)
        second = nn.Conv2d(rank, module.out_channels, 1, bias=has_bias)
        first_w = right.reshape(rank, *module.weight.shape[1:])
        second_w = left.reshape(module.out_channels, rank, 1, 1)
    layers = nn.Sequential(first, second).to(device=device, dtype=dtype)
    with autograd.no_grad():
        first.weight.copy_(Tensor(first_w.astype(dtype)).to(device))
        second.weight.copy_(Tensor(second_w.astype(dtype)).to(device))
        if has_bias:
            second.bias.copy_(module.bias)
    return layers


def factorize_model(model, *, energy: float | None = None, size: float | None = None,
                    types=(nn.Linear, nn.Conv2d), skip=()) -> dict:
    """Replace, in place, every layer of `types` in `model` (but the names in `skip`) by its
    factorization at choose_rank(energy=|size=), where that has fewer parameters; returns
    {name: rank} of the layers replaced."""
    replaced = {}
    for name, module in list(model.named_modules()):
        if not isinstance(module, types) or name in skip or not name:
            continue
        if isinstance(module, nn.Conv2d) and module.groups != 1:
            continue
        rank = choose_rank(module, energy=energy, size=size)
        out, inner = _matrix(module).shape
        if rank * (out + inner) >= out * inner:
            continue  # no smaller
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, factorize(module, rank))
        replaced[name] = rank
    return replaced


# ---------------------------------------------------------------------------------------------
# distillation


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, targets: Tensor,
                      T: float = 4.0, alpha: float = 0.9) -> Tensor:
    """Hinton et al.'s loss: alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE.
    The teacher's logits get no gradient."""
    if not T > 0:
        raise ValueError(f"distillation_loss: T must be > 0, got {T}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"distillation_loss: alpha must be in [0, 1], got {alpha}")
    if tuple(student_logits.shape) != tuple(teacher_logits.shape):
        raise ValueError(f"distillation_loss: student logits of shape "
                         f"{tuple(student_logits.shape)} and teacher logits of shape "
                         f"{tuple(teacher_logits.shape)} must match")
    soft_targets = F.softmax(teacher_logits.detach() / T, dim=1)
    soft = F.kl_div(F.log_softmax(student_logits / T, dim=1), soft_targets,
                    reduction="batchmean")
    hard = F.cross_entropy(student_logits, targets)
    return alpha * T * T * soft + (1 - alpha) * hard


class Distiller(nn.Module):
    """A student and its frozen teacher as one model for `fit`: in training its forward
    gives (student logits, teacher logits) for DistillationLoss; in eval mode the student's
    logits alone, so metrics and inference see the student. The teacher stays in eval mode
    and gets no gradients.

        model = Distiller(student, teacher)
        fit(model, SGD(student.parameters(), ...), DistillationLoss(T=4, alpha=0.9), ...)
    """

    def __init__(self, student: nn.Module, teacher: nn.Module):
        super().__init__()
        self.student, self.teacher = student, teacher
        teacher.requires_grad_(False)
        teacher.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, x):
        logits = self.student(x)
        if not self.training:
            return logits
        if self.teacher.training:  # (a parent's train() reaches it directly)
            self.teacher.eval()
        with autograd.no_grad():
            teacher_logits = self.teacher(x)
        return logits, teacher_logits


class DistillationLoss(nn.Module):
    """distillation_loss on a Distiller's (student, teacher) outputs in training, and plain
    cross entropy on the student's logits in evaluation."""

    def __init__(self, T: float = 4.0, alpha: float = 0.9):
        super().__init__()
        distillation_loss(Tensor(np.zeros((1, 2), np.float32)),
                          Tensor(np.zeros((1, 2), np.float32)),
                          Tensor(np.zeros(1, np.int64)), T, alpha)  # (checks T and alpha)
        self.T, self.alpha = T, alpha

    def forward(self, outputs, targets):
        if isinstance(outputs, tuple):
            return distillation_loss(*outputs, targets, self.T, self.alpha)
        return F.cross_entropy(outputs, targets)
