"""The reader's two exceptions, in a module of their own so that every part of :mod:`dctnet.jpeg` can raise them.

>>> import dctnet
>>> try:
...     dctnet.read_jpeg(b"GIF89a")
... except dctnet.JpegError as exc:
...     print(exc)
<bytes>: not a JPEG file (expected the SOI marker FF D8, found 47 49)
"""

__all__ = ["JpegError", "JpegWarning"]


class JpegError(ValueError):
    """A file that is not a JPEG dctnet can read, with the file and the reason."""


class JpegWarning(UserWarning):
    """A reader recovered from corrupt data (only with ``read_jpeg(..., strict=False)``)."""
