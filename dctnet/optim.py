"""Optimizers and learning-rate schedules, with PyTorch's update rules.

Parameters are :class:`dctnet.Tensor` objects with ``requires_grad=True``;
:meth:`Optimizer.step` updates ``p.data`` in place with the parameter's own
array module (NumPy or CuPy) and keeps its dtype. State is plain data so that
model files can store it without pickle: :meth:`Optimizer.state_dict` returns
``{"config": <JSON dict>, "state": {"<param index>.<name>": array}}``.

>>> import numpy as np
>>> from dctnet import Tensor
>>> w = Tensor(np.array([1.0, -2.0]), requires_grad=True)
>>> opt = SGD([w], lr=0.1, momentum=0.9)
>>> for _ in range(200):
...     opt.zero_grad()
...     (w * w).sum().backward()
...     opt.step()
>>> bool(np.abs(w.data).max() < 1e-3)
True
"""

from __future__ import annotations

import bisect
import math
import numbers

import numpy as np

from .backend import asnumpy, get_array_module

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "OPTIMIZERS",
    "from_config",
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "CosineAnnealingLR",
    "LinearLR",
    "WarmupCosineLR",
    "SCHEDULERS",
]

# Group keys that are not hyperparameters of the optimizer itself: the
# schedulers remember each group's starting rate here, as PyTorch does.
_SCHEDULER_KEYS = ("initial_lr",)


