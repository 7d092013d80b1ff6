"""Convert a pixel-domain model into the equal JPEG-domain model.

Layer by layer (docs/design.md §3), as each layer declares it
(:class:`dctnet.nn.Module`): a pixel-domain layer becomes its
:meth:`~dctnet.nn.Module.jpeg_form` (Conv2d -> DCTConv2d with the same kernel,
BatchNorm2d -> DCTBatchNorm with the same affine parameters and running
statistics, ReLU -> ASMReLU, GlobalAvgPool -> DCTGlobalAvgPool, Normalize ->
DCTNormalize; dctnet.distributed's SyncBatchNorm2d -> SyncDCTBatchNorm).
Layers whose ``input_domain`` is ``"any"`` are copied with converted
children: containers whose forward only composes their children
(Sequential, ResidualBlock), and Linear, Identity and Flatten, which act after
pooling. :func:`model_domain` tells which of the two inputs a model takes.

>>> import numpy as np, dctnet
>>> from dctnet import models
>>> net = models.paper_resnet(in_channels=1).eval()
>>> jnet = dctnet.convert(net)
>>> dctnet.model_domain(net), dctnet.model_domain(jnet)
('pixel', 'jpeg')
>>> x = np.random.default_rng(0).uniform(size=(2, 1, 32, 32)).astype(np.float32)
>>> a, b = net(dctnet.Tensor(x)).data, jnet(dctnet.to_dct(x)).data
>>> bool(np.allclose(a, b, atol=1e-4))
True
"""

from __future__ import annotations

import numbers

from . import nn

__all__ = ["convert", "model_domain"]

RELUS = ("asm", "apx")


def convert(model, relu_frequencies=15, relu="asm"):
    """The JPEG-domain equivalent of ``model``, sharing its parameters.

    ``relu_frequencies`` (1..15) and ``relu`` ("asm" or "apx") choose the ReLU
    approximation; 15 is exact, and the converted model then gives the same
    logits as ``model`` on ``dctnet.to_dct`` of the same images. The result
    shares every Parameter and buffer with ``model`` (training one trains the
    other), keeps its training mode, and has the same ``state_dict`` keys.
    Raises TypeError for a layer without a JPEG-domain form, or one that is
    already a JPEG-domain layer.
    """
    if relu not in RELUS:
        raise ValueError(f"relu must be one of {RELUS}, found {relu!r}")
    integer = isinstance(relu_frequencies, numbers.Integral) and not isinstance(relu_frequencies, bool)
    if not (integer and 1 <= relu_frequencies <= 15):  # NumPy integers count, as in asm_relu
        raise ValueError(f"relu_frequencies must be an integer 1..15, found {relu_frequencies!r}")
    return _convert(model, int(relu_frequencies), relu, "model")


def model_domain(model):
    """``"pixel"`` or ``"jpeg"``: the input ``model`` takes, as its layers declare it.

    That is the ``input_domain`` of its first layer, in module order (forward
    order for Sequential, ResidualBlock and ``models.paper_resnet``), that is
    not domain-agnostic; ``"pixel"`` when all are (they take either). A
    ``"pixel"`` model goes through :func:`convert` before it reads DCT
    coefficients.

    >>> from dctnet import nn
    >>> model_domain(nn.Sequential(nn.Identity(), nn.ASMReLU()))
    'jpeg'
    """
    for module in model.modules():
        if module.input_domain != "any":
            return module.input_domain
    return "pixel"


def _convert(module, n, relu, path):
    kind = type(module)
    if module.input_domain == "jpeg":
        raise TypeError(f"{path} ({kind.__name__}) is already a JPEG-domain layer; convert the pixel model")
    if module.input_domain == "any":
        return module.with_children(lambda name, child: _convert(child, n, relu, f"{path}.{name}"))
    form = module.jpeg_form(n, relu)
    if form is None:
        raise TypeError(f"{path} ({kind.__name__}) has no JPEG-domain form; {_convertible()}")
    return form.train(module.training)


def _convertible():
    """The registered layers convert handles, for its error message."""
    forms = sorted(name for name, cls in nn.MODULES.items()
                   if cls.input_domain == "pixel" and cls.jpeg_form is not nn.Module.jpeg_form)
    agnostic = sorted(name for name, cls in nn.MODULES.items() if cls.input_domain == "any")
    return (f"convertible layers are {', '.join(forms)} and the domain-agnostic {', '.join(agnostic)} "
            "(a layer declares jpeg_form() or input_domain = 'any')")
