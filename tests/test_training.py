"""dctnet.training (loop, checkpoints and resume, batched inference), dctnet.augment, dctnet.progress, dctnet.plots."""

import argparse
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import dctnet
from dctnet import Tensor, augment, engine, models, nn, optim, plots, training
from dctnet.functional import cross_entropy


def small_net(channels=1, classes=3):
    """Conv, batch norm (running statistics: buffers), ReLU, pooling, linear: every kind of state."""
    nn.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.GlobalAvgPool(), nn.Linear(4, classes))


def blobs(rng, n=48, classes=3, size=8):
    """Images whose class sets their mean brightness: learnable in a few epochs."""
    y = rng.integers(0, classes, n)
    x = rng.normal(0, 0.3, (n, 1, size, size)) + y[:, None, None, None]
    return x.astype(np.float32), y.astype(np.int64)


# ----------------------------------------------------------------------------- progress


def test_progress_falls_back_to_the_plain_iterable(monkeypatch, capsys):
    items = [1, 2, 3]
    assert dctnet.progress(items, enabled=False) is items
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # as if tqdm were not installed
    assert dctnet.progress(items, total=3, desc="x", unit="item", leave=False) is items
    assert capsys.readouterr().err == ""


def test_progress_shows_a_tqdm_bar_when_installed(capsys):
    pytest.importorskip("tqdm")
    bar = dctnet.progress(range(5), total=5, desc="counting", unit="thing")
    assert list(bar) == [0, 1, 2, 3, 4] and hasattr(bar, "set_postfix")
    err = capsys.readouterr().err
    assert "counting" in err and "5/5" in err


def test_training_epoch_runs_without_tqdm(monkeypatch, rng):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    x, y = blobs(rng, n=12)
    model = small_net()
    result = training.train_epoch(model, optim.SGD(model.parameters(), lr=0.1), x, y, np.arange(12), 5,
                                  show_progress=True)
    assert result.seen == 12 and 0 <= result.correct <= 12 and np.isfinite(result.loss)


# ----------------------------------------------------------------------------- inference


def test_predict_in_batches_equals_one_pass_and_restores_modes(rng):
    model = small_net().astype(np.float64)
    x = rng.normal(size=(7, 1, 8, 8))
    model.train()
    model[1].eval()  # a submodule in its own mode
    with dctnet.no_grad():
        model.eval()
        whole = model(Tensor(x)).data
        model.train()
        model[1].eval()
    for batch_size in (1, 3, 7, 100):
        np.testing.assert_allclose(training.predict(model, x, batch_size=batch_size), whole, rtol=1e-12, atol=1e-12)
    assert model.training and model[0].training and not model[1].training
    assert isinstance(training.predict(model, x), np.ndarray)
    with pytest.raises(ValueError, match="batch_size must be a positive"):
        training.predict(model, x, batch_size=0)
    with pytest.raises(ValueError, match="at least one image"):
        training.predict(model, x[:0])


def test_predict_takes_dct_pictures_for_a_jpeg_domain_model(rng):
    from dctnet.models import paper_resnet

    nn.manual_seed(1)
    net = paper_resnet(in_channels=3, widths=(4, 4, 8), mean=[128.0] * 3, std=[64.0] * 3).astype(np.float64)
    pixels = rng.uniform(0, 255, (5, 3, 32, 32))
    jpeg = dctnet.convert(net)
    np.testing.assert_allclose(training.predict(jpeg, dctnet.to_dct(pixels), batch_size=2),
                               training.predict(net, pixels), atol=1e-9)
    with dctnet.no_grad():  # the fused engine (predict's path here) against the JPEG-domain model itself
        own = jpeg.eval()(Tensor(dctnet.to_dct(pixels))).data
    assert dctnet.engine.fuse_if_possible(jpeg, np.float64) is not None
    np.testing.assert_allclose(training.predict(jpeg, dctnet.to_dct(pixels)), own, rtol=1e-9, atol=1e-9)