def _check_number(value, name):
    """A finite number >= 0 (NaN and inf are refused: they would silently ruin every weight)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, found {value!r}")


class Optimizer:
    """Base class: parameter groups, ``zero_grad``, ``step`` and (de)serialisation.

    ``params`` is an iterable of tensors, or of dicts ``{"params": [...], **options}``
    whose options override ``defaults`` for that group (PyTorch's param groups).
    Parameters are numbered in the flat order of the groups; state keys use
    these numbers. Subclasses set ``state_names`` (the per-parameter buffers
    they may keep), ``required_state`` (those that must all be present once a
    parameter has state) and implement ``_update``.
    """

    state_names: tuple = ()
    required_state: tuple = ()

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list; pass model.parameters()")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        self.param_groups = []
        seen = set()
        for group in params:
            self._add_group(group, seen)
        self.state = {}  # flat parameter index -> {name: array or int}

    def _add_group(self, group, seen):
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError("a parameter group must be a dict with a 'params' list")
        unknown = set(group) - {"params", *self.defaults, *_SCHEDULER_KEYS}
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no option(s) {sorted(unknown)}; "
                f"known options are {sorted(self.defaults)}"
            )
        tensors = list(group["params"])
        for p in tensors:
            if not getattr(p, "_is_tensor", False) or not p.requires_grad:
                raise TypeError(
                    f"optimizers take Tensors with requires_grad=True, found {type(p).__name__}; "
                    "pass model.parameters()"
                )
            if id(p) in seen:
                raise ValueError("a parameter appears more than once in the optimizer's groups")
            seen.add(id(p))
        options = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
        self._check_options(options)
        self.param_groups.append({"params": tensors, **options})

    def _check_options(self, options):
        _check_number(options.get("lr", 0), "lr")

    def _indexed_params(self):
        """(flat index, param, group) for every parameter, in order."""
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                yield i, p, group
                i += 1

    def zero_grad(self):
        """Forget every parameter's gradient (sets ``.grad = None``)."""
        for _, p, _ in self._indexed_params():
            p.grad = None

    def step(self):
        """Update every parameter that has a gradient; others are skipped."""
        for i, p, group in self._indexed_params():
            if p.grad is None:
                continue
            xp = get_array_module(p.data)
            grad = p.grad
            if get_array_module(grad) is not xp:
                raise TypeError(f"parameter {i} and its gradient are on different devices")
            if grad.shape != p.data.shape:
                raise ValueError(f"parameter {i} has shape {p.data.shape} but its gradient {grad.shape}")
            grad = grad.astype(p.data.dtype, copy=False)
            self._update(p.data, grad, self.state.setdefault(i, {}), group, xp)

    def _update(self, p, grad, state, group, xp):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- serialisation --------------------------------------------------------
    def config(self) -> dict:
        """The optimizer's type and hyperparameters as a JSON-serializable dict."""
        groups = []
        start = 0
        for group in self.param_groups:
            n = len(group["params"])
            options = {k: _plain(v) for k, v in group.items() if k != "params"}
            groups.append({**options, "params": list(range(start, start + n))})
            start += n
        defaults = {k: _plain(v) for k, v in self.defaults.items()}
        return {"type": type(self).__name__, "defaults": defaults, "param_groups": groups}

    def state_dict(self) -> dict:
        """``{"config": config(), "state": {"<index>.<name>": array}}``.

        Arrays are the live buffers (not copies); step counts are 0-d int64
        NumPy arrays, so every value is either JSON or an array.
        """
        state = {}
        for i in sorted(self.state):
            for name, value in self.state[i].items():
                state[f"{i}.{name}"] = np.array(value, dtype=np.int64) if isinstance(value, int) else value
        return {"config": self.config(), "state": state}

    def load_state_dict(self, state_dict: dict):
        """Restore hyperparameters and buffers saved by :meth:`state_dict`.

        Buffers are copied onto each parameter's device and dtype. Raises
        ``ValueError`` when the saved optimizer does not fit this one.
        """
        name = type(self).__name__
        config, saved = state_dict.get("config"), state_dict.get("state")
        if not isinstance(config, dict) or not isinstance(saved, dict):
            raise ValueError(f"an optimizer state must be {{'config': dict, 'state': dict}}, found {sorted(state_dict)}")
        if config.get("type") != name:
            raise ValueError(f"state is for optimizer {config.get('type')!r}, not {name!r}")
        groups = config.get("param_groups")
        if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
            raise ValueError(f"malformed {name} config: param_groups must be a list of dicts with a 'params' list")
        sizes = [len(g["params"]) for g in self.param_groups]
        if [len(g["params"]) for g in groups] != sizes:
            raise ValueError(
                f"saved optimizer has groups of sizes {[len(g['params']) for g in groups]}, "
                f"this one {sizes}; build it on the same model's parameters"
            )
        params = [p for _, p, _ in self._indexed_params()]
        new_state = {}
        for key, value in saved.items():
            index, _, field = key.partition(".")
            if not index.isdigit() or int(index) >= len(params) or field not in self.state_names:
                raise ValueError(f"unexpected {name} state entry {key!r}")
            p = params[int(index)].data
            new_state.setdefault(int(index), {})[field] = _restore(key, value, p)
        for index, fields in new_state.items():
            missing = set(self.required_state) - set(fields)
            if missing:
                raise ValueError(f"{name} state of parameter {index} lacks {sorted(missing)}")
        # Validate every group's options before changing anything.
        options = []
        for group in groups:
            opts = {k: v for k, v in group.items() if k != "params"}
            unknown = set(opts) - {*self.defaults, *_SCHEDULER_KEYS}
            if unknown:
                raise ValueError(f"saved {name} config has unknown option(s) {sorted(unknown)}")
            self._check_options({**self.defaults, **opts})
            options.append(opts)
        for group, opts in zip(self.param_groups, options):
            group.update(opts)
        self.state = new_state

    def __repr__(self):
        return f"{type(self).__name__}({self.config()['param_groups']})"


def _plain(value):
    """Tuples become lists so the config is JSON (and compares equal after a round trip)."""
    return list(value) if isinstance(value, tuple) else value


def _restore(key, value, p):
    """A saved state value copied onto ``p``'s device and dtype (steps become ints)."""
    if key.endswith(".step"):
        return int(asnumpy(value))
    value = asnumpy(value) if get_array_module(p) is np else value
    if value.shape != p.shape:
        raise ValueError(f"optimizer state {key!r} has shape {value.shape}, its parameter {p.shape}")
    return get_array_module(p).array(value, dtype=p.dtype, copy=True)


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 decay.

    Exactly ``torch.optim.SGD``: ``g += wd * p``; the momentum buffer starts
    as the first gradient, then ``b = momentum * b + (1 - dampening) * g``;
    ``g = g + momentum * b`` (Nesterov) or ``g = b``; ``p -= lr * g``.

    >>> import numpy as np
    >>> from dctnet import Tensor
    >>> w = Tensor(np.array([1.0]), requires_grad=True)
    >>> w.grad = np.array([2.0])
    >>> SGD([w], lr=0.5).step()
    >>> w.data
    array([0.])
    """

    state_names = ("momentum_buffer",)

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    def _check_options(self, o):
        super()._check_options(o)
        for name in ("momentum", "dampening", "weight_decay"):
            _check_number(o[name], name)
        if o["nesterov"] and (o["momentum"] <= 0 or o["dampening"] != 0):
            raise ValueError("nesterov momentum needs momentum > 0 and dampening = 0")

    def _update(self, p, grad, state, group, xp):
        wd, momentum = group["weight_decay"], group["momentum"]
        if wd != 0:
            grad = grad + wd * p
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        p -= group["lr"] * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, L2 decay and optional AMSGrad.

    Exactly ``torch.optim.Adam``: ``g += wd * p``; ``m = b1 m + (1-b1) g``;
    ``v = b2 v + (1-b2) g^2``; with ``t`` this parameter's step count,
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``
    (AMSGrad uses the running maximum of ``v``).

    >>> import numpy as np
    >>> from dctnet import Tensor
    >>> w = Tensor(np.array([1.0]), requires_grad=True)
    >>> w.grad = np.array([3.0])
    >>> Adam([w], lr=0.1).step()  # the first Adam step moves by about lr
    >>> w.data.round(6)
    array([0.9])
    """

    state_names = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    required_state = ("step", "exp_avg", "exp_avg_sq")
    _decoupled = False  # AdamW decays the weights instead of the gradient

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        super().__init__(params, defaults)

    def _check_options(self, o):
        super()._check_options(o)
        betas = o["betas"]
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), found {betas!r}")
        for name in ("eps", "weight_decay"):
            _check_number(o[name], name)

    def _update(self, p, grad, state, group, xp):
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p)
            state["exp_avg_sq"] = xp.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        if wd != 0:
            if self._decoupled:
                p *= 1 - lr * wd
            else:
                grad = grad + wd * p
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        if group["amsgrad"]:
            vmax = state.setdefault("max_exp_avg_sq", xp.zeros_like(p))
            xp.maximum(vmax, v, out=vmax)
            v = vmax
        denom = xp.sqrt(v) / math.sqrt(1 - beta2**t) + eps
        p -= (lr / (1 - beta1**t)) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * wd``
    before the Adam step, exactly as ``torch.optim.AdamW``.

    >>> import numpy as np
    >>> from dctnet import Tensor
    >>> w = Tensor(np.array([1.0]), requires_grad=True)
    >>> w.grad = np.array([0.0])
    >>> AdamW([w], lr=0.1, weight_decay=0.5).step()  # zero gradient: only the decay acts
    >>> w.data
    array([0.95])
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


