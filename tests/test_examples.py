"""The example scripts run end to end on the bundled sample (tiny runs)."""

import sys
from pathlib import Path

import numpy as np
import pytest

import dctnet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
train = pytest.importorskip("train")
predict = pytest.importorskip("predict")
jpeg_domain_eval = pytest.importorskip("jpeg_domain_eval")


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