def test_predict_runs_the_fused_engine_where_it_can(monkeypatch, rng):
    built = []
    real = engine.fuse
    monkeypatch.setattr(engine, "fuse", lambda m: built.append(m) or real(m))
    model = tiny_resnet(np.float64).train()
    x = rng.normal(size=(7, 1, 12, 10))
    ref = training.predict(model, x, batch_size=3)
    assert len(built) == 1 and model.training  # one snapshot for all batches; the mode restored
    model.eval()
    with dctnet.no_grad():
        np.testing.assert_allclose(ref, model(Tensor(x)).data, rtol=1e-10, atol=1e-10)
    x32 = x.astype(np.float32)
    np.testing.assert_allclose(training.predict(model.astype(np.float32), x32), model(Tensor(x32)).data,
                               rtol=2e-4, atol=2e-4)
    assert len(built) == 2
    # what fuse cannot run runs as the model itself
    pooled = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(2 * 5 * 4, 3))
    assert engine.fuse_if_possible(pooled, np.float32) is None
    with dctnet.no_grad():
        np.testing.assert_array_equal(training.predict(pooled, x32), pooled.eval()(Tensor(x32)).data)
    built.clear()
    with pytest.raises(TypeError, match="one floating dtype"):  # float64 input, float32 model: the model's error
        training.predict(model, x)
    assert not built  # a dtype the engine does not run is not even tried


def test_evaluate_is_the_mean_loss_and_accuracy_of_one_pass(rng):
    model = small_net().astype(np.float64)
    x, y = blobs(rng, n=11)
    x = x.astype(np.float64)
    with dctnet.no_grad():
        logits = model.eval()(Tensor(x))
    got = training.evaluate(model, x, y, batch_size=4)
    assert got.loss == pytest.approx(float(cross_entropy(logits, y).data), rel=1e-12)
    assert got.accuracy == pytest.approx(float((logits.data.argmax(1) == y).mean()))
    with pytest.raises(ValueError, match="at least one image"):
        training.evaluate(model, x[:0], y[:0])


def test_agreement_of_two_sets_of_logits():
    a = np.array([[3.0, 1.0, 0.0], [0.2, 0.2 + 1e-7, 0.0], [0.0, 1.0, 2.0]])
    b = a.copy()
    b[1, 0] += 2e-7  # a tie broken the other way
    r = training.agreement(a, b, np.array([0, 1, 1]))
    assert r.accuracy == pytest.approx(2 / 3) and r.other_accuracy == pytest.approx(1 / 3)
    assert r.agree == pytest.approx(2 / 3) and r.flips == 1
    assert r.flip_margin == pytest.approx(1e-7) and r.max_difference == pytest.approx(2e-7)
    assert training.agreement(a, a, np.array([0, 1, 2])).flip_margin == 0.0
    with pytest.raises(ValueError, match="one shape"):
        training.agreement(a, a[:2], np.array([0, 1, 1]))


# ----------------------------------------------------------------------------- the loop


def test_fit_learns_logs_and_checkpoints(tmp_path, rng):
    x, y = blobs(rng)
    model = small_net()
    opt = optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    lines = []
    history = training.fit(model, opt, (x, y), (x, y), epochs=8, batch_size=8,
                           scheduler=optim.CosineAnnealingLR(opt, T_max=8), checkpoint=tmp_path / "last.h5",
                           columns=lambda: {"lr": opt.param_groups[0]["lr"]},
                           metadata={"note": "tiny"}, log=lambda line, **_: lines.append(line))
    assert [r["epoch"] for r in history] == list(range(1, 9))
    assert list(history[0]) == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds",
                                "img_per_s", "lr"]
    assert history[-1]["test_acc"] > 0.9 and history[-1]["train_loss"] < history[0]["train_loss"]
    assert len(lines) == 8 and lines[0].startswith("epoch   1/8: train loss") and "lr " in lines[0]
    meta = dctnet.load_checkpoint(tmp_path / "last.h5").metadata
    assert meta["epoch"] == 7 and meta["epochs"] == 8 and meta["note"] == "tiny"
    assert meta["history"] == json.loads(json.dumps(history)) and meta["scheduler"]["type"] == "CosineAnnealingLR"
    assert training.evaluate(model, x, y).accuracy == history[-1]["test_acc"]


