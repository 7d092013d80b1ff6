"""Model builders: the paper's residual network and torchvision's ResNet-18/34/50.

The torchvision builders have torchvision's layout and parameter names, so a
``state_dict`` saved from PyTorch loads as it is (see :func:`dctnet.load_safetensors`).

>>> import numpy as np, dctnet
>>> from dctnet import models
>>> net = models.paper_resnet(in_channels=1, num_classes=10)
>>> net(dctnet.Tensor(np.zeros((2, 1, 32, 32), np.float32))).shape
(2, 10)
>>> list(models.resnet18().state_dict())[:3]
['conv1.weight', 'bn1.weight', 'bn1.bias']
"""

from __future__ import annotations

from . import nn

__all__ = ["paper_resnet", "BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50",
           "stage_sizes", "check_jpeg_size", "MODELS", "build_model"]


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


def _downsample(in_channels, out_channels, stride):
    """torchvision's projection shortcut where the shape changes, else None (the identity)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, 0, bias=False), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU.

    ``downsample`` (1x1 conv with the stride, then BN) exists where the shape
    changes, as in torchvision; its forward only composes children, so it runs
    unchanged in the JPEG domain after :func:`dctnet.convert`.
    """

    input_domain = "any"
    expansion = 1

    def __init__(self, in_channels, planes, stride=1):
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        downsample = _downsample(in_channels, planes, stride)
        if downsample is not None:
            self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = self.downsample(x) if "downsample" in self._modules else x
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (v1.5, stride on the 3x3): 1x1-BN-ReLU, 3x3(stride)-BN-ReLU, 1x1-BN, shortcut, ReLU."""

    input_domain = "any"
    expansion = 4

    def __init__(self, in_channels, planes, stride=1):
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU()
        downsample = _downsample(in_channels, out, stride)
        if downsample is not None:
            self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = self.downsample(x) if "downsample" in self._modules else x
        return self.relu(out + shortcut)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}
_DOWNSCALING = (("conv1", 2), ("maxpool", 2), ("layer1", 1), ("layer2", 2), ("layer3", 2), ("layer4", 2))


class ResNet(nn.Module):
    """torchvision's ResNet: 7x7/2 conv, BN, ReLU, 3x3/2 max-pool, four stages, global average pool, fc.

    ``block`` is ``"basic"`` or ``"bottleneck"``, ``layers`` the number of
    blocks per stage. Parameter names and shapes equal torchvision's
    (``layer1.0.conv1.weight``, ``layer2.0.downsample.0.weight``, ...).
    ``mean``/``std`` prepend a :class:`~dctnet.nn.Normalize` named
    ``normalize`` (no state, so the state_dict keys do not change), which
    :func:`dctnet.convert` applies exactly to DCT coefficients.

    In the JPEG domain (after :func:`dctnet.convert`) every stage must be
    whole 8x8 blocks: the input's sides must be multiples of 256 pixels
    (256 -> stages of 128, 64, 32, 16, 8). Other sizes are refused with an
    error naming the first stage that would not be; 224x224 reaches 28x28 at
    layer2.
    """

    input_domain = "any"

    def __init__(self, block="basic", layers=(2, 2, 2, 2), num_classes=1000, in_channels=3, mean=None, std=None):
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {sorted(BLOCKS)}, found {block!r}")
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers must be four positive block counts, found {layers}")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        if mean is not None:
            self.normalize = nn.Normalize(mean, std)
        cls = BLOCKS[block]
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        channels = 64
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(count):
                blocks.append(cls(channels, planes, (1 if i == 0 else 2) if j == 0 else 1))
                channels = planes * cls.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.GlobalAvgPool()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        if getattr(x, "ndim", 0) == 5:
            check_jpeg_size(x.shape[2] * 8, x.shape[3] * 8)
        if "normalize" in self._modules:
            x = self.normalize(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x))


def stage_sizes(height, width):
    """The feature-map size after each stage of a ResNet for a ``height`` x ``width`` input.

    >>> stage_sizes(224, 224)[-1]
    ('layer4', 7, 7)
    """
    sizes, h, w = [], height, width
    for name, stride in _DOWNSCALING:
        # conv1 (7, pad 3) and maxpool / 3x3 convs (3, pad 1) both give (n - 1) // stride + 1
        h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
        sizes.append((name, h, w))
    return sizes


def check_jpeg_size(height, width):
    """Refuse an input size at which a stage of a JPEG-domain ResNet is not whole 8x8 blocks.

    >>> check_jpeg_size(224, 224)
    Traceback (most recent call last):
    ...
    ValueError: a JPEG-domain ResNet needs every stage to be whole 8x8 blocks, but a 224x224 input makes layer2 28x28 pixels; input sides that work are multiples of 256 (256, 512, 768, ...): centre-crop or downscale the coefficients (dctnet.resize), or run the pixel model
    """
    for name, h, w in stage_sizes(height, width):
        if h % 8 or w % 8:
            raise ValueError(
                f"a JPEG-domain ResNet needs every stage to be whole 8x8 blocks, but a {height}x{width} input "
                f"makes {name} {h}x{w} pixels; input sides that work are multiples of 256 (256, 512, 768, ...): "
                "centre-crop or downscale the coefficients (dctnet.resize), or run the pixel model")


def resnet18(num_classes=1000, in_channels=3, mean=None, std=None):
    """torchvision's ResNet-18 (BasicBlock, 2-2-2-2); its state_dict keys and shapes equal torchvision's."""
    return ResNet("basic", (2, 2, 2, 2), num_classes, in_channels, mean, std)


def resnet34(num_classes=1000, in_channels=3, mean=None, std=None):
    """torchvision's ResNet-34 (BasicBlock, 3-4-6-3)."""
    return ResNet("basic", (3, 4, 6, 3), num_classes, in_channels, mean, std)


def resnet50(num_classes=1000, in_channels=3, mean=None, std=None):
    """torchvision's ResNet-50 (Bottleneck, 3-4-6-3)."""
    return ResNet("bottleneck", (3, 4, 6, 3), num_classes, in_channels, mean, std)


MODELS = {"paper_resnet": paper_resnet, "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}


def build_model(name, **kwargs):
    """The model ``name`` from :data:`MODELS`, built with ``kwargs``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {sorted(MODELS)}")
    return MODELS[name](**kwargs)
