"""The example scripts run end to end on the bundled sample (tiny runs), import only dctnet, and make runs them."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dctnet

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))
train = pytest.importorskip("train")
predict = pytest.importorskip("predict")
jpeg_domain_eval = pytest.importorskip("jpeg_domain_eval")
demo = pytest.importorskip("demo")
quickstart = pytest.importorskip("quickstart")


def run_train(out, *extra):
    return train.main(["--dataset", "sample", "--epochs", "2", "--batch-size", "50", "--no-progress",
                       "--out", str(out), *extra])


def test_train_save_resume_is_exact(tmp_path):
    whole = run_train(tmp_path / "a")
    assert [r["epoch"] for r in whole] == [1, 2]
    assert run_train(tmp_path / "b", "--stop-after", "1")[-1]["epoch"] == 1
    assert not (tmp_path / "b" / "model.h5").exists()
    resumed = run_train(tmp_path / "b", "--resume")
    a, b = dctnet.load(tmp_path / "a" / "model.h5"), dctnet.load(tmp_path / "b" / "model.h5")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert np.array_equal(x, y), name
    assert resumed[-1]["test_acc"] == whole[-1]["test_acc"]
    meta = dctnet.load_checkpoint(tmp_path / "a" / "model.h5").metadata
    assert meta["classes"][0] == "airplane" and meta["domain"] == "pixel"
    assert (tmp_path / "a" / "history.csv").read_text().count("\n") == 3


def test_train_in_the_jpeg_domain(tmp_path):
    history = train.main(["--dataset", "sample", "--domain", "jpeg", "--relu-frequencies", "6", "--epochs", "1",
                          "--batch-size", "50", "--no-progress", "--out", str(tmp_path)])
    assert np.isfinite(history[0]["train_loss"])
    model = dctnet.load(tmp_path / "model.h5")
    relus = [m for m in model.modules() if isinstance(m, dctnet.nn.ASMReLU)]
    assert relus and all(m.frequencies == 6 for m in relus)


def test_eval_and_predict(tmp_path, capsys):
    run_train(tmp_path)
    rows = jpeg_domain_eval.main([str(tmp_path / "model.h5"), "--dataset", "sample", "--frequencies", "2", "15"])
    assert [r["frequencies"] for r in rows] == [2, 15]
    table = (tmp_path / "table1.md").read_text()
    assert "deviation | +0.0000" in table and "predictions that agree | 1.0000" in table
    assert rows[-1]["asm"] == rows[-1]["apx"]  # both are exact at n = 15
    results, failed = predict.main([str(tmp_path / "model.h5")])
    assert len(results) == 5 and failed == 0
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xdb truncated")
    results, failed = predict.main([str(tmp_path / "model.h5"), str(bad)])
    assert results == [] and failed == 1
    assert "bad.jpg" in capsys.readouterr().err


def test_demo_compares_the_shipped_model_in_both_domains(capsys):
    result = demo.main(["--show", "3"])
    out = capsys.readouterr().out
    assert result.agree == 1.0 and result.flips == 0 and result.max_difference < 1e-3
    assert result.accuracy == result.other_accuracy > 0.6  # the shipped model, trained to 79.45%
    assert "| accuracy " in out and "| images/s, file to logits " in out and "| images/s, network alone " in out
    assert "| same prediction " in out and "100 of 100" in out and "| largest logit difference " in out
    assert len(re.findall(r"true \w+ +predicted \w+", out)) == 3
    with pytest.raises(SystemExit):
        demo.main(["--per-class", "0"])


def test_quickstart(capsys):
    quickstart.main([])
    assert "summary: coefficients read, DCT-domain input built, transform exact." in capsys.readouterr().out


def _imports(path):
    """Top-level module names that ``path`` imports, and whether it touches sys.path."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." if node.level else node.module.split(".")[0])
    touches_path = any(isinstance(n, ast.Attribute) and n.attr == "path" and getattr(n.value, "id", "") == "sys"
                       for n in ast.walk(tree))
    return names, touches_path


def test_examples_import_only_dctnet_never_each_other():
    scripts = sorted(EXAMPLES.glob("*.py"))
    own = {p.stem for p in scripts}
    assert {"demo", "train", "train_jpeg_dl", "jpeg_dl_results", "predict"} <= own
    for script in scripts:
        names, touches_path = _imports(script)
        assert not names & own and "." not in names, f"{script.name} imports an example: {sorted(names & own)}"
        assert not touches_path, f"{script.name} changes sys.path (to import an example?)"
        assert "dctnet" in names, script.name


def test_make_targets_run_existing_scripts():
    env = {k: v for k, v in os.environ.items() if k != "DCTNET_DATA"}
    for target, wanted in (("demo", {"demo.py"}), ("train-demo", {"train.py", "jpeg_domain_eval.py", "predict.py"})):
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True).stdout
        scripts = set(re.findall(r"examples/(\w+\.py)", dry))
        assert scripts == wanted, (target, dry)
        assert all((EXAMPLES / s).is_file() for s in scripts)