OPTIMIZERS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}


def from_config(config: dict, params) -> Optimizer:
    """Rebuild an optimizer from :meth:`Optimizer.config` over ``params``
    (the same parameters, in the same order, e.g. ``model.parameters()``).

    Only the classes in :data:`OPTIMIZERS` can be built. Buffers are not part
    of the config: restore them with :meth:`Optimizer.load_state_dict`.

    >>> import numpy as np
    >>> from dctnet import Tensor
    >>> w = Tensor(np.zeros(2), requires_grad=True)
    >>> from_config(SGD([w], lr=0.1).config(), [w]).param_groups[0]["lr"]
    0.1
    """
    if not isinstance(config, dict):
        raise ValueError(f"optimizer config must be a dict, found {type(config).__name__}")
    kind = config.get("type")
    if kind not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer type {kind!r}; known types are {sorted(OPTIMIZERS)}")
    params = list(params)
    groups = []
    try:
        for group in config["param_groups"]:
            indices = group["params"]
            if any(not isinstance(i, int) or not 0 <= i < len(params) for i in indices):
                raise ValueError(f"optimizer config refers to parameters {indices}, but there are {len(params)}")
            groups.append({**group, "params": [params[i] for i in indices]})
        if sum(len(g["params"]) for g in groups) != len(params):
            raise ValueError(
                f"optimizer config covers {sum(len(g['params']) for g in groups)} parameters, "
                f"the model has {len(params)}"
            )
        return OPTIMIZERS[kind](groups, **config.get("defaults", {}))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed {kind} optimizer config: {exc}") from exc


