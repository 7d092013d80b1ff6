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

import contextlib
import contextvars
import inspect
import math

import numpy as np

from . import functional as F
from .autograd import Tensor, as_tensor, is_grad_enabled, no_grad
from .backend import asnumpy, get_array_module, to_device
from .transform import frequency_count

__all__ = [
    "Module", "Parameter", "MODULES", "DOMAINS", "from_config", "register_module", "deferred_init", "manual_seed",
    "Conv2d", "BatchNorm2d", "ReLU", "Linear", "Sequential", "Identity", "Flatten",
    "GlobalAvgPool", "AvgPool2d", "MaxPool2d", "Normalize", "ResidualBlock",
    "DCTConv2d", "DCTBatchNorm", "ASMReLU", "DCTGlobalAvgPool", "DCTMaxPool2d", "DCTNormalize",
    "EVALUATIONS", "EvaluatedLayer",
]

MODULES: dict[str, type] = {}  # the type names stored in model files -> classes (see register_module)
_NAMES: dict[type, str] = {}  # class -> the name its config() stores
DOMAINS = ("pixel", "jpeg", "any")  # the values of Module.input_domain
MAX_DEPTH = 100  # nesting of sub-modules that from_config rebuilds; deeper configs are refused
# How JPEG-domain layers evaluate (docs/design.md §4): all exact, they differ in speed only.
EVALUATIONS = ("auto", "carried", "spatial", "dense")
_rng = np.random.default_rng()
_deferred = contextvars.ContextVar("dctnet.nn.deferred", default=False)


def _is_dctnet_class(cls):
    return cls.__module__ == "dctnet" or cls.__module__.startswith("dctnet.")


def register_module(cls, name=None):
    """Register the Module subclass ``cls`` under ``name`` (default ``"<module>.<qualname>"``) and return it.

    Model files store each layer's type name and :func:`from_config` (so
    :func:`dctnet.load`) rebuilds it from this registry alone. dctnet's own
    layers are registered under their bare class names (``"ReLU"``), and
    every other subclass automatically under its qualified name
    (``"my_script.ReLU"``), so a user's class never replaces dctnet's of the
    same name. Register a class explicitly to give it a name that survives
    moving or renaming it; its ``config()`` then stores that name. A name
    must contain a dot (names without one are dctnet's), and one taken by
    another class is refused, unless that class has the same qualified name
    (a class defined again, e.g. in a notebook).

    >>> class Twice(Module):
    ...     def forward(self, x):
    ...         return as_tensor(x) * 2
    >>> _ = register_module(Twice, "myproject.Twice")
    >>> Twice().config()
    {'type': 'myproject.Twice'}
    >>> type(from_config({"type": "myproject.Twice"})) is Twice
    True
    """
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"register_module takes a dctnet.nn.Module subclass, found {cls!r}")
    own = _is_dctnet_class(cls)
    if name is None:
        name = cls.__name__ if own else f"{cls.__module__}.{cls.__qualname__}"
    if not isinstance(name, str) or not name:
        raise TypeError(f"a module type name must be a non-empty string, found {name!r}")
    if "." not in name and not own:
        raise ValueError(f"the name {name!r} has no dot: names without one are dctnet's own layers; "
                         f"register {cls.__qualname__} under a qualified name such as 'myproject.{name}'")
    known = MODULES.get(name)
    if known is not None and known is not cls:
        if (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):  # else: defined again
            raise ValueError(f"the module type name {name!r} is already taken by {known.__module__}."
                             f"{known.__qualname__}; register {cls.__qualname__} under another name")
    MODULES[name] = cls
    _NAMES[cls] = name
    return cls


@contextlib.contextmanager
def deferred_init():
    """Build modules without allocating or drawing their parameters (what :func:`dctnet.load` does).

    Inside the block, dctnet's layers get read-only zero-stride placeholders
    of the right shape and dtype instead of initialized arrays: nothing is
    allocated and no random number is drawn. ``load_state_dict`` then
    replaces every placeholder by the loaded array.

    >>> with deferred_init():
    ...     big = Linear(100_000, 100_000)
    >>> big.weight.shape, big.weight.data.strides
    ((100000, 100000), (0, 0))
    """
    token = _deferred.set(True)
    try:
        yield
    finally:
        _deferred.reset(token)


def _full(shape, value, dtype=np.float32):
    """A new array of ``value``, or its placeholder inside :func:`deferred_init`."""
    if _deferred.get():
        return np.broadcast_to(np.asarray(value, dtype), shape)
    return np.full(shape, value, dtype)


