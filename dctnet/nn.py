"""Modules: layers with parameters and buffers, in the pixel and the JPEG domain.

A :class:`Module` registers the :class:`Parameter`\\ s, buffers (plain arrays
such as BatchNorm's running statistics) and sub-modules assigned to it, in
assignment order, as ``torch.nn.Module`` does. ``config()`` describes the
architecture as JSON and :func:`from_config` rebuilds it from the registry of
module classes, so model files never hold code.

Pixel-domain layers take NCHW arrays; JPEG-domain layers (``DCT*``,
:class:`ASMReLU`) take DCT coefficients (N, C, BH, BW, 64) and compute the same
function. Every layer declares which it is (:attr:`Module.input_domain`) and,
if it is a pixel-domain layer with a JPEG-domain twin, builds it
(:meth:`Module.jpeg_form`); :func:`dctnet.convert` and
:func:`dctnet.model_domain` read nothing else.

>>> import numpy as np, dctnet
>>> from dctnet import nn
>>> nn.manual_seed(0)
>>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
...                       nn.GlobalAvgPool(), nn.Linear(8, 10))
>>> model(dctnet.Tensor(np.zeros((2, 3, 16, 16), np.float32))).shape
(2, 10)
>>> list(model.state_dict())[:3]
['0.weight', '0.bias', '1.weight']
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from . import functional as F
from .autograd import Tensor, as_tensor, is_grad_enabled, no_grad
from .backend import asnumpy, get_array_module, to_device

__all__ = [
    "Module", "Parameter", "MODULES", "DOMAINS", "from_config", "manual_seed",
    "Conv2d", "BatchNorm2d", "ReLU", "Linear", "Sequential", "Identity", "Flatten",
    "GlobalAvgPool", "AvgPool2d", "Normalize", "ResidualBlock",
    "DCTConv2d", "DCTBatchNorm", "ASMReLU", "DCTGlobalAvgPool", "DCTNormalize",
    "EVALUATIONS", "EvaluatedLayer",
]

MODULES: dict[str, type] = {}
DOMAINS = ("pixel", "jpeg", "any")  # the values of Module.input_domain
# How JPEG-domain layers evaluate (docs/design.md §4): all exact, they differ in speed only.
EVALUATIONS = ("auto", "carried", "spatial", "dense")
_rng = np.random.default_rng()


def manual_seed(seed):
    """Seed the generator that initializes new parameters (as ``torch.manual_seed``)."""
    global _rng
    _rng = np.random.default_rng(seed)


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable (``requires_grad=True``)."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


def _json_value(value):
    if isinstance(value, (tuple, list)):
        return [_json_value(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class Module:
    """Base class of layers and networks; subclasses define ``forward``.

    Constructor arguments are recorded for :meth:`config`; they must be JSON
    values (numbers, strings, lists) or sub-modules stored under the
    argument's name.

    A layer declares its domain for :func:`dctnet.convert` with the class
    attribute ``input_domain``: ``"pixel"`` (the default; NCHW arrays),
    ``"jpeg"`` (DCT coefficients (N, C, BH, BW, 64)) or ``"any"`` (its own
    forward works on either: it acts after pooling, or only composes its
    children, which convert converts). A pixel-domain layer with a
    JPEG-domain twin returns it from :meth:`jpeg_form`.

    >>> Conv2d.input_domain, DCTConv2d.input_domain, Sequential.input_domain
    ('pixel', 'jpeg', 'any')
    """

    input_domain = "pixel"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.input_domain not in DOMAINS:
            raise TypeError(f"{cls.__name__}.input_domain must be one of {DOMAINS}, found {cls.input_domain!r}")
        # An inherited form was built for the parent's constructor and forward: one that redefines either
        # has no JPEG-domain form until it declares its own.
        if "jpeg_form" not in cls.__dict__ and ("__init__" in cls.__dict__ or "forward" in cls.__dict__):
            cls.jpeg_form = Module.jpeg_form
        MODULES[cls.__name__] = cls

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        signature = inspect.signature(cls.__init__)
        bound = signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        params = signature.parameters
        args_ = {
            name: _json_value(value)
            for name, value in list(bound.arguments.items())[1:]
            if params[name].kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            and not isinstance(value, Module)  # sub-modules are saved as children
        }
        object.__setattr__(self, "_args", args_)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)
        return self

    def __init__(self):
        pass

    # -- registration ------------------------------------------------------------
    def __setattr__(self, name, value):
        # Re-assigning a name keeps its place in the registration order, unless its kind changes.
        if isinstance(value, Parameter):
            self._modules.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._parameters.pop(name, None)
            self._modules[name] = value
        elif name in self._buffers:
            self._buffers[name] = value
        else:
            self._parameters.pop(name, None)
            self._modules.pop(name, None)
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        for registry in ("_parameters", "_buffers", "_modules"):
            table = self.__dict__.get(registry)
            if table is not None and name in table:
                return table[name]
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    def register_buffer(self, name, array):
        """Register a non-trainable array (saved in ``state_dict``, moved by ``to``)."""
        self._buffers[name] = array

    # -- other forms of the same layer ------------------------------------------------
    def jpeg_form(self, relu_frequencies=15, relu="asm"):
        """The JPEG-domain layer computing what this pixel-domain layer computes, or None if none does.

        It shares this layer's Parameters and buffers (see :meth:`twin`);
        ``relu_frequencies`` and ``relu`` choose the ReLU approximation (see
        :func:`dctnet.convert`). Children are not included: convert handles
        them.

        >>> Conv2d(1, 2, 3).jpeg_form()
        DCTConv2d(in_channels=1, out_channels=2, kernel_size=3, stride=1, padding=0, bias=True, method='auto')
        """
        return None

    def twin(self, cls):
        """A ``cls`` built from this module's constructor arguments that shares its state.

        The same Parameter objects and the very same buffer dict (so running
        statistics, updated in place or reassigned, stay shared), and the
        same training mode: training either trains both. For leaf modules,
        e.g. a layer's JPEG-domain or synchronized form.
        """
        new = cls(**self._args)
        object.__setattr__(new, "_parameters", dict(self._parameters))
        object.__setattr__(new, "_buffers", self._buffers)
        return new.train(self.training)

    def with_children(self, fn):
        """A shallow copy of this module, sharing its state, with each child replaced by ``fn(name, child)``.

        The constructor is not run again; Parameters and buffers are shared as in :meth:`twin`.
        """
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        object.__setattr__(new, "_parameters", dict(self._parameters))
        object.__setattr__(new, "_buffers", self._buffers)
        object.__setattr__(new, "_modules", {name: fn(name, child) for name, child in self._modules.items()})
        return new

    # -- traversal ---------------------------------------------------------------
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def children(self):
        return iter(self._modules.values())

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix=""):
        """``(dotted name, Parameter)`` pairs; a shared parameter is listed once."""
        seen = set()
        for path, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{path}.{name}" if path else name), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        for path, module in self.named_modules():
            for name, b in module._buffers.items():
                yield (f"{path}.{name}" if path else name), b

    # -- state -------------------------------------------------------------------
    def state_dict(self):
        """Parameters and buffers by dotted name, as the arrays themselves (no copies)."""
        state = {}
        for path, module in self.named_modules():
            for table in (module._parameters, module._buffers):
                for name, value in table.items():
                    state[f"{path}.{name}" if path else name] = value.data if isinstance(value, Tensor) else value
        return state

    def load_state_dict(self, state, strict=True):
        """Copy ``state`` into the parameters and buffers, checking names and shapes.

        Values are copied in place when dtype and device agree (so modules that
        share a parameter keep sharing it); otherwise the array is replaced and
        takes the saved dtype. ``strict`` refuses missing or unexpected names.
        """
        own = {}
        for path, module in self.named_modules():
            for table in (module._parameters, module._buffers):
                for name in table:
                    own[f"{path}.{name}" if path else name] = (table, name)
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"state_dict does not fit the model: missing {missing}, unexpected {unexpected}")
        for key, value in state.items():
            if key not in own:
                continue
            table, name = own[key]
            target = table[name]
            current = target.data if isinstance(target, Tensor) else target
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(f"{key}: saved shape {tuple(value.shape)} does not fit the model's {tuple(current.shape)}")
            xp = get_array_module(current)
            if get_array_module(value) is xp and value.dtype == current.dtype:
                current[...] = value
                continue
            array = np.array(asnumpy(value)) if xp is np else xp.array(value)
            if isinstance(target, Tensor):
                target.data = array
            else:
                table[name] = array

    # -- modes, devices, dtypes ---------------------------------------------------
    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def _map_arrays(self, fn):
        for module in self.modules():
            for p in module._parameters.values():
                p.data = fn(p.data)
                p.grad = None
            for name, b in module._buffers.items():
                module._buffers[name] = fn(b)
        return self

    def to(self, device):
        """Move parameters and buffers to ``"cpu"`` or ``"gpu"`` (in place; returns self)."""
        return self._map_arrays(lambda a: to_device(a, device))

    def astype(self, dtype):
        """Cast floating-point parameters and buffers to ``dtype`` (in place; returns self)."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"a model's dtype must be floating point, found {dtype}")
        return self._map_arrays(lambda a: a.astype(dtype) if a.dtype.kind == "f" else a)

    # -- calling and describing ---------------------------------------------------
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def config(self):
        """The architecture as a JSON-serializable dict (see :func:`from_config`)."""
        cfg = {"type": type(self).__name__, **self._args}
        if self._modules:
            cfg["children"] = {name: child.config() for name, child in self._modules.items()}
        return cfg

    @classmethod
    def _from_config(cls, args, children):
        # A sub-module taken by the constructor comes back through the argument of its name.
        params = inspect.signature(cls.__init__).parameters
        module = cls(**args, **{name: child for name, child in children.items() if name in params})
        for name, child in children.items():
            if name not in module._modules:
                raise ValueError(f"{cls.__name__} has no sub-module {name!r}")
            setattr(module, name, child)
        return module

    def extra_repr(self):
        return ", ".join(f"{k}={v!r}" for k, v in self._args.items())

    def __repr__(self):
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in self._modules.items()]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


