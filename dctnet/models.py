"""Model builders: the paper's residual network.

>>> import numpy as np, dctnet
>>> from dctnet import models
>>> net = models.paper_resnet(in_channels=1, num_classes=10)
>>> net(dctnet.Tensor(np.zeros((2, 1, 32, 32), np.float32))).shape
(2, 10)
"""

from __future__ import annotations

from . import nn

__all__ = ["paper_resnet", "MODELS", "build_model"]


def paper_resnet(in_channels=3, num_classes=10, widths=(16, 32, 64), mean=None, std=None):
    """Ehrlich & Davis's Figure 3 network, in the pixel domain.

    Three :class:`~dctnet.nn.ResidualBlock`\\ s (strides 1, 2, 2, so a 32x32
    input ends as 8x8 pixels: one JPEG block), global average pooling and a
    linear classifier. ``mean``/``std`` (one value per channel) prepend an
    :class:`~dctnet.nn.Normalize`, which :func:`dctnet.convert` applies exactly
    to DCT coefficients.
    """
    if len(widths) != 3 or min(widths) < 1:
        raise ValueError(f"widths must be three positive channel counts, found {widths}")
    layers = []
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    if mean is not None:
        layers.append(nn.Normalize(mean, std))
    channels = in_channels
    for width, stride in zip(widths, (1, 2, 2)):
        layers.append(nn.ResidualBlock(channels, width, stride))
        channels = width
    layers += [nn.GlobalAvgPool(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)


MODELS = {"paper_resnet": paper_resnet}


def build_model(name, **kwargs):
    """The model ``name`` from :data:`MODELS`, built with ``kwargs``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {sorted(MODELS)}")
    return MODELS[name](**kwargs)
