"""JPEG files as quantized DCT coefficients: read, write, encode, and the exact DCT-domain decode.

``read_jpeg`` entropy-decodes a file and never runs the inverse DCT: a
:class:`JpegImage` holds each component's quantized coefficients
``(BH_c, BW_c, 64)`` in zigzag order with its quantization table and sampling
factors. :meth:`JpegImage.to_dct` turns them into the DCT-domain picture the
networks consume (docs/design.md §2). The reader's architecture is
docs/design.md §5; its modules, lowest first:

- :mod:`~dctnet.jpeg.errors`: ``JpegError`` and ``JpegWarning``;
- :mod:`~dctnet.jpeg.markers`: a file's marker segments, walked once for every reader;
- :mod:`~dctnet.jpeg.libjpeg`: reading and writing through libjpeg (jpeglib);
- :mod:`~dctnet.jpeg.picture`: ``JpegImage``, ``dct_picture``, ``encode_jpeg``, the colour constants;
- :mod:`~dctnet.jpeg.huffman`: the driver of the Numba Huffman decoder (kernels in ``dctnet.kernels.huffman``);
- :mod:`~dctnet.jpeg.files`: ``read_jpeg``, ``read_jpegs``, ``read_stacked``, ``read_header``, ``write_jpeg``: which decoder reads what.

>>> import numpy as np, dctnet
>>> img = dctnet.encode_jpeg(np.full((3, 16, 16), 200, np.uint8), quality=90)
>>> img.coefficients[0].shape, img.sampling
((2, 2, 64), ((2, 2), (1, 1), (1, 1)))
>>> x = dctnet.read_jpeg(img.to_bytes()).to_dct("rgb")       # (3, 2, 2, 64) float32
>>> round(float(x[0, 0, 0, 0]) / 8)                          # DC / 8 = block mean
200
"""

from .errors import JpegError, JpegWarning
from .files import JpegHeader, read_header, read_jpeg, read_jpegs, read_stacked, write_jpeg
from .markers import MAX_PIXELS
from .picture import RGB_TO_YCBCR, SUBSAMPLING, YCBCR_TO_RGB, JpegImage, dct_picture, encode_jpeg

__all__ = ["read_jpeg", "read_jpegs", "read_stacked", "read_header", "JpegHeader", "write_jpeg", "encode_jpeg", "JpegImage", "dct_picture",
           "JpegError", "JpegWarning", "MAX_PIXELS", "RGB_TO_YCBCR", "YCBCR_TO_RGB", "SUBSAMPLING"]