def from_config(cfg):
    """Rebuild a module from :meth:`Module.config` output, through the registry only.

    >>> from_config({"type": "ReLU"})
    ReLU()
    """
    if not isinstance(cfg, dict) or not isinstance(cfg.get("type"), str):
        raise ValueError(f"a module config is a dict with a 'type' string, found {cfg!r}")
    cls = MODULES.get(cfg["type"])
    if cls is None:
        raise ValueError(f"unknown module type {cfg['type']!r}; known types: {sorted(MODULES)}")
    args = {k: v for k, v in cfg.items() if k not in ("type", "children")}
    children = {name: from_config(c) for name, c in cfg.get("children", {}).items()}
    try:
        return cls._from_config(args, children)
    except TypeError as exc:
        raise ValueError(f"cannot build {cfg['type']} from {args}: {exc}") from None


def _uniform(shape, bound):
    return Parameter(_rng.uniform(-bound, bound, size=shape).astype(np.float32))


# ----------------------------------------------------------------------------- pixel domain


class Conv2d(Module):
    """2-D convolution, NCHW; PyTorch's default (Kaiming-uniform) initialization."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.padding = stride, padding
        bound = 1 / math.sqrt(in_channels * kh * kw)  # kaiming_uniform(a=sqrt(5)) reduces to this
        self.weight = _uniform((out_channels, in_channels, kh, kw), bound)
        self.bias = _uniform((out_channels,), bound) if bias else None

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def jpeg_form(self, relu_frequencies=15, relu="asm"):
        return self.twin(DCTConv2d)  # the same kernel


class BatchNorm2d(Module):
    """Batch normalization over (N, H, W) per channel, PyTorch semantics.

    ``reduce`` (a class attribute; None here) sums the training statistics
    over processes: see :mod:`dctnet.distributed`'s SyncBatchNorm2d.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features, np.float32))
        self.bias = Parameter(np.zeros(num_features, np.float32))
        self.register_buffer("running_mean", np.zeros(num_features, np.float32))
        self.register_buffer("running_var", np.ones(num_features, np.float32))
        self.register_buffer("num_batches_tracked", np.zeros((), np.int64))

    _function = staticmethod(F.batch_norm)
    reduce = None

    def forward(self, x):
        if self.training:
            self.num_batches_tracked += 1
        return self._function(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                              self.momentum, self.eps, reduce=self.reduce)

    def jpeg_form(self, relu_frequencies=15, relu="asm"):
        return self.twin(DCTBatchNorm)  # the same affine parameters and running statistics


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)

    def jpeg_form(self, relu_frequencies=15, relu="asm"):
        return ASMReLU(relu_frequencies, relu).train(self.training)


