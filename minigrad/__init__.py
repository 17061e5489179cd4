"""minigrad: a deep-learning engine written from scratch on NumPy (CPU) and CuPy (CUDA GPU).

    import minigrad as mg
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    x.grad  # tensor([2., 4., 6.])
"""

import os as _os
import sys as _sys

# Before NumPy loads OpenBLAS: OpenBLAS's worker threads spin for about 0.1 s after each GEMM
# (2^28 cycles), on the cores that the CPU kernels' own threads and the next ops need; on two
# cores that made a U-Net step 1.6x slower. With 2^14 cycles (a few microseconds) they sleep
# at once. Only when minigrad is imported before NumPy and the user has not set it.
if "numpy" not in _sys.modules:
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "14")

from minigrad import (
    accelerator,
    amp,
    backends,
    compression,
    cuda,
    data,
    kernels,
    metrics,
    models,
    nn,
    ops,
    optim,
    quantization,
    training,
    utils,
    viz,
)
from minigrad.amp import autocast
from minigrad.autograd import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from minigrad.autograd import functional as _functional  # noqa: F401  mg.autograd.functional
from minigrad.backend import (
    Device,
    bfloat16,
    bool_,
    float16,
    float32,
    float64,
    get_default_device,
    get_default_dtype,
    get_float32_matmul_precision,
    int8,
    int16,
    int32,
    int64,
    manual_seed,
    set_default_device,
    set_default_dtype,
    set_float32_matmul_precision,
    uint8,
)
from minigrad.gradcheck import GradcheckError, gradcheck, gradgradcheck
from minigrad.ops import (
    abs,
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    argsort,
    bmm,
    cat,
    chunk,
    clamp,
    clone,
    cos,
    cumsum,
    diag,
    erf,
    exp,
    flatten,
    flip,
    gather,
    index_add,
    index_select,
    log,
    log1p,
    log_softmax,
    logsumexp,
    masked_fill,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mm,
    movedim,
    norm,
    permute,
    prod,
    relu,
    remainder,
    repeat,
    reshape,
    roll,
    scatter,
    scatter_add,
    sigmoid,
    sign,
    sin,
    softmax,
    sort,
    split,
    sqrt,
    squeeze,
    stack,
    std,
    sum,
    tanh,
    topk,
    transpose,
    tril,
    triu,
    unfold,
    unsqueeze,
    var,
    where,
)
from minigrad.quantization import qint8, quint8  # noqa: F401
from minigrad.serialization import CheckpointError, load, save
from minigrad.tensor import (
    Size,
    Tensor,
    arange,
    as_tensor,
    empty,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)

device = Device
bool = bool_  # noqa: A001 - PyTorch's name: minigrad.bool
long = int64
float = float32  # noqa: A001 - PyTorch's name: minigrad.float
double = float64
half = float16

__version__ = "0.1.0"