# -- learning-rate schedules ---------------------------------------------------


class LRScheduler:
    """Base class: sets each group's ``lr`` from a closed form of the step count.

    The first rate is applied at construction (``last_epoch = 0``); each
    :meth:`step` advances one epoch (or iteration, as you choose to call it).
    Subclasses implement ``_factor(base_lr, epoch)`` -> learning rate.
    """

    _options: tuple = ()  # attribute names saved in state_dict
    per_step = False  # True: a schedule over optimizer steps, to step after every one (not every epoch)

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"expected a dctnet.optim.Optimizer, found {type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def _apply(self):
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self._lr(base, self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _lr(self, base_lr, epoch):  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self):
        """Advance one epoch and set the new learning rates."""
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list:
        """The learning rate of each group set by the last :meth:`step`."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """A JSON-serializable dict: type, options, base rates and epoch."""
        options = {name: _plain(getattr(self, name)) for name in self._options}
        return {"type": type(self).__name__, "last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs), **options}

    def load_state_dict(self, state: dict):
        """Restore :meth:`state_dict`'s values and re-apply the rates."""
        if state.get("type") != type(self).__name__:
            raise ValueError(f"scheduler state is for {state.get('type')!r}, not {type(self).__name__!r}")
        if len(state["base_lrs"]) != len(self.base_lrs):
            raise ValueError(f"scheduler state has {len(state['base_lrs'])} groups, the optimizer {len(self.base_lrs)}")
        for name in self._options:
            setattr(self, name, state[name])
        self.base_lrs = list(state["base_lrs"])
        self.last_epoch = int(state["last_epoch"])
        self._apply()


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (epoch // step_size)``.

    >>> import numpy as np
    >>> from dctnet import Tensor
    >>> opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    >>> s = StepLR(opt, step_size=2, gamma=0.5)
    >>> for _ in range(4):
    ...     s.step()
    >>> s.get_last_lr()
    [0.25]
    """

    _options = ("step_size", "gamma")

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        if int(step_size) != step_size or step_size < 1:
            raise ValueError(f"step_size must be a positive integer, found {step_size!r}")
        self.step_size, self.gamma = int(step_size), gamma
        super().__init__(optimizer)

    def _lr(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """``lr = base_lr * gamma ** (number of milestones <= epoch)``.

    >>> import numpy as np
    >>> from dctnet import Tensor
    >>> opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    >>> s = MultiStepLR(opt, milestones=[1, 3], gamma=0.5)
    >>> for _ in range(3):
    ...     s.step()
    >>> s.get_last_lr()
    [0.25]
    """

    _options = ("milestones", "gamma")

    def __init__(self, optimizer, milestones, gamma: float = 0.1):
        self.milestones, self.gamma = sorted(int(m) for m in milestones), gamma
        super().__init__(optimizer)

    def _lr(self, base_lr, epoch):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``
    (PyTorch's closed form, periodic past ``T_max``).

    >>> import numpy as np
    >>> from dctnet import Tensor
    >>> opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    >>> s = CosineAnnealingLR(opt, T_max=2)
    >>> s.step()
    >>> round(s.get_last_lr()[0], 12)
    0.5
    """

    _options = ("T_max", "eta_min")

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        if T_max <= 0:
            raise ValueError(f"T_max must be > 0, found {T_max!r}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def _lr(self, base_lr, epoch):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LinearLR(LRScheduler):
    """Linear warm-up (PyTorch's ``LinearLR``): the factor goes from
    ``start_factor`` to ``end_factor`` over ``total_iters`` steps, then stays.

    >>> import numpy as np
    >>> from dctnet import Tensor
    >>> opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    >>> s = LinearLR(opt, start_factor=0.25, total_iters=3)
    >>> s.get_last_lr()
    [0.25]
    >>> s.step()
    >>> s.get_last_lr()
    [0.5]
    """

    _options = ("start_factor", "end_factor", "total_iters")

    def __init__(self, optimizer, start_factor: float = 1 / 3, end_factor: float = 1.0, total_iters: int = 5):
        if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
            raise ValueError("start_factor must be in (0, 1] and end_factor in [0, 1]")
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, int(total_iters)
        super().__init__(optimizer)

    def _lr(self, base_lr, epoch):
        progress = min(epoch, self.total_iters) / self.total_iters if self.total_iters else 1.0
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)


class WarmupCosineLR(LRScheduler):
    """A per-iteration schedule: linear warm-up, then one cosine down to ``eta_min``.

    Call :meth:`step` after every optimizer step (``per_step`` is True, so a
    training loop knows). For step ``t`` (0 at construction) with ``w = warmup_steps`` and ``T = total_steps``:

    * ``t < w``: ``lr = base_lr * (f + (1 - f) * t / w)`` with
      ``f = warmup_start_factor`` (PyTorch's ``LinearLR``);
    * ``w <= t <= T``: ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * (t - w) / (T - w))) / 2``
      (PyTorch's ``CosineAnnealingLR`` with ``T_max = T - w``);
    * ``t > T``: ``eta_min``.

    So a run of ``T`` steps ends annealed, however few epochs it has. It is
    PyTorch's ``SequentialLR([LinearLR(f, total_iters=w), CosineAnnealingLR(T - w, eta_min)],
    milestones=[w])`` stepped per iteration.

    >>> import numpy as np
    >>> from dctnet import Tensor
    >>> opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    >>> s = WarmupCosineLR(opt, total_steps=6, warmup_steps=2, warmup_start_factor=0.5)
    >>> rates = []
    >>> for _ in range(7):
    ...     rates.append(round(s.get_last_lr()[0], 6))
    ...     s.step()
    >>> rates
    [0.5, 0.75, 1.0, 0.853553, 0.5, 0.146447, 0.0]
    """

    _options = ("total_steps", "warmup_steps", "warmup_start_factor", "eta_min")
    per_step = True

    def __init__(self, optimizer, total_steps: int, warmup_steps: int = 0, warmup_start_factor: float = 0.1,
                 eta_min: float = 0.0):
        if int(total_steps) != total_steps or total_steps < 1:
            raise ValueError(f"total_steps must be a positive integer, found {total_steps!r}")
        if int(warmup_steps) != warmup_steps or not 0 <= warmup_steps < total_steps:
            raise ValueError(f"warmup_steps must be an integer in [0, total_steps), found {warmup_steps!r} "
                             f"for total_steps {total_steps}")
        if not 0 < warmup_start_factor <= 1:
            raise ValueError(f"warmup_start_factor must be in (0, 1], found {warmup_start_factor!r}")
        if eta_min < 0:
            raise ValueError(f"eta_min must be >= 0, found {eta_min!r}")
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)
        self.warmup_start_factor, self.eta_min = warmup_start_factor, eta_min
        super().__init__(optimizer)

    def _lr(self, base_lr, step):
        w, total = self.warmup_steps, self.total_steps
        if step < w:
            f = self.warmup_start_factor
            return base_lr * (f + (1 - f) * step / w)
        if step >= total:
            return self.eta_min
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * (step - w) / (total - w))) / 2


SCHEDULERS = {cls.__name__: cls for cls in (StepLR, MultiStepLR, CosineAnnealingLR, LinearLR, WarmupCosineLR)}