class Linear(Module):
    """``x @ weight.T + bias``; PyTorch's default initialization."""

    input_domain = "any"  # acts on (N, C) features

    def __init__(self, in_features, out_features, bias=True):
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = _uniform((out_features, in_features), bound)
        self.bias = _uniform((out_features,), bound) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class Identity(Module):
    input_domain = "any"

    def forward(self, x):
        return x


class Flatten(Module):
    """(N, ...) -> (N, -1)."""

    input_domain = "any"  # used after pooling, on (N, C, 1, 1) or (N, C)

    def forward(self, x):
        x = as_tensor(x)
        return x.reshape(x.shape[0], -1)


class GlobalAvgPool(Module):
    """(N, C, H, W) -> (N, C): the mean over each channel's pixels."""

    def forward(self, x):
        return F.global_avg_pool(x)

    def jpeg_form(self, relu_frequencies=15, relu="asm"):
        return self.twin(DCTGlobalAvgPool)


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None):
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride)


class Normalize(Module):
    """``(x - mean) / std`` per channel: the input normalization, kept in the model.

    Keeping it in the model lets :func:`dctnet.convert` apply it exactly to DCT
    coefficients. It has no parameters.
    """

    def __init__(self, mean, std):
        mean, std = np.asarray(mean, np.float64).reshape(-1), np.asarray(std, np.float64).reshape(-1)
        if not np.all(std > 0) or mean.size != std.size:
            raise ValueError(f"Normalize needs mean and std of equal length with std > 0, found {mean}, {std}")
        self.mean, self.std = mean, std

    def forward(self, x):
        x = as_tensor(x)
        xp = x.xp
        shape = (1, -1) + (1,) * (x.ndim - 2)
        dtype = x.dtype
        return (x - xp.asarray(self.mean.astype(dtype)).reshape(shape)) * xp.asarray((1 / self.std).astype(dtype)).reshape(shape)

    def jpeg_form(self, relu_frequencies=15, relu="asm"):
        return self.twin(DCTNormalize)


