"""optim.WarmupCosineLR: the per-iteration schedule against its closed form and PyTorch."""

import json
import math

import numpy as np
import pytest

from dctnet import Tensor, optim


def two_groups():
    a, b = (Tensor(np.ones(2), requires_grad=True) for _ in range(2))
    return optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.3}], lr=1.0, momentum=0.9, nesterov=True)


def closed_form(base, t, total, warmup, start, eta_min):
    if t < warmup:
        return base * (start + (1 - start) * t / warmup)
    if t >= total:
        return eta_min
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * (t - warmup) / (total - warmup))) / 2


OPTIONS = [dict(total_steps=10), dict(total_steps=12, warmup_steps=3, warmup_start_factor=0.25, eta_min=0.01),
           dict(total_steps=5, warmup_steps=4)]


@pytest.mark.parametrize("options", OPTIONS)
def test_closed_form_and_ends_annealed(options):
    opt = two_groups()
    sched = optim.WarmupCosineLR(opt, **options)
    full = {"warmup_steps": 0, "warmup_start_factor": 0.1, "eta_min": 0.0, **options}
    total = full["total_steps"]
    for t in range(total + 3):
        want = [closed_form(base, t, total, full["warmup_steps"], full["warmup_start_factor"], full["eta_min"])
                for base in (1.0, 0.3)]
        np.testing.assert_allclose(sched.get_last_lr(), want, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose([g["lr"] for g in opt.param_groups], want, rtol=1e-12, atol=1e-15)
        sched.step()
    assert sched.get_last_lr() == [full["eta_min"]] * 2  # a short run ends at the bottom


@pytest.mark.parametrize("options", OPTIONS)
def test_matches_torch_sequential_warmup_then_cosine(options):
    torch = pytest.importorskip("torch")
    sched = optim.WarmupCosineLR(two_groups(), **options)
    total, warmup = options["total_steps"], options.get("warmup_steps", 0)
    a, b = (torch.zeros(2, requires_grad=True) for _ in range(2))
    topt = torch.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.3}], lr=1.0)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=total - warmup, eta_min=options.get("eta_min", 0.0))
    if warmup:
        start = options.get("warmup_start_factor", 0.1)
        linear = torch.optim.lr_scheduler.LinearLR(topt, start_factor=start, total_iters=warmup)
        tsched = torch.optim.lr_scheduler.SequentialLR(topt, [linear, cosine], milestones=[warmup])
    else:
        tsched = cosine
    for _ in range(total + 1):  # PyTorch's cosine is periodic past T_max; ours stays at eta_min
        np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-9, atol=1e-12)
        topt.step()
        tsched.step()
        sched.step()


def test_state_dict_round_trip():
    opt = two_groups()
    sched = optim.WarmupCosineLR(opt, total_steps=20, warmup_steps=5)
    for _ in range(7):
        sched.step()
    state = json.loads(json.dumps(sched.state_dict()))
    assert state["type"] == "WarmupCosineLR" and optim.SCHEDULERS["WarmupCosineLR"] is optim.WarmupCosineLR
    resumed = optim.WarmupCosineLR(two_groups(), total_steps=1)
    resumed.load_state_dict(state)
    for _ in range(15):
        assert resumed.get_last_lr() == sched.get_last_lr()
        sched.step()
        resumed.step()


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(total_steps=0), "total_steps must be a positive integer"),
        (dict(total_steps=2.5), "total_steps must be a positive integer"),
        (dict(total_steps=5, warmup_steps=5), r"warmup_steps must be an integer in \[0, total_steps\)"),
        (dict(total_steps=5, warmup_steps=-1), "warmup_steps"),
        (dict(total_steps=5, warmup_start_factor=0), r"warmup_start_factor must be in \(0, 1\]"),
        (dict(total_steps=5, eta_min=-1), "eta_min must be >= 0"),
    ],
)
def test_rejects_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        optim.WarmupCosineLR(two_groups(), **options)


def test_per_step_flag():
    opt = two_groups()
    assert optim.WarmupCosineLR(opt, total_steps=3).per_step
    assert not optim.CosineAnnealingLR(opt, T_max=3).per_step
