"""Optimizers and schedules against PyTorch's documented algorithms (and torch itself when installed)."""

import json
import math

import numpy as np
import pytest

from dctnet import Tensor, optim

SHAPES = [(3, 4), (5,)]
STEPS = 6

SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=1e-2),
    dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3),
]
ADAM_CASES = [
    dict(lr=1e-2),
    dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2),
    dict(lr=1e-2, amsgrad=True),
    dict(lr=1e-2, weight_decay=0.1, amsgrad=True),
]
CASES = (
    [("SGD", c) for c in SGD_CASES]
    + [("Adam", c) for c in ADAM_CASES]
    + [("AdamW", c) for c in ADAM_CASES]
)


# -- plain NumPy transcriptions of the torch.optim documentation ----------------


def reference_sgd(params, grads, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False):
    """Run SGD for len(grads) steps; grads[t][i] is the gradient of param i at step t."""
    params = [p.copy() for p in params]
    bufs = [None] * len(params)
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            if weight_decay:
                g = g + weight_decay * params[i]
            if momentum:
                bufs[i] = g.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * g
                g = g + momentum * bufs[i] if nesterov else bufs[i]
            params[i] = params[i] - lr * g
    return params


def reference_adam(params, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, decoupled=False):
    params = [p.copy() for p in params]
    b1, b2 = betas
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    vmax = [np.zeros_like(p) for p in params]
    for t, step_grads in enumerate(grads, start=1):
        for i, g in enumerate(step_grads):
            if decoupled:
                params[i] = params[i] * (1 - lr * weight_decay)
            elif weight_decay:
                g = g + weight_decay * params[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat = m[i] / (1 - b1**t)
            if amsgrad:
                vmax[i] = np.maximum(vmax[i], v[i])
                v_hat = vmax[i] / (1 - b2**t)
            else:
                v_hat = v[i] / (1 - b2**t)
            params[i] = params[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return params


def reference(kind, params, grads, options):
    if kind == "SGD":
        return reference_sgd(params, grads, **options)
    if kind == "AdamW":
        options = {"weight_decay": 1e-2, **options}
    return reference_adam(params, grads, decoupled=kind == "AdamW", **options)


def make_problem(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(STEPS)]
    return params, grads


def run_dctnet(kind, params, grads, options):
    tensors = [Tensor(p.copy(), requires_grad=True) for p in params]
    opt = optim.OPTIMIZERS[kind](tensors, **options)
    for step_grads in grads:
        for t, g in zip(tensors, step_grads):
            t.grad = g.copy()
        opt.step()
    return [t.data for t in tensors]


@pytest.mark.parametrize("kind,options", CASES)
def test_matches_numpy_reference(kind, options):
    params, grads = make_problem()
    got = run_dctnet(kind, params, grads, options)
    want = reference(kind, params, grads, options)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind,options", CASES)
def test_matches_torch(kind, options):
    torch = pytest.importorskip("torch")
    params, grads = make_problem()
    got = run_dctnet(kind, params, grads, options)
    tensors = [torch.tensor(p, requires_grad=True) for p in params]
    opt = getattr(torch.optim, kind)(tensors, **options)
    for step_grads in grads:
        for t, g in zip(tensors, step_grads):
            t.grad = torch.tensor(g)
        opt.step()
    for g, t in zip(got, tensors):
        np.testing.assert_allclose(g, t.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind,options", CASES)
def test_float32_stays_float32(kind, options):
    params, grads = make_problem(np.float32)
    got = run_dctnet(kind, params, grads, options)
    want = reference(kind, [p.astype(np.float64) for p in params], [[g.astype(np.float64) for g in s] for s in grads], options)
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_updates_in_place_and_skips_params_without_grad():
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(2), requires_grad=True)
    buffer = a.data
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = np.ones(3)
    opt.step()
    assert a.data is buffer and not np.all(a.data == 1)
    np.testing.assert_array_equal(b.data, np.ones(2))
    assert 1 not in opt.state  # no state for a parameter that never had a gradient
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_param_groups_override_defaults():
    a = Tensor(np.ones(2), requires_grad=True)
    b = Tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad, b.grad = np.ones(2), np.ones(2)
    opt.step()
    np.testing.assert_allclose(a.data, 0.9)
    np.testing.assert_allclose(b.data, 0.0)
    assert opt.config()["param_groups"][1]["params"] == [1]


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: optim.SGD([], lr=0.1), "empty"),
        (lambda p: optim.SGD([Tensor(np.ones(2))], lr=0.1), "requires_grad"),
        (lambda p: optim.SGD([p, p], lr=0.1), "more than once"),
        (lambda p: optim.SGD([p], lr=-1), "lr"),
        (lambda p: optim.SGD([p], lr=0.1, nesterov=True), "nesterov"),
        (lambda p: optim.Adam([p], betas=(0.9, 1.5)), "betas"),
        (lambda p: optim.SGD([{"params": [p], "betas": (0.9, 0.9)}], lr=0.1), "no option"),
    ],
)
def test_bad_arguments(make, match):
    p = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises((ValueError, TypeError), match=match):
        make(p)