class Sequential(Module):
    """Layers applied in order; children are named "0", "1", ...

    >>> Sequential(ReLU(), Identity())[1]
    Identity()
    """

    input_domain = "any"  # only composes its children

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes Modules, found {type(layer).__name__} at position {i}")
            setattr(self, str(i), layer)

    @classmethod
    def _from_config(cls, args, children):
        if list(children) != [str(i) for i in range(len(children))]:
            raise ValueError(f"Sequential children must be named 0..n-1, found {list(children)}")
        return cls(*children.values())

    def __getitem__(self, index):
        layers = list(self._modules.values())
        return Sequential(*layers[index]) if isinstance(index, slice) else layers[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x


class ResidualBlock(Module):
    """The paper's block: conv3x3-BN-ReLU-conv3x3-BN plus shortcut, then ReLU.

    The shortcut is a 1x1 conv + BN where the shape changes (stride or width),
    else the identity. Its forward only composes children, so it works
    unchanged in the JPEG domain once they are converted.
    """

    input_domain = "any"

    def __init__(self, in_channels, out_channels, stride=1):
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = BatchNorm2d(out_channels)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = BatchNorm2d(out_channels)
        if stride == 1 and in_channels == out_channels:
            self.shortcut = Identity()
        else:
            self.shortcut = Sequential(Conv2d(in_channels, out_channels, 1, stride, 0, bias=False), BatchNorm2d(out_channels))
        self.relu2 = ReLU()

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + self.shortcut(x))


# ----------------------------------------------------------------------------- JPEG domain


