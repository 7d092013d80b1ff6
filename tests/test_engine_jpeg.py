"""The fused engine on JPEG-domain models against the carried autograd model and the pixel reference.

``engine.fuse(dctnet.convert(net, n))`` plans each JPEG-domain layer as its
pixel twin on the carried pixels, with ASM/APX below 15 frequencies as a
low-pass mask step. Pinned against the model itself (carried evaluation, eval
mode) and against ``to_dct(pixel_net(from_dct(x)))`` with the plain
coefficient-domain ASM/APX (tests/test_carried.py), in float64 (tight) and
float32: stride-2 blocks, projection and identity shortcuts, non-square and
grey inputs, batch 1 and batches that do not split evenly into tasks.
"""

import numpy as np
import pytest
from test_carried import CASES, build, reference

import dctnet
from dctnet import Tensor, engine, nn
from dctnet import functional as F


def carried_output(jnet, x):
    with dctnet.no_grad():
        return F.as_coefficients(jnet.eval()(x)).data


def reference_output(net, x, n, method):
    ref = reference(net, n, method).eval()
    with dctnet.no_grad():
        out = ref(F.block_idct(Tensor(x)))
        return (F.block_dct(out) if out.ndim == 4 else out).data


def nhwc(x):
    return np.ascontiguousarray(dctnet.from_dct(x).transpose(0, 2, 3, 1))


def close(got, want, rtol, atol):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * max(1.0, float(np.abs(want).max())))


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("n,method", [(15, "asm"), (15, "apx"), (6, "asm"), (3, "apx"), (1, "asm"), (10, "asm")])
def test_float64(case, n, method):
    net, x, _ = build(CASES[case], np.float64, case)
    jnet = dctnet.convert(net, relu_frequencies=n, relu=method)
    fused = engine.fuse(jnet)
    assert fused.input_domain == "jpeg" and fused.dtype == np.float64
    got = F.as_coefficients(fused(x)).data
    close(got, reference_output(net, x, n, method), 1e-9, 1e-10)
    close(got, carried_output(jnet, x), 1e-9, 1e-10)
    # the same from a CarriedDCT and from channels-last pixels
    close(F.as_coefficients(fused(F.carry(x))).data, got, 1e-12, 1e-12)
    close(F.as_coefficients(fused.channels_last(nhwc(x))).data, got, 1e-12, 1e-12)


@pytest.mark.parametrize("case", [0, 3])
@pytest.mark.parametrize("n", [15, 6])
def test_float32(case, n):
    net, x, _ = build(CASES[case], np.float32, case)
    want = reference_output(net.astype(np.float64), x.astype(np.float64), n, "asm")
    net.astype(np.float32)
    got = F.as_coefficients(engine.fuse(dctnet.convert(net, relu_frequencies=n))(x)).data
    assert got.dtype == np.float32
    close(got, want, 2e-3, 2e-4)


@pytest.mark.parametrize("batch", [1, 13])
@pytest.mark.parametrize("n", [15, 4])
def test_batch_sizes_and_the_paper_network(batch, n):
    nn.manual_seed(batch)
    net = dctnet.models.paper_resnet(3, 10, mean=[120.0] * 3, std=[60.0] * 3).astype(np.float64)
    rng = np.random.default_rng(batch)
    pixels = rng.uniform(0, 255, (batch, 3, 32, 64))
    net.train()
    net(Tensor(np.concatenate([pixels, pixels[::-1] * 0.5])))  # running statistics
    x = dctnet.to_dct(pixels)
    jnet = dctnet.convert(net, relu_frequencies=n)
    fused = engine.fuse(jnet)
    got = fused(x).data
    assert got.shape == (batch, 10)
    close(got, reference_output(net, x, n, "asm"), 1e-9, 1e-10)
    # the leading Normalize applied by the caller (as the JPEG input map does)
    scale, shift = fused.input_affine
    normalized = nhwc(x) * scale + shift
    close(fused.channels_last(normalized, affine_applied=True).data, got, 1e-12, 1e-12)


@pytest.mark.parametrize("method", ["asm", "apx"])
def test_a_mask_that_rides_on_no_conv(rng, method):
    """ASM after a Normalize and after a residual sum that is read twice: the separate low-pass step."""
    nn.manual_seed(5)
    net = nn.Sequential(nn.Normalize([0.5], [2.0]), nn.ReLU(), nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(),
                        nn.ResidualBlock(3, 3), nn.ResidualBlock(3, 3)).astype(np.float64)
    x = dctnet.to_dct(rng.normal(size=(2, 1, 16, 24)))
    jnet = dctnet.convert(net, relu_frequencies=5, relu=method)
    fused = engine.fuse(jnet)
    got = F.as_coefficients(fused(x)).data
    close(got, reference_output(net, x, 5, method), 1e-9, 1e-10)
    scale, shift = fused.input_affine  # the low-pass step reads the Normalize's output
    close(F.as_coefficients(fused.channels_last(nhwc(x) * scale + shift, affine_applied=True)).data, got,
          1e-12, 1e-12)
    assert isinstance(fused(x), F.CarriedDCT)  # a signal out stays carried


