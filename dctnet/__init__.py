"""dctnet: deep residual networks computed directly on JPEG DCT coefficients."""

from . import functional, ops
from .autograd import Function, Tensor, as_tensor, enable_grad, is_grad_enabled, no_grad
from .backend import asnumpy, cupy_available, get_array_module, to_device
from .transform import (
    FREQUENCY_COUNTS,
    ZIGZAG,
    block_dct_matrix,
    dct_matrix,
    dequantize,
    frequency_count,
    frequency_mask,
    from_dct,
    jpeg_matrix,
    pad_to_blocks,
    quant_table,
    quantize,
    to_dct,
)
from .functional import apx_relu, asm_relu
from .gradcheck import GradcheckError, gradcheck
from .jpeg import (JpegError, JpegHeader, JpegImage, JpegWarning, dct_picture, encode_jpeg, read_header, read_jpeg,
                   read_jpegs, read_stacked, write_jpeg)

from . import distributed, jpegdl, models, nn, optim, qtables
from . import augment, training
from .progressbar import progress
from .conversion import convert, model_domain, set_evaluation
from .jpeg_batches import JpegBatches, jpeg_pixels, predict_jpegs
from .jpegdl import JPEGLayer
from .io import load, load_checkpoint, save
from .weights import load_safetensors, save_safetensors

from .version import __version__