def test_bad_gradient_shape():
    p = Tensor(np.ones(2), requires_grad=True)
    p.grad = np.ones(3)
    with pytest.raises(ValueError, match="shape"):
        optim.SGD([p], lr=0.1).step()


@pytest.mark.parametrize("kind", ["SGD", "Adam", "AdamW"])
def test_minimises_quadratic(kind):
    rng = np.random.default_rng(1)
    target = rng.standard_normal(4)
    w = Tensor(np.zeros(4), requires_grad=True)
    options = {"SGD": dict(lr=0.1, momentum=0.9), "Adam": dict(lr=0.05), "AdamW": dict(lr=0.05, weight_decay=0.0)}
    opt = optim.OPTIMIZERS[kind]([w], **options[kind])
    for _ in range(500):
        opt.zero_grad()
        diff = w - Tensor(target)
        (diff * diff).sum().backward()
        opt.step()
    np.testing.assert_allclose(w.data, target, atol=1e-3)


# -- state_dict ------------------------------------------------------------------


@pytest.mark.parametrize("kind,options", CASES)
def test_state_dict_resume_is_exact(kind, options):
    params, grads = make_problem(np.float32)
    uninterrupted = run_dctnet(kind, params, grads, options)

    first = [Tensor(p.copy(), requires_grad=True) for p in params]
    opt = optim.OPTIMIZERS[kind](first, **options)
    for step_grads in grads[:3]:
        for t, g in zip(first, step_grads):
            t.grad = g.copy()
        opt.step()
    saved = opt.state_dict()
    config = json.loads(json.dumps(saved["config"]))  # the config must survive JSON
    state = {k: np.array(v) for k, v in saved["state"].items()}

    resumed = [Tensor(t.data.copy(), requires_grad=True) for t in first]
    opt2 = optim.from_config(config, resumed)
    opt2.load_state_dict({"config": config, "state": state})
    for step_grads in grads[3:]:
        for t, g in zip(resumed, step_grads):
            t.grad = g.copy()
        opt2.step()
    for u, r in zip(uninterrupted, resumed):
        np.testing.assert_array_equal(u, r.data)


def test_state_dict_contents():
    p = Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    opt = optim.Adam([p], lr=0.1, amsgrad=True)
    p.grad = np.ones((2, 2), np.float32)
    opt.step()
    sd = opt.state_dict()
    assert sd["config"]["type"] == "Adam"
    assert sd["config"]["param_groups"] == [
        {"lr": 0.1, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0, "amsgrad": True, "params": [0]}
    ]
    assert sorted(sd["state"]) == ["0.exp_avg", "0.exp_avg_sq", "0.max_exp_avg_sq", "0.step"]
    assert sd["state"]["0.step"] == 1 and sd["state"]["0.exp_avg"].dtype == np.float32


def test_load_state_dict_restores_hyperparameters():
    p = Tensor(np.ones(2), requires_grad=True)
    sd = optim.SGD([p], lr=0.5, momentum=0.9).state_dict()
    opt = optim.SGD([p], lr=0.1)
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[0]["momentum"] == 0.9


def _adam_state():
    p = Tensor(np.ones(3), requires_grad=True)
    opt = optim.Adam([p])
    p.grad = np.ones(3)
    opt.step()
    return opt.state_dict()


@pytest.mark.parametrize(
    "tamper,match",
    [
        (lambda sd: sd["config"].update(type="SGD"), "not 'Adam'"),
        (lambda sd: sd["config"]["param_groups"][0].update(params=[0, 1]), "sizes"),
        (lambda sd: sd["state"].update({"0.exp_avg": np.ones(4)}), "shape"),
        (lambda sd: sd["state"].update({"3.exp_avg": np.ones(3)}), "unexpected"),
        (lambda sd: sd["state"].update({"0.momentum_buffer": np.ones(3)}), "unexpected"),
        (lambda sd: sd["config"]["param_groups"][0].update(code="os.system"), "unknown option"),
        (lambda sd: sd["config"].update(param_groups="x"), "malformed"),
        (lambda sd: sd["state"].pop("0.exp_avg_sq"), "lacks"),
    ],
)
def test_load_state_dict_validates(tamper, match):
    sd = _adam_state()
    tamper(sd)
    opt = optim.Adam([Tensor(np.ones(3), requires_grad=True)])
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(sd)
    assert opt.state == {}  # nothing half-loaded