def test_refusals(rng):
    with pytest.raises(TypeError, match="one domain"):
        engine.fuse(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ASMReLU()))
    with pytest.raises(TypeError, match=r"DCTMaxPool2d.*supported JPEG-domain layers: DCTConv2d"):
        engine.fuse(dctnet.convert(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(2))))
    fused = engine.fuse(dctnet.convert(nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.ReLU())))
    with pytest.raises(ValueError, match=r"makes 4x4 maps from a 8x8 input; a JPEG-domain signal must be whole 8x8"):
        fused(np.zeros((1, 1, 1, 1, 64), np.float32))
    with pytest.raises(ValueError, match=r"expects DCT coefficients \(N, C, BH, BW, 64\) or a CarriedDCT"):
        fused(np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="whole 8x8 blocks, found 8x12"):
        fused.channels_last(np.zeros((1, 8, 12, 1), np.float32))
    with pytest.raises(TypeError, match="computes in float32"):
        fused(np.zeros((1, 1, 2, 2, 64)))
    with pytest.raises(ValueError, match="does not begin with an affine map"):
        fused.channels_last(np.zeros((1, 16, 16, 1), np.float32), affine_applied=True)
    assert "JPEG domain" in repr(fused)


def test_pixel_plans_keep_their_input(rng):
    net = nn.Sequential(nn.Normalize([1.0, 2.0], [3.0, 4.0]), nn.Conv2d(2, 3, 3, padding=1), nn.GlobalAvgPool())
    fused = engine.fuse(net)
    assert fused.input_domain == "pixel"
    x = rng.normal(size=(3, 2, 5, 7)).astype(np.float32)
    scale, shift = fused.input_affine
    np.testing.assert_allclose(scale, [1 / 3, 1 / 4])
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    want = fused(x).data
    np.testing.assert_allclose(fused.channels_last(xl).data, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fused.channels_last((xl * scale + shift).astype(np.float32), affine_applied=True).data, want,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 8, 8, 1), (1, 16, 24, 3), (3, 8, 32, 16), (1, 24, 8, 5)])
def test_lowpass_kernel_against_the_block_formula(rng, shape):
    """The epilogue kernel against the plain per-block projection B_k^T B_k (float64, every n)."""
    from dctnet.kernels import lowpass
    from dctnet.transform import block_dct_matrix, dct_matrix, frequency_count

    m, h, w, c = shape
    blocks = block_dct_matrix()
    for n in range(1, 16):
        bk = blocks[: frequency_count(n)]
        for apx in (False, True):
            for has_res in (False, True):
                y, res, bias = rng.normal(size=shape), rng.normal(size=shape), rng.normal(size=c)
                v = y + bias + (res if has_res else 0)
                tiles = v.reshape(m, h // 8, 8, w // 8, 8, c).transpose(0, 1, 3, 5, 2, 4).reshape(-1, 64)
                low = tiles @ bk.T @ bk
                want = np.where(low > 0, low if apx else tiles, 0.0)
                want = want.reshape(m, h // 8, w // 8, c, 8, 8).transpose(0, 1, 4, 2, 5, 3).reshape(shape)
                got = y.copy()
                lowpass.bias_lowpass_images(got, bias, res if has_res else got, has_res, dct_matrix(), n, apx)
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=f"n={n} apx={apx} res={has_res}")


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 4, 4), (3, 1, 5, 3), (1, 5, 2, 7), (2, 70, 1, 2)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_idct_kernel_against_scipy_and_the_gemm(rng, shape, dtype):
    """The plan's inverse DCT of dense coefficients (N, C, BH, BW, 64) into NHWC, against
    scipy.fft.idctn per block and against the 64x64 product it replaced (lane counts that
    are not a multiple of LANES, grey, more channels than LANES)."""
    import scipy.fft

    from dctnet.kernels import jpeg_input
    from dctnet.transform import ZIGZAG, block_dct_matrix, dct_matrix

    n, c, bh, bw = shape
    coefs = rng.normal(scale=50, size=shape + (64,)).astype(dtype)
    natural = np.empty_like(coefs)
    natural[..., ZIGZAG] = coefs
    blocks = scipy.fft.idctn(natural.reshape(n, c, bh, bw, 8, 8).astype(np.float64), axes=(-2, -1), norm="ortho")
    want = blocks.transpose(0, 2, 4, 3, 5, 1).reshape(n, 8 * bh, 8 * bw, c)
    gemm = (coefs.reshape(-1, 64) @ block_dct_matrix(dtype)).reshape(n, c, bh, bw, 8, 8)
    gemm = gemm.transpose(0, 2, 4, 3, 5, 1).reshape(want.shape)
    got = np.full(want.shape, np.nan, dtype)
    jpeg_input.idct_nhwc(coefs, dct_matrix(dtype), ZIGZAG, np.ones(c, dtype), np.zeros(c, dtype), got)
    tol = 1e-12 if dtype == np.float64 else 3e-6
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale)
    np.testing.assert_allclose(got, gemm, rtol=0, atol=tol * scale)
    a, b = rng.uniform(0.5, 2, c).astype(dtype), rng.normal(scale=50, size=c).astype(dtype)  # a Normalize on the way
    jpeg_input.idct_nhwc(coefs, dct_matrix(dtype), ZIGZAG, a, b, got)
    np.testing.assert_allclose(got, want * a + b, rtol=0, atol=2 * tol * scale)