_OPTIONAL_STATE = ("num_batches_tracked",)  # load_state_dict never requires these (PyTorch's files may lack them)


def _listed(keys, limit=12):
    """``keys`` for an error message, the first ``limit`` of them and a count of the rest."""
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"{keys[:limit]}{more}"


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
        register_module(cls)

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
        takes the saved dtype. ``strict`` refuses missing or unexpected names;
        mis-shaped values are always refused. Every problem is named in one
        error, and nothing is changed when there is one. BatchNorm's
        ``num_batches_tracked`` (a counter, unused by the forward) is copied
        when present and never required, so PyTorch's state dicts load with or
        without it.
        """
        own = {}
        for path, module in self.named_modules():
            for table in (module._parameters, module._buffers):
                for name in table:
                    own[f"{path}.{name}" if path else name] = (table, name)
        missing = [k for k in own if k not in state and k.rsplit(".", 1)[-1] not in _OPTIONAL_STATE]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"state_dict does not fit the model ({type(self).__name__}): "
                           f"missing {_listed(missing)}, unexpected {_listed(unexpected)}")
        shapes = []
        for key, value in state.items():
            if key in own:
                if not hasattr(value, "shape"):
                    raise TypeError(f"{key}: expected an array, found {type(value).__name__}")
                table, name = own[key]
                current = table[name].data if isinstance(table[name], Tensor) else table[name]
                if tuple(value.shape) != tuple(current.shape):
                    shapes.append(f"{key}: saved shape {tuple(value.shape)} does not fit the model's {tuple(current.shape)}")
        if shapes:
            raise ValueError(f"{len(shapes)} mis-shaped value(s) in the state_dict: " + "; ".join(shapes))
        for key, value in state.items():
            if key not in own:
                continue
            table, name = own[key]
            target = table[name]
            current = target.data if isinstance(target, Tensor) else target
            xp = get_array_module(current)
            writeable = getattr(getattr(current, "flags", None), "writeable", True)  # False: a placeholder
            if get_array_module(value) is xp and value.dtype == current.dtype and writeable:
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
    input_ndim = None  # dctnet's layers: 4 (pixels NCHW) or 5 (DCT coefficients); their inputs are checked

    def __call__(self, *args, **kwargs):
        if args:
            self._check_input(args[0])
        return self.forward(*args, **kwargs)

    def _expected_channels(self):
        """The channel count this layer needs (None: any)."""
        return None

    def _check_input(self, x):
        """Refuse an input of the wrong domain, rank or channel count, saying what was expected."""
        shape = getattr(x, "shape", None)
        if shape is None:
            return
        shape = tuple(shape)
        if self.input_ndim is None:
            return
        name = type(self).__name__
        if self.input_ndim == 4:
            expected = f"{name} is a pixel-domain layer: it expects pixels (N, C, H, W), found shape {shape}"
            if len(shape) == 5 and shape[-1] == 64:
                raise ValueError(f"{expected}, which are DCT coefficients (N, C, BH, BW, 64); convert the model "
                                 "with dctnet.convert(model) to run it on coefficients, or feed pixels")
            if len(shape) == 3:
                raise ValueError(f"{expected}: add a batch axis (x[None]) for a single image")
            if len(shape) != 4:
                raise ValueError(expected)
        else:
            expected = (f"{name} is a JPEG-domain layer: it expects DCT coefficients (N, C, BH, BW, 64), "
                        f"found shape {shape}")
            if len(shape) == 4 and shape[-1] == 64:
                raise ValueError(f"{expected}: add a batch axis (x[None]) for a single image")
            if len(shape) == 4:
                raise ValueError(f"{expected}, which look like pixels (N, C, H, W); take dctnet.to_dct(x) of them "
                                 "(or JpegImage.to_dct of the files), or run the pixel-domain model")
            if len(shape) != 5 or shape[-1] != 64:
                raise ValueError(expected)
        channels = self._expected_channels()
        if channels is not None and shape[1] != channels:
            raise ValueError(f"{name} expects {channels} channels, found {shape[1]} (input shape {shape}); "
                             f"give it {channels}-channel images")

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def config(self):
        """The architecture as a JSON-serializable dict (see :func:`from_config`)."""
        cfg = {"type": _NAMES.get(type(self), type(self).__name__), **self._args}
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
    return _from_config(cfg, 0)


def _from_config(cfg, depth):
    if depth > MAX_DEPTH:
        raise ValueError(f"the module config nests sub-modules more than {MAX_DEPTH} levels deep; "
                         "it was not written by dctnet, or is damaged")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("type"), str):
        raise ValueError(f"a module config is a dict with a 'type' string, found {_short(cfg)}")
    cls = MODULES.get(cfg["type"]) or _saved_by_bare_name(cfg["type"])
    if cls is None:
        raise ValueError(f"unknown module type {_short(cfg['type'])}; dctnet's types are "
                         f"{sorted(n for n in MODULES if '.' not in n)}; a class of your own must be defined "
                         "(or registered with dctnet.nn.register_module) before loading")
    args = {k: v for k, v in cfg.items() if k not in ("type", "children")}
    children = cfg.get("children", {})
    if not isinstance(children, dict):
        raise ValueError(f"the children of a {cfg['type']} config must be a dict, found {_short(children)}")
    children = {name: _from_config(c, depth + 1) for name, c in children.items()}
    try:
        return cls._from_config(args, children)
    except TypeError as exc:
        raise ValueError(f"cannot build {cfg['type']} from {_short(args)}: {exc}") from None


def _saved_by_bare_name(name):
    """The one class of another package named ``name``: files written before qualified names stored bare ones.

    Never a guess: with several such classes the name is ambiguous and refused.
    """
    if "." in name:
        return None
    found = {cls for key, cls in MODULES.items() if "." in key and cls.__name__ == name}
    if len(found) > 1:
        raise ValueError(f"module type {name!r} (a file written before qualified type names) matches several "
                         f"classes: {sorted(f'{c.__module__}.{c.__qualname__}' for c in found)}; load it where only "
                         "the one meant is defined, and save it again to store its qualified name")
    return found.pop() if found else None


def _short(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_sizes(cls, **sizes):
    """ValueError unless each of ``sizes`` is a positive integer (NumPy integers too), naming layer and argument."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{cls} needs {name} a positive integer, found {value!r}")