@pytest.mark.parametrize(
    "config,match",
    [
        ({"type": "os.system", "param_groups": []}, "unknown optimizer"),
        ({"type": "SGD", "param_groups": [{"params": [0, 7], "lr": 0.1}]}, "refers to"),
        ({"type": "SGD", "param_groups": [{"params": [0], "lr": 0.1}]}, "covers"),
        ({"type": "SGD"}, "malformed"),
    ],
)
def test_from_config_validates(config, match):
    params = [Tensor(np.ones(2), requires_grad=True) for _ in range(2)]
    with pytest.raises(ValueError, match=match):
        optim.from_config(config, params)


# -- schedulers ------------------------------------------------------------------

SCHEDULES = [
    ("StepLR", dict(step_size=3, gamma=0.5), lambda base, e: base * 0.5 ** (e // 3)),
    ("MultiStepLR", dict(milestones=[2, 5], gamma=0.1), lambda base, e: base * 0.1 ** ((e >= 2) + (e >= 5))),
    (
        "CosineAnnealingLR",
        dict(T_max=10, eta_min=0.01),
        lambda base, e: 0.01 + (base - 0.01) * (1 + math.cos(math.pi * e / 10)) / 2,
    ),
    ("LinearLR", dict(start_factor=0.1, total_iters=4), lambda base, e: base * (0.1 + 0.9 * min(e, 4) / 4)),
]


def _two_group_sgd():
    a, b = (Tensor(np.ones(2), requires_grad=True) for _ in range(2))
    return optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.3}], lr=1.0)


@pytest.mark.parametrize("name,options,closed_form", SCHEDULES)
def test_scheduler_closed_form(name, options, closed_form):
    opt = _two_group_sgd()
    sched = optim.SCHEDULERS[name](opt, **options)
    for epoch in range(12):
        want = [closed_form(1.0, epoch), closed_form(0.3, epoch)]
        np.testing.assert_allclose(sched.get_last_lr(), want, rtol=1e-12)
        np.testing.assert_allclose([g["lr"] for g in opt.param_groups], want, rtol=1e-12)
        sched.step()


@pytest.mark.parametrize("name,options,closed_form", SCHEDULES)
def test_scheduler_matches_torch(name, options, closed_form):
    torch = pytest.importorskip("torch")
    opt = _two_group_sgd()
    sched = optim.SCHEDULERS[name](opt, **options)
    a, b = (torch.zeros(2, requires_grad=True) for _ in range(2))
    topt = torch.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.3}], lr=1.0)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **options)
    for _ in range(12):
        np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-9, atol=1e-12)
        topt.step()
        tsched.step()
        sched.step()


@pytest.mark.parametrize("name,options,closed_form", SCHEDULES)
def test_scheduler_state_dict_round_trip(name, options, closed_form):
    opt = _two_group_sgd()
    sched = optim.SCHEDULERS[name](opt, **options)
    for _ in range(4):
        sched.step()
    state = json.loads(json.dumps(sched.state_dict()))

    opt2 = optim.from_config(json.loads(json.dumps(opt.config())), [p for g in opt.param_groups for p in g["params"]])
    sched2 = optim.SCHEDULERS[name](opt2, **options)
    sched2.load_state_dict(state)
    for _ in range(5):
        assert sched2.get_last_lr() == sched.get_last_lr()
        sched.step()
        sched2.step()


def test_scheduler_rejects_other_state():
    sched = optim.StepLR(_two_group_sgd(), step_size=2)
    state = optim.CosineAnnealingLR(_two_group_sgd(), T_max=3).state_dict()
    with pytest.raises(ValueError, match="CosineAnnealingLR"):
        sched.load_state_dict(state)


def test_cupy_matches_numpy():
    import dctnet

    if not dctnet.cupy_available():
        pytest.skip("needs CuPy with a GPU")
    params, grads = make_problem(np.float32)
    for kind, options in CASES:
        want = run_dctnet(kind, params, grads, options)
        tensors = [Tensor(dctnet.to_device(p, "gpu"), requires_grad=True) for p in params]
        opt = optim.OPTIMIZERS[kind](tensors, **options)
        for step_grads in grads:
            for t, g in zip(tensors, step_grads):
                t.grad = dctnet.to_device(g, "gpu")
            opt.step()
        state = opt.state_dict()["state"]
        resumed = optim.OPTIMIZERS[kind]([Tensor(t.data.copy(), requires_grad=True) for t in tensors], **options)
        resumed.load_state_dict({"config": opt.config(), "state": {k: dctnet.asnumpy(v) for k, v in state.items()}})
        for t, w in zip(tensors, want):
            assert t.data.dtype == np.float32
            np.testing.assert_allclose(dctnet.asnumpy(t.data), w, rtol=1e-5, atol=1e-6)
        for i, fields in resumed.state.items():
            for field, value in fields.items():
                assert field == "step" or dctnet.get_array_module(value) is not np  # state follows its parameter
