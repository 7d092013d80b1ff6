"""DeepN-JPEG: DCT statistics, table design, encoding, and the rate-accuracy example."""

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.fft import dctn

import dctnet
from dctnet.jpeg import RGB_TO_YCBCR
from dctnet.qtables import DCTStatistics, dct_statistics, deepn_table, deepn_tables, encode_dataset, file_sizes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))


def naive_statistics(images, color="ycbcr"):
    """Per channel and zigzag frequency (mean, std, mean |x|, blocks) by scipy per block."""
    x = np.asarray(images, dtype=np.float64) - 128.0
    if x.shape[1] == 3 and color == "ycbcr":
        x = np.einsum("kc,nchw->nkhw", RGB_TO_YCBCR, x)
    h, w = x.shape[2:]
    x = np.pad(x, ((0, 0), (0, 0), (0, -h % 8), (0, -w % 8)), mode="edge")
    coefs = [[] for _ in range(x.shape[1])]
    for img in x:
        for c, plane in enumerate(img):
            for i in range(0, plane.shape[0], 8):
                for j in range(0, plane.shape[1], 8):
                    coefs[c].append(dctn(plane[i:i + 8, j:j + 8], norm="ortho").ravel()[dctnet.ZIGZAG])
    coefs = np.array(coefs)  # (C, blocks, 64)
    return coefs.mean(1), coefs.std(1), np.abs(coefs).mean(1), coefs.shape[1]


@pytest.mark.parametrize("shape, color", [((5, 3, 20, 13), "ycbcr"), ((5, 3, 16, 16), "rgb"), ((4, 1, 9, 24), "ycbcr")])
def test_statistics_match_a_direct_computation(rng, shape, color):
    images = rng.integers(0, 256, shape).astype(np.uint8)
    got = dct_statistics(images, color=color, batch_size=2)
    mean, std, mean_abs, count = naive_statistics(images, color)
    assert isinstance(got, DCTStatistics) and got.count == count
    for a, b in ((got.mean, mean), (got.std, std), (got.mean_abs, mean_abs)):
        assert a.shape == (shape[1], 64)
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-9)