def two_optimizer_run(x, y):
    """SGD on the whole model (the classifier in a group at lr 0), Adam on the classifier, a schedule."""
    model = small_net()
    head = model[4].parameters()
    own = {id(p) for p in head}
    body = [p for p in model.parameters() if id(p) not in own]
    sgd = optim.SGD([{"params": body}, {"params": head, "lr": 0.0, "weight_decay": 0.0}],
                    lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    adam = optim.Adam(head, lr=0.01)
    return model, [sgd, adam], optim.CosineAnnealingLR(sgd, T_max=4)


def test_stop_and_resume_ends_bit_identical(tmp_path, rng):
    x, y = blobs(rng, n=30)
    kw = dict(epochs=4, batch_size=8, seed=3, augment=lambda xb, g: augment.random_flip_crop(xb, g, pad=1),
              log=None)
    model, opts, sched = two_optimizer_run(x, y)
    whole = training.fit(model, opts, (x, y), (x, y), scheduler=sched, checkpoint=tmp_path / "a.h5", **kw)

    first = two_optimizer_run(x, y)
    part = training.fit(first[0], first[1], (x, y), (x, y), scheduler=first[2], checkpoint=tmp_path / "b.h5",
                        stop_after=1, **kw)
    assert len(part) == 1
    for _ in range(3):  # go on one epoch at a time, from the file alone
        run = training.resume(tmp_path / "b.h5")
        assert len(run.optimizers) == 2 and isinstance(run.optimizers[1], optim.Adam)
        resumed = training.fit(run.model, run.optimizers, (x, y), (x, y), scheduler=run.scheduler,
                               start=run.start, history=run.history, checkpoint=tmp_path / "b.h5",
                               stop_after=1, **kw)
    assert run.start == 3 and run.epochs == 4
    for (name, a), b in zip(model.state_dict().items(), run.model.state_dict().values()):
        assert np.array_equal(a, b), name
    for key, a in opts[1].state_dict()["state"].items():
        assert np.array_equal(a, run.optimizers[1].state_dict()["state"][key]), key
    timing = {"seconds", "img_per_s"}
    strip = [{k: v for k, v in r.items() if k not in timing} for r in resumed]
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in whole]
    assert run.scheduler.get_last_lr() == sched.get_last_lr()
    assert model[4].weight.data.tolist() != small_net()[4].weight.data.tolist()  # Adam moved the head


def test_a_per_step_schedule_steps_after_every_batch_and_resumes_bit_identical(tmp_path, rng):
    x, y = blobs(rng, n=30)  # 4 steps per epoch at batch 8

    def run():
        model = small_net()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        return model, opt, training.cosine_schedule(opt, epochs=3, n=len(x), batch_size=8, warmup=0.5)

    model, opt, sched = run()
    assert (sched.total_steps, sched.warmup_steps) == (12, 2)
    whole = training.fit(model, opt, (x, y), epochs=3, batch_size=8, scheduler=sched, log=None,
                         columns=lambda: {"lr": opt.param_groups[0]["lr"]})
    assert sched.last_epoch == 12 and opt.param_groups[0]["lr"] == 0.0  # annealed at the last step
    lrs = [r["lr"] for r in whole]
    assert lrs[0] == pytest.approx(0.05 * (1 + np.cos(np.pi * 2 / 10)))  # step 4 of 12, warm-up of 2
    model2, opt2, sched2 = run()
    training.fit(model2, opt2, (x, y), epochs=3, batch_size=8, scheduler=sched2, checkpoint=tmp_path / "p.h5",
                 stop_after=1, log=None)
    resumed = training.resume(tmp_path / "p.h5")
    assert resumed.scheduler.per_step and resumed.scheduler.last_epoch == 4
    training.fit(resumed.model, resumed.optimizers, (x, y), epochs=3, batch_size=8, scheduler=resumed.scheduler,
                 start=resumed.start, history=resumed.history, log=None)
    for (name, a), b in zip(model.state_dict().items(), resumed.model.state_dict().values()):
        assert np.array_equal(a, b), name


def tiny_resnet(dtype=np.float32):
    """paper_resnet at small widths: every residual block takes the engine's fused op in training."""
    nn.manual_seed(4)
    return models.paper_resnet(1, 3, widths=(3, 4, 6), mean=[0.5], std=[0.7]).astype(dtype)


def test_train_epoch_computes_residual_blocks_with_the_engine(monkeypatch, rng):
    x, y = blobs(rng, n=20)
    fused = []
    real = engine.residual_block
    monkeypatch.setattr(engine, "residual_block", lambda *a, **k: fused.append(1) or real(*a, **k))
    model = tiny_resnet(np.float64)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    result = training.train_epoch(model, opt, x.astype(np.float64), y, np.arange(20), batch_size=8)
    assert len(fused) == 3 * 3  # three blocks in each of the three steps

    # the same steps through the model's own layers give the same weights and running statistics
    twin = tiny_resnet(np.float64)
    opt2 = optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    total = 0.0
    for s in range(0, 20, 8):
        loss = cross_entropy(twin(Tensor(x[s:s + 8].astype(np.float64))), y[s:s + 8])
        opt2.zero_grad()
        loss.backward()
        opt2.step()
        total += loss.item() * len(y[s:s + 8])
    assert result.seen == 20 and result.loss == pytest.approx(total, rel=1e-10)
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10, err_msg=name)


