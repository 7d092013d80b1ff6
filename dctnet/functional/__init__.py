"""Differentiable neural-network ops on NCHW arrays (PyTorch conventions).

Every function takes Tensors or raw NumPy/CuPy arrays and returns a Tensor;
gradients flow to the Tensor arguments with ``requires_grad``.

>>> import numpy as np
>>> from dctnet import Tensor
>>> from dctnet import functional as F
>>> x = Tensor(np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32))
>>> w = Tensor(np.full((4, 3, 3, 3), 0.1, np.float32), requires_grad=True)
>>> loss = F.cross_entropy(F.global_avg_pool(F.relu(F.conv2d(x, w, padding=1))), np.array([0, 3]))
>>> loss.backward()
>>> w.grad.shape
(4, 3, 3, 3)
"""

from .activation import log_softmax, relu
from .conv import conv2d
from .linear import linear
from .loss import accuracy, cross_entropy
from .norm import batch_norm
from .pad import pad
from .pooling import avg_pool2d, global_avg_pool, max_pool2d
from .block_dct import block_dct, block_idct
from .carried import CarriedDCT, as_coefficients, carry
from .dct_conv import dct_conv2d, explode_kernel
from .dct_norm import dct_batch_norm, dct_normalize
from .dct_pool import dct_global_avg_pool, dct_max_pool2d
from .dct_activation import apx_relu, asm_relu, dct_relu
from .soft_quant import soft_quantize

__all__ = [
    "conv2d", "linear", "pad", "batch_norm", "relu", "log_softmax",
    "avg_pool2d", "global_avg_pool", "max_pool2d", "cross_entropy", "accuracy",
    # JPEG (DCT) domain
    "block_dct", "block_idct", "dct_conv2d", "explode_kernel", "dct_batch_norm",
    "dct_normalize", "dct_global_avg_pool", "dct_max_pool2d", "asm_relu", "apx_relu", "dct_relu",
    "CarriedDCT", "carry", "as_coefficients",
    # JPEG-DL
    "soft_quantize",
]