def _is_empty(x):
    shape = getattr(x, "shape", ())
    return len(shape) > 0 and shape[0] == 0


def _empty_like_output(layer, x):
    """The empty output of a stateless ``layer`` for an empty batch ``x``, as PyTorch gives it.

    The convolution kernels split the batch into chunks and cannot take an
    empty one, so the output shape comes from one zero image.
    """
    carried = isinstance(x, F.CarriedDCT)  # the carried evaluation: pixels stand for the coefficients
    data = x.pixels.data if carried else as_tensor(x).data
    zeros = get_array_module(data).zeros((1,) + tuple(data.shape[1:]), data.dtype)
    with no_grad():
        one = layer.forward(F.CarriedDCT(zeros) if carried else Tensor(zeros))
    if isinstance(one, F.CarriedDCT):
        return F.CarriedDCT(Tensor(one.pixels.data[:0]))
    return Tensor(one.data[:0])


def _uniform(shape, bound):
    if _deferred.get():
        return Parameter(_full(shape, 0.0))
    return Parameter(_rng.uniform(-bound, bound, size=shape).astype(np.float32))



# ----------------------------------------------------------------------------- pixel domain


class Conv2d(Module):
    """2-D convolution, NCHW; PyTorch's default (Kaiming-uniform) initialization."""

    input_ndim = 4

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, (int, np.integer)) else tuple(kernel_size)
        _check_sizes(type(self).__name__, in_channels=in_channels, out_channels=out_channels)
        for k in (kh, kw):
            _check_sizes(type(self).__name__, kernel_size=k)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.padding = stride, padding
        bound = 1 / math.sqrt(in_channels * kh * kw)  # kaiming_uniform(a=sqrt(5)) reduces to this
        self.weight = _uniform((out_channels, in_channels, kh, kw), bound)
        self.bias = _uniform((out_channels,), bound) if bias else None

    def _expected_channels(self):
        return self.in_channels

    def forward(self, x):
        if _is_empty(x):
            return _empty_like_output(self, x)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def jpeg_form(self, relu_frequencies=15, relu="asm"):
        return self.twin(DCTConv2d)  # the same kernel