def test_fit_through_the_engine_is_reproducible_and_resumes_bit_identical(tmp_path, rng):
    x, y = blobs(rng, n=24)
    kw = dict(epochs=3, batch_size=8, seed=5, augment=lambda xb, g: augment.random_flip_crop(xb, g, pad=1), log=None)

    def run():
        model = tiny_resnet()
        return model, optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)

    model, opt = run()
    whole = training.fit(model, opt, (x, y), (x, y), **kw)
    again, opt2 = run()
    training.fit(again, opt2, (x, y), (x, y), **kw)
    first, opt3 = run()
    training.fit(first, opt3, (x, y), (x, y), checkpoint=tmp_path / "r.h5", stop_after=1, **kw)
    resumed = training.resume(tmp_path / "r.h5")
    rest = training.fit(resumed.model, resumed.optimizers, (x, y), (x, y), start=resumed.start,
                        history=resumed.history, **kw)
    for other in (again, resumed.model):  # the same seed: the same bits, resumed or not
        for (name, a), b in zip(model.state_dict().items(), other.state_dict().values()):
            assert np.array_equal(a, b), name
    timing = {"seconds", "img_per_s"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in rest] == \
        [{k: v for k, v in r.items() if k not in timing} for r in whole]


def test_steps_per_epoch_matches_the_loop():
    assert training.steps_per_epoch(30, 8) == len(range(0, 30, 8))
    assert training.steps_per_epoch(60000, 128) == 469
    assert training.steps_per_epoch(101, 32, world_size=2) == len(range(0, 51, 16))


def test_resume_without_a_file_or_from_a_plain_model_file(tmp_path):
    assert training.resume(tmp_path / "missing.h5") is None
    dctnet.save(small_net(), tmp_path / "model.h5", epoch=1)
    with pytest.raises(ValueError, match="not a checkpoint written by dctnet.training.fit"):
        training.resume(tmp_path / "model.h5")


def test_epoch_order_follows_from_seed_and_epoch_alone():
    a, ga = training.epoch_order(7, 2, 10)
    b, gb = training.epoch_order(7, 2, 10)
    assert np.array_equal(a, b) and sorted(a.tolist()) == list(range(10)) and ga.random() == gb.random()
    assert not np.array_equal(a, training.epoch_order(7, 3, 10)[0])


def test_fit_refuses_bad_arguments(rng):
    x, y = blobs(rng, n=4)
    model = small_net()
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="batch_size must be a positive number of images, found 0"):
        training.fit(model, opt, (x, y), epochs=1, batch_size=0, log=None)
    with pytest.raises(ValueError, match="epochs must be a number of epochs"):
        training.fit(model, opt, (x, y), epochs=-1, batch_size=2, log=None)
    with pytest.raises(ValueError, match="every optimizer given to fit must hold parameters of the model"):
        other = Tensor(np.zeros(2, np.float32), requires_grad=True)
        training.fit(model, [optim.SGD(model.parameters(), lr=0.1), optim.Adam([other])], (x, y),
                     epochs=1, batch_size=4, checkpoint="unused.h5", log=None)


# ----------------------------------------------------------------------------- data, outputs, options


def test_load_dataset_sample_in_both_domains():
    pixels, dct = training.load_dataset("sample"), training.load_dataset("sample", "jpeg")
    assert pixels.x_train.shape == (100, 3, 32, 32) and pixels.x_train.dtype == np.float32
    assert dct.x_train.shape == (100, 3, 4, 4, 64) and np.array_equal(dct.y_test, pixels.y_test)
    assert pixels.classes[:2] == ["airplane", "automobile"] and pixels.mean == training.NORMALIZATION["cifar10"][0]
    sub = training.load_dataset("sample", "jpeg", limit=7, seed=2)
    keep = np.sort(np.random.default_rng(2).permutation(100)[:7])
    assert np.array_equal(sub.x_train, dct.x_train[keep]) and np.array_equal(sub.y_train, dct.y_train[keep])
    assert len(sub.x_test) == 100
    with pytest.raises(ValueError, match="dataset must be one of"):
        training.load_dataset("imagenet")
    with pytest.raises(ValueError, match="domain must be one of"):
        training.load_dataset("sample", "dct")
    with pytest.raises(ValueError, match="limit must be None or a positive"):
        training.load_dataset("sample", limit=0)


def test_write_history(tmp_path):
    history = [{"epoch": 1, "train_loss": 0.5, "test_acc": 0.25}, {"epoch": 2, "train_loss": 0.25, "test_acc": 0.5}]
    training.write_history(history, tmp_path)
    with open(tmp_path / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["train_loss"]) for r in rows] == [0.5, 0.25] and rows[1]["epoch"] == "2"
    assert json.loads((tmp_path / "history.json").read_text()) == history


