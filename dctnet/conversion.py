"""Convert a pixel-domain model into the equal JPEG-domain model.

Layer by layer (DESIGN.md §3): Conv2d -> DCTConv2d with the same kernel,
BatchNorm2d -> DCTBatchNorm (SyncBatchNorm2d -> SyncDCTBatchNorm) with the same
affine parameters and running statistics, ReLU -> ASMReLU, GlobalAvgPool -> DCTGlobalAvgPool, Normalize ->
DCTNormalize. Containers whose forward only composes their children
(Sequential, ResidualBlock) are copied with converted children; Linear,
Identity and Flatten act after pooling and are shared as they are.

>>> import numpy as np, dctnet
>>> from dctnet import models
>>> net = models.paper_resnet(in_channels=1).eval()
>>> jnet = dctnet.convert(net)
>>> x = np.random.default_rng(0).uniform(size=(2, 1, 32, 32)).astype(np.float32)
>>> a, b = net(dctnet.Tensor(x)).data, jnet(dctnet.to_dct(x)).data
>>> bool(np.allclose(a, b, atol=1e-4))
True
"""

from __future__ import annotations

from . import distributed, nn

__all__ = ["convert"]

RELUS = ("asm", "apx")


def convert(model, relu_frequencies=15, relu="asm"):
    """The JPEG-domain equivalent of ``model``, sharing its parameters.

    ``relu_frequencies`` (1..15) and ``relu`` ("asm" or "apx") choose the ReLU
    approximation; 15 is exact, and the converted model then gives the same
    logits as ``model`` on ``dctnet.to_dct`` of the same images. The result
    shares every Parameter and buffer with ``model`` (training one trains the
    other), keeps its training mode, and has the same ``state_dict`` keys.
    Raises TypeError for a layer without a JPEG-domain form.
    """
    if relu not in RELUS:
        raise ValueError(f"relu must be one of {RELUS}, found {relu!r}")
    if not (isinstance(relu_frequencies, int) and 1 <= relu_frequencies <= 15):
        raise ValueError(f"relu_frequencies must be an integer 1..15, found {relu_frequencies!r}")
    return _convert(model, relu_frequencies, relu, "model")


def _share(new, old):
    """Make ``new`` use ``old``'s parameter and buffer objects, in old's order."""
    object.__setattr__(new, "_parameters", dict(old._parameters))
    object.__setattr__(new, "_buffers", old._buffers)  # one dict: in-place updates and reassignments are shared
    new.train(old.training)
    return new


def _convert(module, n, relu, path):
    if isinstance(module, (nn.DCTConv2d, nn.DCTBatchNorm, nn.ASMReLU, nn.DCTGlobalAvgPool, nn.DCTNormalize)):
        raise TypeError(f"{path} ({type(module).__name__}) is already a JPEG-domain layer; convert the pixel model")
    kind = type(module)
    if kind is nn.Conv2d:
        a = module._args
        new = nn.DCTConv2d(a["in_channels"], a["out_channels"], a["kernel_size"], a["stride"], a["padding"], a["bias"])
        return _share(new, module)
    if kind is nn.BatchNorm2d:
        return _share(nn.DCTBatchNorm(**module._args), module)
    if kind is distributed.SyncBatchNorm2d:
        return _share(distributed.SyncDCTBatchNorm(**module._args), module)
    if kind is nn.ReLU:
        return nn.ASMReLU(n, relu).train(module.training)
    if kind is nn.GlobalAvgPool:
        return nn.DCTGlobalAvgPool().train(module.training)
    if kind is nn.Normalize:
        return nn.DCTNormalize(**module._args).train(module.training)
    if not kind._domain_agnostic:
        raise TypeError(
            f"{path} ({kind.__name__}) has no JPEG-domain form; convertible layers are Conv2d, "
            "BatchNorm2d, ReLU, GlobalAvgPool, Normalize, Linear, Identity, Flatten and containers "
            "(Sequential, ResidualBlock) of them"
        )
    new = object.__new__(kind)  # a shallow copy, without re-running the constructor
    new.__dict__.update(module.__dict__)
    object.__setattr__(new, "_parameters", dict(module._parameters))
    object.__setattr__(new, "_buffers", module._buffers)
    object.__setattr__(new, "_modules", {name: _convert(c, n, relu, f"{path}.{name}") for name, c in module._modules.items()})
    return new
