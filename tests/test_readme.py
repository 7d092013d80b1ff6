"""The README's code runs as written (with a generated photo.jpg)."""

import re
from pathlib import Path

import numpy as np

import dctnet

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 64)).astype(np.uint8)  # the network needs multiples of 32
    dctnet.write_jpeg(tmp_path / "photo.jpg", dctnet.encode_jpeg(pixels, quality=80))
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    namespace = {}
    exec(compile("\n".join(blocks), str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["logits"].shape == (1, 10)
    assert (tmp_path / "net.h5").is_file() and (tmp_path / "small.jpg").is_file()
