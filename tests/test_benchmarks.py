"""Benchmark scripts: smoke runs (no timing assertions) and the PyTorch twin they compare against."""

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dctnet
from dctnet import nn
from dctnet.models import paper_resnet

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_common():
    spec = importlib.util.spec_from_file_location("bench_common", BENCHMARKS / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_recipe_smoke_run_writes_its_table(tmp_path, data_dir):
    out = tmp_path / "recipe"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "bench_recipe.py"), "--limit", "200", "--epochs", "1",
                           "--frameworks", "dctnet", "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with open(out / "table.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["epochs"], r["seed"], r["torch_test_acc"]) for r in rows] == [("1", "0", "")]
    assert 0 <= float(rows[0]["dctnet_test_acc"]) <= 1
    table = (out / "table.md").read_text()
    assert table.startswith("| epochs | seed | dctnet test accuracy | torch test accuracy |")
    assert "dctnet test accuracy" in done.stdout


def test_bench_recipe_refuses_bad_options(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "bench_recipe.py"), "--epochs", "1,0",
                           "--out", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode != 0 and "positive integers" in done.stderr
    done = subprocess.run([sys.executable, str(BENCHMARKS / "bench_recipe.py"), "--frameworks", "jax",
                           "--out", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode != 0 and "--frameworks" in done.stderr


@pytest.mark.parametrize("channels, mean, std", [(1, [33.32], [76.83]), (3, [125.3, 123.0, 113.9], [63.0, 62.1, 66.7])])
def test_torch_twin_computes_what_the_model_does(channels, mean, std):
    torch = pytest.importorskip("torch")
    nn.manual_seed(3)
    model = paper_resnet(channels, 10, mean=mean, std=std)
    net = load_common().torch_model(model)
    x = np.random.default_rng(0).uniform(0, 255, (6, channels, 32, 32)).astype(np.float32)
    for train in (True, False):  # batch statistics, then the running statistics both updated
        model.train(train)
        net.train(train)
        with dctnet.no_grad(), torch.no_grad():
            ours, theirs = model(dctnet.Tensor(x)).numpy(), net(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_torch_twin_refuses_another_network():
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="paper_resnet"):
        load_common().torch_model(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))


def test_recipe_is_pytorch_recipe_in_float64():
    """Five training steps of the bench_recipe recipe (training.fit with SGD Nesterov, weight decay on
    every parameter, per-step cosine, the epoch order) in float64 give PyTorch's weights and running
    statistics to 1e-8: the frameworks run one recipe, so accuracy gaps in float32 are rounding."""
    torch = pytest.importorskip("torch")
    from dctnet import optim, training

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (600, 1, 32, 32))
    y = rng.integers(0, 10, 600)
    nn.manual_seed(5)
    model = paper_resnet(1, 10, mean=[33.3], std=[76.8])
    net = load_common().torch_model(model).double()
    model = model.astype(np.float64)
    lr, batch = 0.1, 128
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = training.cosine_schedule(opt, 1, len(x), batch, 0.0)
    training.fit(model, opt, (x, y), epochs=1, batch_size=batch, scheduler=sched, seed=2, log=None)
    topt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=sched.total_steps)
    order = torch.from_numpy(training.epoch_order(2, 0, len(x))[0])
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    net.train()
    for s in range(0, len(x), batch):
        idx = order[s:s + batch]
        loss = torch.nn.functional.cross_entropy(net(tx[idx]), ty[idx])
        topt.zero_grad()
        loss.backward()
        topt.step()
        tsched.step()
    ours = [p.data for p in model.parameters()] + [np.asarray(v) for k, v in model.state_dict().items() if "running" in k]
    theirs = [p.detach().numpy() for p in net.parameters()] + [v.numpy() for k, v in net.state_dict().items()
                                                                if "running" in k]
    assert len(ours) == len(theirs) == 29 + 18
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-8 * np.abs(b).max())


def test_bench_fused_pairs_smoke_run_and_refusal():
    script = str(BENCHMARKS / "bench_fused_pairs.py")
    done = subprocess.run([sys.executable, script, "--pairs", "3", "--batches", "2,3"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("fused n=")]
    assert [r[:2] for r in rows] == [["fused", "n=15"], ["fused", "n=6"]]
    assert all(float(cell.rstrip("x")) > 0 for r in rows for cell in r[2::2])
    done = subprocess.run([sys.executable, script, "--pairs", "0"], capture_output=True, text=True)
    assert done.returncode != 0 and "must be positive" in done.stderr