def test_streamed_batches_equal_one_array(rng):
    images = rng.uniform(0, 255, (9, 3, 16, 16))
    whole = dct_statistics(images)
    streamed = dct_statistics(iter([images[:2], images[2:3], images[3:3], images[3:]]), batch_size=4)
    assert streamed.count == whole.count == 9 * 4
    for field in ("mean", "std", "mean_abs"):
        np.testing.assert_allclose(getattr(streamed, field), getattr(whole, field), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("images, match", [
    (np.zeros((0, 3, 8, 8)), "no images"),
    ([], "no images"),
    (np.zeros((3, 8, 8)), r"\(N, C, H, W\).*found shape \(3, 8, 8\)"),
    (np.zeros((2, 2, 8, 8)), "C = 1 .* or 3"),
    (np.full((1, 1, 8, 8), np.nan), "finite"),
    (np.full((1, 1, 8, 8), np.inf), "finite"),
    ([np.zeros((1, 1, 8, 8)), np.zeros((1, 3, 8, 8))], "first batch's 1 channels"),
])
def test_statistics_reject_bad_input(images, match):
    with pytest.raises(ValueError, match=match):
        dct_statistics(images)


def test_statistics_reject_bad_options():
    with pytest.raises(ValueError, match="color must be one of"):
        dct_statistics(np.zeros((1, 3, 8, 8)), color="lab")
    with pytest.raises(ValueError, match="batch_size"):
        dct_statistics(np.zeros((1, 3, 8, 8)), batch_size=0)


def test_statistics_are_frozen():
    stats = dct_statistics(np.zeros((1, 1, 8, 8)))
    with pytest.raises(AttributeError):
        stats.count = 3
    with pytest.raises(ValueError):
        stats.std[0, 0] = 1.0


def test_progress_bar_is_optional():
    stats = dct_statistics(np.zeros((3, 1, 8, 8)), batch_size=1, progress=True)
    assert stats.count == 3


# ----------------------------------------------------------------------------- tables

EDGES = {  # delta -> the paper's piecewise function, rounded half up, at least q_min = 5
    0.0: 255, 10.0: 157.5, 20.0: 60, 20.0001: 59.9999, 40.0: 40, 60.0: 20,
    60.0001: 240 - 3 * 60.0001, 70.0: 30, 100.0: 5, 1e6: 5,
}


def test_deepn_table_band_edges():
    deltas = np.array(list(EDGES) + [0.0] * (64 - len(EDGES)))
    want = np.floor(np.array(list(EDGES.values())) + 0.5)
    table = deepn_table(deltas)
    assert table.dtype == np.int32 and table.shape == (64,)
    assert table[:len(EDGES)].tolist() == [255, 158, 60, 60, 40, 20, 60, 30, 5, 5] == want.tolist()


def test_deepn_table_q_min_scale_and_clipping():
    deltas = np.linspace(0, 120, 64)
    plain = deepn_table(deltas)
    assert plain.min() == 5 and plain.max() == 255
    assert deepn_table(deltas, q_min=12).min() == 12
    assert deepn_table(np.full(64, 30.0), scale=1.5).tolist() == [75] * 64  # (80 - 30) * 1.5
    assert deepn_table(np.full(64, 10.0), scale=0.5).tolist() == [79] * 64  # 157.5 * 0.5 = 78.75
    assert deepn_table(np.full(64, 100.0), scale=3).tolist() == [15] * 64  # q_min before scale
    assert deepn_table(deltas, scale=4).max() == 255  # clipped
    assert deepn_table(deltas, scale=0.01).min() == 1  # never 0
    assert deepn_table(np.full(64, 100.0), q_min=1, scale=0.2).tolist() == [1] * 64


def test_deepn_table_keeps_the_leading_shape():
    std = np.stack([np.zeros(64), np.full(64, 30.0), np.full(64, 80.0)])
    assert deepn_table(std).tolist() == [[255] * 64, [50] * 64, [5] * 64]


@pytest.mark.parametrize("std, kw, match", [
    (np.zeros(63), {}, "64 zigzag entries.*found shape \\(63,\\)"),
    (np.zeros((2, 8, 8)), {}, "64 zigzag entries"),
    (np.full(64, np.nan), {}, "finite and >= 0"),
    (np.full(64, -1.0), {}, "finite and >= 0"),
    (np.zeros(64), {"scale": 0}, "scale must be a positive"),
    (np.zeros(64), {"scale": np.inf}, "scale must be a positive"),
    (np.zeros(64), {"q_min": 0}, "q_min must be a number in 1..255"),
    (np.zeros(64), {"q_min": 256}, "q_min must be a number in 1..255"),
])
def test_deepn_table_rejects_bad_input(std, kw, match):
    with pytest.raises(ValueError, match=match):
        deepn_table(std, **kw)


def test_deepn_tables_luma_and_chroma():
    std = np.stack([np.full(64, 10.0), np.full(64, 30.0), np.full(64, 50.0)])
    stats = DCTStatistics(np.zeros((3, 64)), std, std, 1)
    luma, chroma = deepn_tables(stats)
    assert luma.tolist() == deepn_table(std[0]).tolist()
    assert chroma.tolist() == deepn_table(np.full(64, 40.0)).tolist()
    grey_luma, grey_chroma = deepn_tables(std[:1], scale=2)
    assert grey_luma.tolist() == grey_chroma.tolist() == deepn_table(std[0], scale=2).tolist()
    with pytest.raises(ValueError, match="1 or 3 channels"):
        deepn_tables(np.zeros((2, 64)))


# ----------------------------------------------------------------------------- encoding


@pytest.mark.parametrize("channels", [1, 3])
def test_custom_tables_read_back_exactly_and_open_in_pillow(rng, channels):
    PIL = pytest.importorskip("PIL.Image")
    images = rng.integers(0, 256, (3, channels, 16, 24)).astype(np.uint8)
    luma, chroma = deepn_tables(dct_statistics(images), scale=0.5)
    assert not np.array_equal(luma, chroma) or channels == 1
    files = encode_dataset(images, qtables=(luma, chroma))
    assert file_sizes(files).tolist() == [len(f) for f in files] and len(files) == 3
    for data in files:
        img = dctnet.read_jpeg(data)
        assert img.sampling == ((1, 1),) * channels
        assert [t.tolist() for t in img.qtables] == [luma.tolist(), chroma.tolist(), chroma.tolist()][:channels]
        with PIL.open(io.BytesIO(data)) as pil:
            pil.load()
            assert pil.size == (24, 16) and pil.mode == ("L" if channels == 1 else "RGB")


def test_encode_dataset_with_quality_and_bad_input(rng):
    files = encode_dataset(rng.integers(0, 256, (2, 3, 8, 8)), quality=50)
    assert dctnet.read_jpeg(files[0]).qtables[0].tolist() == dctnet.quant_table(50, "luma").tolist()
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        encode_dataset(np.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match="subsampling"):
        encode_dataset(np.zeros((1, 3, 8, 8)), subsampling="4:1:1")


# ----------------------------------------------------------------------------- example


def test_example_end_to_end(tmp_path, capsys):
    deepn_jpeg = pytest.importorskip("deepn_jpeg")
    model_path = tmp_path / "model.h5"
    # Normalizing keeps an untrained model's predictions varied, so equal accuracies mean something.
    model = dctnet.models.paper_resnet(3, 10, widths=(4, 8, 8), mean=(120.0,) * 3, std=(60.0,) * 3)
    dctnet.save(model, model_path)
    rows = deepn_jpeg.main([str(model_path), "--dataset", "sample", "--limit", "20", "--qualities", "20", "95",
                            "--scales", "1", "4", "--out", str(tmp_path / "out")])
    assert [(r["method"], r["setting"]) for r in rows] == [("ijg", 20), ("ijg", 95), ("deepn", 1.0), ("deepn", 4.0)]
    assert all(r["acc_jpeg"] == r["acc_pixel"] for r in rows)
    assert rows[1]["ratio"] == 1.0 and rows[0]["ratio"] > 1
    assert (tmp_path / "out" / "rate_accuracy.csv").read_text().count("\n") == 5
    assert (tmp_path / "out" / "rate_accuracy.png").stat().st_size > 0
    assert "largest |pixel - JPEG-domain accuracy| over points: 0.0000" in capsys.readouterr().out


def test_size_at_accuracy_interpolates():
    deepn_jpeg = pytest.importorskip("deepn_jpeg")
    rows = [{"bytes": 100.0, "acc_pixel": 0.5}, {"bytes": 300.0, "acc_pixel": 0.9}, {"bytes": 200.0, "acc_pixel": 0.7}]
    assert deepn_jpeg.size_at_accuracy(rows, 0.8) == pytest.approx(250.0)
    assert deepn_jpeg.size_at_accuracy(rows, 0.4) == 100.0
    assert deepn_jpeg.size_at_accuracy(rows, 0.95) is None


def test_scan_sizes_count_only_the_entropy_coded_data():
    from dctnet.qtables import encode_dataset, file_sizes, scan_sizes

    x = np.random.default_rng(0).integers(0, 256, (3, 3, 16, 16))
    files = encode_dataset(x, quality=50)
    scans, sizes = scan_sizes(files), file_sizes(files)
    assert (scans > 0).all() and (sizes - scans > 500).all()  # tables and headers
    for data, n in zip(files, scans):
        sos = data.index(b"\xff\xda")
        header = int.from_bytes(data[sos + 2:sos + 4], "big")
        assert data[sos + 2 + header + n:] == b"\xff\xd9"
    with pytest.raises(ValueError, match="SOS"):
        scan_sizes([files[0][:20]])