class BatchNorm2d(Module):
    """Batch normalization over (N, H, W) per channel, PyTorch semantics.

    ``reduce`` (a class attribute; None here) sums the training statistics
    over processes: see :mod:`dctnet.distributed`'s SyncBatchNorm2d.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        _check_sizes(type(self).__name__, num_features=num_features)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(_full(num_features, 1.0))
        self.bias = Parameter(_full(num_features, 0.0))
        self.register_buffer("running_mean", _full(num_features, 0.0))
        self.register_buffer("running_var", _full(num_features, 1.0))
        self.register_buffer("num_batches_tracked", _full((), 0, np.int64))

    _function = staticmethod(F.batch_norm)
    reduce = None
    input_ndim = 4

    def _expected_channels(self):
        return self.num_features

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
        _check_sizes(type(self).__name__, in_features=in_features, out_features=out_features)
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
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))  # not -1, which an empty batch leaves open


class GlobalAvgPool(Module):
    """(N, C, H, W) -> (N, C): the mean over each channel's pixels."""

    input_ndim = 4

    def forward(self, x):
        return F.global_avg_pool(x)

    def jpeg_form(self, relu_frequencies=15, relu="asm"):
        return self.twin(DCTGlobalAvgPool)


class AvgPool2d(Module):
    input_ndim = 4

    def __init__(self, kernel_size, stride=None):
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride)


class MaxPool2d(Module):
    """The maximum over windows, padding with -inf: ``torch.nn.MaxPool2d`` (no dilation, floor mode).

    >>> MaxPool2d(3, 2, 1)(np.zeros((1, 1, 8, 8), np.float32)).shape
    (1, 1, 4, 4)
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def jpeg_form(self, relu_frequencies=15, relu="asm"):
        return self.twin(DCTMaxPool2d)


class Normalize(Module):
    """``(x - mean) / std`` per channel: the input normalization, kept in the model.

    Keeping it in the model lets :func:`dctnet.convert` apply it exactly to DCT
    coefficients. It has no parameters. An input must have one channel per
    entry of ``mean`` (or any number, when ``mean`` and ``std`` have one).
    """

    input_ndim = 4

    def __init__(self, mean, std):
        mean, std = np.asarray(mean, np.float64).reshape(-1), np.asarray(std, np.float64).reshape(-1)
        if not np.all(std > 0) or mean.size != std.size:
            raise ValueError(f"Normalize needs mean and std of equal length with std > 0, found {mean}, {std}")
        self.mean, self.std = mean, std

    def _expected_channels(self):
        return None if self.mean.size == 1 else self.mean.size

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
    input_ndim = 5

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
        if _is_empty(x):
            return _empty_like_output(self, x)
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
    input_ndim = 5
    _function = staticmethod(F.dct_batch_norm)

    def forward(self, x):
        return super().forward(self._signal(x))


class ASMReLU(EvaluatedLayer, Module):
    """ReLU on DCT coefficients by spatial masking from ``frequencies`` (1..15).

    ``method="asm"`` (the paper's ASM; exact at 15) or ``"apx"`` (the paper's comparison:
    ReLU of the approximated pixels). ``frequencies`` is checked here, not at the first
    forward; NumPy integers are accepted.
    """

    input_domain = "jpeg"
    input_ndim = 5

    def __init__(self, frequencies=15, method="asm"):
        if method not in ("asm", "apx"):
            raise ValueError(f"method must be 'asm' or 'apx', found {method!r}")
        frequency_count(frequencies)  # raises ValueError unless an integer 1..15
        self.frequencies, self.method = int(frequencies), method

    def forward(self, x):
        return F.dct_relu(self._signal(x), self.frequencies, self.method)


class DCTGlobalAvgPool(EvaluatedLayer, Module):
    """(N, C, BH, BW, 64) -> (N, C): the mean of the DC coefficients over 8."""

    input_domain = "jpeg"
    input_ndim = 5

    def forward(self, x):
        return F.dct_global_avg_pool(self._signal(x))


class DCTMaxPool2d(EvaluatedLayer, MaxPool2d):
    """:class:`MaxPool2d` on DCT coefficients, exactly: IDCT, max-pool, DCT (:func:`~dctnet.functional.dct_max_pool2d`)."""

    input_domain = "jpeg"

    def forward(self, x):
        return F.dct_max_pool2d(self._signal(x), self.kernel_size, self.stride, self.padding)


class DCTNormalize(EvaluatedLayer, Normalize):
    """:class:`Normalize` applied to DCT coefficients (only the DC moves)."""

    input_domain = "jpeg"
    input_ndim = 5

    def forward(self, x):
        return F.dct_normalize(self._signal(x), self.mean, self.std)


def __getattr__(name):
    if name == "JPEGLayer":  # it was reachable here; it builds on this module, so it lives above it
        raise AttributeError("dctnet.nn.JPEGLayer moved to dctnet.jpegdl.JPEGLayer (also dctnet.JPEGLayer)")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