class EvaluatedLayer:
    """Mixin of the built-in JPEG-domain layers: how the layer computes (docs/design.md §4).

    ``evaluation`` (a plain attribute, not part of ``config``) is one of
    :data:`EVALUATIONS`: ``"carried"`` takes coefficients or a
    :class:`~dctnet.functional.CarriedDCT` and returns a CarriedDCT (the signal
    held as its pixels; ``.to_dct()`` gives the coefficients); ``"spatial"``
    and ``"dense"`` take either and return coefficients (the conv by
    IDCT-conv-DCT or by the paper's exploded map); ``"auto"``, a layer's
    default, returns coefficients by the fastest measured conv method.
    :func:`dctnet.convert` and :func:`dctnet.set_evaluation` set it on every
    layer of a model, "carried" where that is safe.
    """

    evaluation = "auto"

    def _resolved(self):
        return F.dct_conv.DEFAULT_METHOD if self.evaluation == "auto" else self.evaluation

    def _signal(self, x):
        """``x`` in the form this layer's evaluation computes on."""
        return F.carry(x) if self._resolved() == "carried" else F.as_coefficients(x)


class DCTConv2d(EvaluatedLayer, Conv2d):
    """:class:`Conv2d` on DCT coefficients (N, Cin, BH, BW, 64), exactly.

    ``weight`` is the spatial kernel. The layer's ``evaluation`` (see
    :func:`dctnet.set_evaluation`) picks how it computes; ``method`` ("spatial"
    or "dense", see :func:`dctnet.functional.dct_conv2d`), when not "auto",
    fixes the coefficient evaluation of this layer while its ``evaluation`` is
    "auto". In eval mode the dense method's exploded map is cached (while no
    gradient is recorded) until the kernel changes.
    """

    input_domain = "jpeg"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, method="auto"):
        if method not in F.dct_conv.METHODS:
            raise ValueError(f"method must be one of {F.dct_conv.METHODS}, found {method!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias)
        self.method = method
        self._cache = None  # (copy of the kernel, its exploded map)

    def _resolved(self):
        if self.evaluation == "auto" and self.method != "auto":
            return self.method
        return super()._resolved()

    def forward(self, x):
        exploded = None
        evaluation = self._resolved()
        x = self._signal(x)
        if evaluation == "dense" and not self.training and not (is_grad_enabled() and self.weight.requires_grad):
            kernel = self.weight.data
            if self._cache is None or self._cache[0].shape != kernel.shape or not (self._cache[0] == kernel).all():
                with no_grad():
                    self._cache = (kernel.copy(), F.explode_kernel(kernel, self.stride, self.padding))
            exploded = self._cache[1]
        method = evaluation if evaluation in ("spatial", "dense") else "auto"
        return F.dct_conv2d(x, self.weight, self.bias, self.stride, self.padding, method, exploded)


class DCTBatchNorm(EvaluatedLayer, BatchNorm2d):
    """:class:`BatchNorm2d` on DCT coefficients, exactly equal to it on the pixels."""

    input_domain = "jpeg"
    _function = staticmethod(F.dct_batch_norm)

    def forward(self, x):
        return super().forward(self._signal(x))


class ASMReLU(EvaluatedLayer, Module):
    """ReLU on DCT coefficients by spatial masking from ``frequencies`` (1..15).

    ``method="asm"`` (the paper's ASM; exact at 15) or ``"apx"`` (the paper's comparison: ReLU of the approximated pixels).
    """

    input_domain = "jpeg"

    def __init__(self, frequencies=15, method="asm"):
        if method not in ("asm", "apx"):
            raise ValueError(f"method must be 'asm' or 'apx', found {method!r}")
        self.frequencies, self.method = frequencies, method

    def forward(self, x):
        return F.dct_relu(self._signal(x), self.frequencies, self.method)


class DCTGlobalAvgPool(EvaluatedLayer, Module):
    """(N, C, BH, BW, 64) -> (N, C): the mean of the DC coefficients over 8."""

    input_domain = "jpeg"

    def forward(self, x):
        return F.dct_global_avg_pool(self._signal(x))


class DCTNormalize(EvaluatedLayer, Normalize):
    """:class:`Normalize` applied to DCT coefficients (only the DC moves)."""

    input_domain = "jpeg"

    def forward(self, x):
        return F.dct_normalize(self._signal(x), self.mean, self.std)


def __getattr__(name):
    if name == "JPEGLayer":  # it was reachable here; it builds on this module, so it lives above it
        raise AttributeError("dctnet.nn.JPEGLayer moved to dctnet.jpegdl.JPEGLayer (also dctnet.JPEGLayer)")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
