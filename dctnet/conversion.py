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
:func:`set_evaluation` chooses how the JPEG-domain layers compute (all exact,
docs/design.md §4): ``"carried"`` (chosen by ``"auto"`` wherever it is safe,
the fastest measured), ``"spatial"`` or ``"dense"`` (the paper's exploded maps).

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

from . import models, nn

__all__ = ["convert", "model_domain", "set_evaluation"]

RELUS = ("asm", "apx")


def convert(model, relu_frequencies=15, relu="asm", evaluation="auto"):
    """The JPEG-domain equivalent of ``model``, sharing its parameters.

    ``relu_frequencies`` (1..15) and ``relu`` ("asm" or "apx") choose the ReLU
    approximation; 15 is exact, and the converted model then gives the same
    logits as ``model`` on ``dctnet.to_dct`` of the same images. The result
    shares every Parameter and buffer with ``model`` (training one trains the
    other), keeps its training mode, and has the same ``state_dict`` keys.
    ``evaluation`` is set on every JPEG-domain layer (see :func:`set_evaluation`).
    Raises TypeError for a layer without a JPEG-domain form, or one that is
    already a JPEG-domain layer.
    """
    if relu not in RELUS:
        raise ValueError(f"relu must be one of {RELUS}, found {relu!r}")
    integer = isinstance(relu_frequencies, numbers.Integral) and not isinstance(relu_frequencies, bool)
    if not (integer and 1 <= relu_frequencies <= 15):  # NumPy integers count, as in asm_relu
        raise ValueError(f"relu_frequencies must be an integer 1..15, found {relu_frequencies!r}")
    _check_evaluation(evaluation)
    return set_evaluation(_convert(model, int(relu_frequencies), relu, "model"), evaluation)


def set_evaluation(model, evaluation):
    """Choose how ``model``'s JPEG-domain layers compute; returns ``model`` (changed in place).

    All evaluations give the same function, forward and backward, to float
    rounding (docs/design.md §4):

    - ``"carried"``: the signal between layers is held as the pixels the
      coefficients stand for (:class:`~dctnet.functional.CarriedDCT`); convolution,
      batch norm and the exact ReLU cost what they cost on pixels, ASM below
      15 frequencies is a per-block rank-k projection, pooling a pixel mean.
      Layers return a CarriedDCT (``.to_dct()`` for the coefficients); pooled
      features and logits are plain Tensors.
    - ``"spatial"``: every layer takes and returns coefficients; the conv is IDCT, conv, DCT.
    - ``"dense"``: as "spatial", with the paper's exploded convolution maps.
    - ``"auto"``: "carried" where nothing can see the difference: every layer
      is a built-in one (JPEG-domain layers, Sequential, ResidualBlock,
      Identity, Flatten, Linear, and models.BasicBlock, Bottleneck and ResNet)
      and the last JPEG-domain layer is the global
      pooling, so the model returns features, not a signal; otherwise each
      layer's own default (coefficients, "spatial").

    >>> from dctnet import models
    >>> jnet = convert(models.paper_resnet(in_channels=1))
    >>> {m.evaluation for m in jnet.modules() if m.input_domain == "jpeg"}
    {'carried'}
    >>> jnet = set_evaluation(jnet, "dense")
    >>> {m.evaluation for m in jnet.modules() if m.input_domain == "jpeg"}
    {'dense'}
    """
    _check_evaluation(evaluation)
    if evaluation == "auto" and _carries_safely(model):
        evaluation = "carried"
    for module in model.modules():
        if isinstance(module, nn.EvaluatedLayer):
            module.evaluation = evaluation
    return model


# Layers whose forward only composes their children (additions included) or acts after the pooling;
# models.ResNet also reads the input's shape, which a CarriedDCT gives as the coefficients'.
_CARRYING_CONTAINERS = (nn.Sequential, nn.ResidualBlock, nn.Identity, nn.Flatten, nn.Linear,
                        models.BasicBlock, models.Bottleneck, models.ResNet)


def _carries_safely(model):
    """Whether ``model`` computes the same with a CarriedDCT between its layers, as seen from outside.

    Built-in layers only (a user layer may apply a Tensor op to the signal),
    and the signal must end in the global pooling (the model then returns features).
    """
    modules = list(model.modules())
    if not all(isinstance(m, nn.EvaluatedLayer) or type(m) in _CARRYING_CONTAINERS for m in modules):
        return False
    jpeg = [m for m in modules if isinstance(m, nn.EvaluatedLayer)]
    return bool(jpeg) and isinstance(jpeg[-1], nn.DCTGlobalAvgPool)


def _check_evaluation(evaluation):
    if evaluation not in nn.EVALUATIONS:
        raise ValueError(f"evaluation must be one of {nn.EVALUATIONS}, found {evaluation!r}")


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