def test_training_arguments():
    p = training.add_arguments(argparse.ArgumentParser(prog="mine.py"), dataset="cifar10", epochs=30, out="runs/x")
    args = p.parse_args([])
    assert (args.dataset, args.epochs, args.batch_size, args.lr, str(args.out)) == ("cifar10", 30, 128, 0.1, "runs/x")
    args = p.parse_args(["--resume", "--stop-after", "2", "--limit", "10", "--distributed"])
    assert args.resume and args.stop_after == 2 and args.limit == 10 and args.distributed
    assert "mine.py" in p.format_help()


# ----------------------------------------------------------------------------- augmentation


def test_dct_flip_is_the_dct_of_the_mirrored_pixels(rng):
    x = rng.normal(size=(3, 2, 16, 24))
    np.testing.assert_allclose(augment.flip_dct(dctnet.to_dct(x)), dctnet.to_dct(x[..., ::-1]), atol=1e-12)
    c = dctnet.to_dct(x).astype(np.float32)
    flipped = augment.random_flip_dct(c, np.random.default_rng(4))
    which = np.random.default_rng(4).random(3) < 0.5
    np.testing.assert_allclose(flipped[which], dctnet.to_dct(x[which][..., ::-1]), atol=1e-5)
    assert np.array_equal(flipped[~which], c[~which]) and flipped.dtype == np.float32
    with pytest.raises(ValueError, match=r"DCT-domain pictures \(N, C, BH, BW, 64\)"):
        augment.random_flip_dct(x, rng)


def test_random_flip_crop_against_a_loop(rng):
    x = rng.normal(size=(6, 2, 5, 7)).astype(np.float32)
    got = augment.random_flip_crop(x, np.random.default_rng(9), pad=2)
    g = np.random.default_rng(9)
    flip = g.random(6) < 0.5
    dy, dx = g.integers(0, 5, 6), g.integers(0, 5, 6)
    for i in range(6):
        padded = np.zeros((2, 9, 11), np.float32)
        padded[:, 2:7, 2:9] = x[i]
        want = padded[:, dy[i]:dy[i] + 5, dx[i]:dx[i] + 7]
        np.testing.assert_array_equal(got[i], want[..., ::-1] if flip[i] else want)
    assert np.array_equal(augment.augment(x, np.random.default_rng(1)), augment.random_flip_crop(x, np.random.default_rng(1)))
    with pytest.raises(ValueError, match="domain must be 'pixel' or 'jpeg'"):
        augment.augment(x, rng, "dct")
    with pytest.raises(ValueError, match=r"pixels \(N, C, H, W\)"):
        augment.random_flip_crop(x[0], rng)
    with pytest.raises(ValueError, match="pad must be a non-negative"):
        augment.random_flip_crop(x, rng, pad=-1)


# ----------------------------------------------------------------------------- plots


def test_plots_stay_out_of_the_core_import_path():
    code = "import sys, dctnet; print('dctnet.plots' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_plots_write_files(tmp_path):
    pytest.importorskip("matplotlib")
    assert plots.pyplot().get_backend().lower() == "agg"
    assert plots.line_chart(tmp_path / "a.png", [([1, 2], [3, 4], "o-", "up")], references=[(3.5, "mid")],
                            xlabel="x", ylabel="y", title="t")
    history = [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "test_loss": 1.1, "test_acc": 0.4},
               {"epoch": 2, "train_loss": 0.5, "train_acc": 0.7, "test_loss": 0.6, "test_acc": 0.6}]
    assert plots.plot_history(history, tmp_path / "h.png") and not plots.plot_history([], tmp_path / "none.png")
    plt = plots.pyplot()
    fig, ax = plt.subplots()
    plots.table_heatmap(fig, ax, dctnet.quant_table(50, "luma"), "luma", "{}")
    values = [t.get_text() for t in ax.texts]
    natural = np.empty(64, np.int32)
    natural[dctnet.ZIGZAG] = dctnet.quant_table(50, "luma")
    assert values == [str(v) for v in natural]  # row-major 8x8: the IJG table as printed in the standard
    assert plots.save_figure(fig, tmp_path / "t.png")
    for name in ("a.png", "h.png", "t.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "none.png").exists()


def test_plots_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert plots.pyplot() is None
    assert not plots.line_chart(tmp_path / "a.png", [([1], [1], "o", "p")], xlabel="x", ylabel="y")
    assert not (tmp_path / "a.png").exists()
