"""dctnet.engine: the folded, fused inference network against model.eval(), and
engine.forward (fused training blocks) against model(x) in training mode."""

import numpy as np
import pytest

import dctnet
from dctnet import Tensor, engine, functional as F, models, nn, optim, threads


def randomize_batch_norms(model, rng):
    """Running statistics and affine parameters away from their initial 0/1."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean[...] = rng.normal(size=c)
            m.running_var[...] = rng.uniform(0.3, 3.0, c)
            m.weight.data[...] = rng.uniform(0.5, 1.5, c)
            m.bias.data[...] = rng.normal(size=c)
    return model


def copy_of(model, dtype=np.float32):
    twin = nn.from_config(model.config())
    twin.load_state_dict(model.state_dict())
    return twin.astype(dtype).train(model.training)


def reference(model, x):
    model.eval()
    with dctnet.no_grad():
        return model(Tensor(x)).data


TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=2e-4, atol=2e-4)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "batch, in_channels, size, widths",
    [
        (5, 3, (32, 32), (16, 32, 64)),  # the paper's network
        (1, 3, (32, 32), (16, 32, 64)),  # batch 1
        (3, 1, (13, 22), (5, 7, 9)),  # non-square, odd sizes, odd channel counts
        (11, 2, (9, 8), (3, 3, 4)),  # more images than one task holds
    ],
)
def test_fused_paper_resnet_matches_eval_model(rng, dtype, batch, in_channels, size, widths):
    nn.manual_seed(3)
    model = models.paper_resnet(in_channels, 10, widths=widths, mean=[100.0] * in_channels, std=[50.0] * in_channels)
    model = copy_of(randomize_batch_norms(model, rng), dtype)
    x = rng.uniform(0, 255, (batch, in_channels) + size).astype(dtype)
    out = engine.fuse(model)(x)
    assert isinstance(out, Tensor) and out.dtype == dtype and not out.requires_grad
    np.testing.assert_allclose(out.data, reference(model, x), **TOLERANCE[dtype])


def test_fused_layer_kinds(rng):
    """Identity shortcuts, a BN after a ReLU, a lone ReLU after an addition, a conv bias,
    pooling that cannot ride on a conv, Flatten + Linear on maps, a 5x5 stride-3 conv."""
    nn.manual_seed(1)
    block = nn.ResidualBlock(6, 6, 1)
    block.conv2, block.bn2 = nn.Identity(), nn.Identity()  # the addition then follows a ReLU
    model = nn.Sequential(
        nn.Normalize([1.0, 2.0], [3.0, 4.0]),
        nn.BatchNorm2d(2),  # follows no conv: a separate affine step
        nn.Conv2d(2, 6, 3, 1, 1, bias=True),
        nn.ReLU(),
        nn.BatchNorm2d(6),
        nn.ResidualBlock(6, 6, 1),  # identity shortcut
        block,
        nn.Conv2d(6, 4, 5, stride=3, padding=2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 5),
    )
    model = copy_of(randomize_batch_norms(model, rng), np.float64)
    x = rng.normal(size=(4, 2, 9, 8))
    np.testing.assert_allclose(engine.fuse(model)(x).data, reference(model, x), rtol=1e-10, atol=1e-10)
    pooled = copy_of(nn.Sequential(nn.Normalize([1.0], [2.0]), nn.GlobalAvgPool(), nn.Linear(1, 3)), np.float64)
    xs = rng.normal(size=(3, 1, 5, 6))
    np.testing.assert_allclose(engine.fuse(pooled)(xs).data, reference(pooled, xs), rtol=1e-12)
    lone = copy_of(nn.Sequential(nn.Normalize([5.0], [2.0]), nn.ReLU(), nn.Conv2d(3, 2, 3)), np.float64)
    xl = rng.normal(5, 3, size=(3, 3, 6, 7))  # one mean for 3 channels, then a ReLU on the affine step
    np.testing.assert_allclose(engine.fuse(lone)(xl).data, reference(lone, xl), rtol=1e-12, atol=1e-12)
    scalar = copy_of(nn.Sequential(nn.Normalize([5.0], [2.0]), nn.Conv2d(3, 2, 3)), np.float64)
    net = engine.fuse(scalar)  # one mean for 3 channels, applied while the input is transposed
    assert net.input_affine is not None
    np.testing.assert_allclose(net(xl).data, reference(scalar, xl), rtol=1e-12, atol=1e-12)
    maps = copy_of(nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3)), np.float64)  # maps out, 1x1 direct
    xm = rng.normal(size=(2, 2, 4, 5))
    np.testing.assert_allclose(engine.fuse(maps)(xm).data, reference(maps, xm), rtol=1e-12, atol=1e-12)
    assert engine.fuse(nn.Sequential(nn.Identity(), nn.Flatten()))(xm.astype(np.float32)).shape == (2, 40)


def test_fused_is_a_snapshot_and_leaves_the_model(rng):
    nn.manual_seed(0)
    model = models.paper_resnet(1, 10).train()
    x = rng.normal(size=(2, 1, 16, 16)).astype(np.float32)
    net = engine.fuse(model)
    assert model.training  # not switched to eval
    before = net(x).data
    for p in model.parameters():
        p.data += 1.0
    np.testing.assert_array_equal(net(x).data, before)
    np.testing.assert_allclose(engine.fuse(model)(x).data, reference(model, x), rtol=2e-4, atol=2e-4)


def test_fused_same_bits_with_any_thread_count(rng):
    nn.manual_seed(0)
    net = engine.fuse(models.paper_resnet(3, 10).eval())
    x = rng.normal(size=(37, 3, 32, 32)).astype(np.float32)
    old, outs = threads.num_threads(), []
    try:
        for n in (1, 2, 3):
            threads.set_num_threads(n)
            outs.append(net(Tensor(x)).data)
    finally:
        threads.set_num_threads(old)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_fuse_rejects_what_it_cannot_run(rng):
    with pytest.raises(TypeError, match=r"does not support model.1 \(AvgPool2d\); supported layers: Sequential"):
        engine.fuse(nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2)))
    with pytest.raises(TypeError, match=r"does not support model.1 \(DCTMaxPool2d\); supported JPEG-domain layers"):
        engine.fuse(dctnet.convert(nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2))))  # JPEG-domain models: test_engine_jpeg.py
    with pytest.raises(TypeError, match="takes a dctnet.nn.Module"):
        engine.fuse(lambda x: x)
    with pytest.raises(ValueError, match=r"model.1 \(Conv2d\) takes 4 channels, the model gives it 2"):
        engine.fuse(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(4, 2, 3)))
    with pytest.raises(ValueError, match="needs pooled or flattened"):
        engine.fuse(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(2, 3)))
    with pytest.raises(ValueError, match=r"needs \(N, C, H, W\) activations"):
        engine.fuse(nn.Sequential(nn.GlobalAvgPool(), nn.ReLU()))
    with pytest.raises(TypeError, match="float32 or float64"):
        engine.fuse(nn.Sequential(nn.Conv2d(1, 2, 3)).astype(np.float16))
    net = engine.fuse(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3)))
    with pytest.raises(TypeError, match=r"computes in float32, found x of dtype float64; cast it with .astype\(np.float32\)"):
        net(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"expects x of shape \(N, C, H, W\)"):
        net(np.zeros((1, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"model.0 \(Conv2d\) takes 1 channels, found 2"):
        net(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="kernel 3x3 is larger than its padded input 2x2"):
        net(np.zeros((1, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"model.2 \(Linear\) takes 8 features, the model gives it \(18,\)"):
        net(np.zeros((1, 1, 5, 5), np.float32))


# ----------------------------------------------------------------------------- training


def train_steps(model, forward, x, y, steps=3):
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    losses = []
    for _ in range(steps):
        model.train()
        loss = F.cross_entropy(forward(model, Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_engine_forward_trains_as_the_model(rng, dtype):
    nn.manual_seed(5)
    model = copy_of(models.paper_resnet(3, 10, widths=(4, 6, 8), mean=[120.0] * 3, std=[60.0] * 3), dtype)
    twin = copy_of(model, dtype)
    x = rng.uniform(0, 255, (6, 3, 16, 12)).astype(dtype)
    y = rng.integers(0, 10, 6)
    ours = train_steps(twin, engine.forward, x, y)
    theirs = train_steps(model, lambda m, t: m(t), x, y)
    tol = TOLERANCE[dtype] if dtype == np.float64 else dict(rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(ours, theirs, **tol)
    a, b = twin.state_dict(), model.state_dict()
    assert a.keys() == b.keys()
    for k in a:  # weights after three steps, running statistics, num_batches_tracked
        np.testing.assert_allclose(a[k], b[k], err_msg=k, **tol)
    assert int(a["1.bn1.num_batches_tracked"]) == 3


def test_engine_forward_pools_the_last_block_channels_last(monkeypatch, rng):
    pooled, converted = [], []
    real_pool, real_back = engine.global_avg_pool, engine.ToChannelsFirst.apply
    monkeypatch.setattr(engine, "global_avg_pool", lambda x, **k: pooled.append(k) or real_pool(x, **k))
    monkeypatch.setattr(engine.ToChannelsFirst, "apply", lambda x: converted.append(1) or real_back(x))
    nn.manual_seed(2)
    model = models.paper_resnet(3, 10, widths=(4, 6, 8))
    x = rng.uniform(0, 255, (4, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(engine.forward(model, x).data, model(Tensor(x)).data, rtol=1e-4, atol=1e-5)
    assert pooled == [{"channels_last": True}] and not converted  # no (N, C, H, W) copy of the last map
    layers = list(model)
    engine.forward(nn.Sequential(*layers[:-2], nn.Identity(), *layers[-2:]), x)
    assert converted  # a layer between the blocks and the pooling: the model's own layers take over


def test_engine_forward_is_the_model_elsewhere(rng):
    nn.manual_seed(0)
    model = models.paper_resnet(1, 10).eval()
    x = rng.normal(size=(2, 1, 8, 8)).astype(np.float32)
    with dctnet.no_grad():
        np.testing.assert_array_equal(engine.forward(model, x).data, model(Tensor(x)).data)
    block = nn.ResidualBlock(2, 3, 2)
    assert engine.fused_block_state(block) is not None
    block.conv1 = nn.Conv2d(2, 3, 3, 2, 1, bias=True)  # not the stock block any more: the model's own path
    assert engine.fused_block_state(block) is None
    assert engine.fused_block_state(nn.ResidualBlock(2, 3, 2).eval()) is None


def test_engine_training_is_reproducible(rng):
    x = rng.uniform(0, 255, (9, 3, 16, 16)).astype(np.float32)
    y = rng.integers(0, 10, 9)
    states, old = [], threads.num_threads()
    try:
        for n in (2, 2, 1):
            threads.set_num_threads(n)
            nn.manual_seed(11)
            model = models.paper_resnet(3, 10, widths=(4, 8, 8))
            train_steps(model, engine.forward, x, y)
            states.append(model.state_dict())
    finally:
        threads.set_num_threads(old)
    for other in states[1:]:
        for k in states[0]:
            np.testing.assert_array_equal(other[k], states[0][k], err_msg=k)


def test_engine_forward_keeps_blocks_it_cannot_fuse_on_their_own_layers(rng):
    block = nn.ResidualBlock(2, 3, 2)
    block.relu1 = nn.Identity()  # not the stock activation
    assert engine.fused_block_state(block) is None
    block = nn.ResidualBlock(2, 3, 1)
    block.conv1.padding = 2  # not the op's geometry
    assert engine.fused_block_state(block) is None


def carried_pair(dtype, frequencies=15):
    """The JPEG-domain paper_resnet (carried evaluation) twice, with the same weights."""
    nn.manual_seed(3)
    pixel = randomize_batch_norms(models.paper_resnet(2, 10, widths=(4, 6, 8), mean=[120.0, 110.0], std=[60.0, 50.0]),
                                  np.random.default_rng(1)).train()
    pair = [dctnet.convert(copy_of(pixel, dtype), relu_frequencies=frequencies) for _ in range(2)]
    assert {m.evaluation for m in pair[0].modules() if m.input_domain == "jpeg"} == {"carried"}
    return pair


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_engine_forward_fuses_the_carried_jpeg_blocks(monkeypatch, rng, dtype):
    fused = []
    real = engine.residual_block
    monkeypatch.setattr(engine, "residual_block", lambda *a, **k: fused.append(1) or real(*a, **k))
    ours, theirs = carried_pair(dtype)
    assert all(engine.fused_block_state(m) is not None for m in ours.modules() if isinstance(m, nn.ResidualBlock))
    pixels = rng.uniform(0, 255, (3, 2, 32, 64)).astype(dtype)  # non-square; 32x64 -> 16x32 -> 8x16: whole blocks
    coefficients = dctnet.to_dct(pixels).astype(dtype)
    y = rng.integers(0, 10, 3)
    tol = TOLERANCE[dtype] if dtype == np.float64 else dict(rtol=1e-3, atol=1e-4)
    xs, outs = [], []
    for model, forward in ((ours, engine.forward), (theirs, lambda m, t: m(t))):
        x = Tensor(coefficients.copy(), requires_grad=True)
        out = forward(model, x)
        F.cross_entropy(out, y).backward()
        xs.append(x.grad)
        outs.append(out.data)
    assert len(fused) == 3
    np.testing.assert_allclose(outs[0], outs[1], **tol)
    np.testing.assert_allclose(xs[0], xs[1], **tol)  # down to the input coefficients
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(a.grad, b.grad, err_msg=name, **tol)
    # then SGD steps: weights, running statistics, num_batches_tracked
    np.testing.assert_allclose(train_steps(ours, engine.forward, coefficients, y),
                               train_steps(theirs, lambda m, t: m(t), coefficients, y), **tol)
    a, b = ours.state_dict(), theirs.state_dict()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], err_msg=k, **tol)
    assert int(a["1.bn1.num_batches_tracked"]) == 4


def test_engine_forward_leaves_asm_and_partial_blocks_to_the_layers(rng):
    ours, theirs = carried_pair(np.float64, frequencies=8)  # ASM below 15 frequencies: the layers' own ops
    assert all(engine.fused_block_state(m) is None for m in ours.modules() if isinstance(m, nn.ResidualBlock))
    x = dctnet.to_dct(rng.uniform(0, 255, (2, 2, 32, 32)))
    np.testing.assert_array_equal(engine.forward(ours, x).data, theirs(Tensor(x)).data)
    exact, _ = carried_pair(np.float64)
    odd = dctnet.to_dct(rng.uniform(0, 255, (2, 2, 16, 16)))  # 16 -> 8 -> 4 pixels: not whole blocks
    with pytest.raises(ValueError, match="whole number of 8x8 blocks"):
        exact(Tensor(odd))
    with pytest.raises(ValueError, match="whole number of 8x8 blocks"):
        engine.forward(exact, odd)
