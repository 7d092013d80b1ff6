"""examples/fig4c.py on a tiny setting: the bundled sample, one epoch, two values of n."""

import sys
from pathlib import Path

import numpy as np
import pytest

import dctnet
from dctnet import models

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
fig4c = pytest.importorskip("fig4c")


def test_fig4c_tiny(tmp_path):
    dctnet.nn.manual_seed(0)
    pixel = models.paper_resnet(3, 10, mean=[125.0] * 3, std=[60.0] * 3)
    dctnet.save(pixel.eval(), tmp_path / "pixel.h5")
    rows = fig4c.main(["--dataset", "sample", "--epochs", "1", "--batch-size", "50", "--frequencies", "2", "15",
                       "--pixel-model", str(tmp_path / "pixel.h5"), "--no-progress", "--out", str(tmp_path)])
    assert [r["frequencies"] for r in rows] == [2, 15]
    for r in rows:
        assert 0 <= r["jpeg_trained"] <= 1 and 0 <= r["converted"] <= 1
    table = (tmp_path / "fig4c.md").read_text()
    assert table.count("\n") == 4 and "| 15 |" in table
    assert (tmp_path / "fig4c.csv").read_text().splitlines()[0] == "frequencies,jpeg_trained,converted"
    # the converted curve at n = 15 is the pixel model's own accuracy (Table 1)
    data = dctnet.training.load_dataset("sample", "pixel")
    want = dctnet.training.evaluate(pixel, data.x_test.astype(np.float32), data.y_test).accuracy
    assert rows[-1]["converted"] == pytest.approx(want, abs=0.011)


def test_fig4c_refuses_bad_frequencies():
    with pytest.raises(SystemExit):
        fig4c.parse_args(["--frequencies", "0", "16"])
