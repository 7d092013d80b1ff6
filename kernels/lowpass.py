"""The ASM/APX ReLU of the fused engine on channels-last pixels: per 8x8 block,
the mask of the rank-k low-pass projection.

The carried evaluation (docs/design.md §4) holds the coefficients of a block as
its pixels P; the ReLU at n < 15 frequencies needs the pixels rebuilt from the
first k zigzag coefficients, ``P_k = B_k^T (B_k P)`` with ``B_k`` the first k
rows of the zigzag DCT basis (k x 64). ASM returns ``P * [P_k > 0]``, APX
``P_k * [P_k > 0]``. The engine runs it in a conv's epilogue, while the GEMM's
output is in cache: :func:`gather_blocks` adds the bias (and the residual) and
lays a piece's blocks out as one (64, blocks*C) matrix T, the projection is two
BLAS GEMMs ``B_k^T (B_k T)`` over all blocks and channels at once (measured
about 4x faster than a per-block loop), and :func:`scatter_masked` writes the
masked result back.

Serial and ``nogil`` like the other engine kernels (:mod:`.conv`): the engine
runs them on its own threads, one task of images each. No CUDA twin: the engine
is CPU only.
"""

from numba import njit, uintp


@njit(nogil=True, cache=True)
def gather_blocks(y, bias, res, has_res, t):
    """``t[p, b*C + c] = y + bias (+ res)`` at pixel p (natural order) of block b, channel c;
    ``y`` and ``res`` (M, H, W, C) with H and W multiples of 8, ``t`` (64, M*H*W/64*C)."""
    m, h, w, c = y.shape
    bh, bw = h // 8, w // 8
    yf, rf = y.reshape(-1), res.reshape(-1)
    cols = uintp(t.shape[1])
    tf = t.reshape(-1)
    for n in range(m):
        for by in range(bh):
            for bx in range(bw):
                col = uintp(((n * bh + by) * bw + bx) * c)
                for i in range(8):
                    for j in range(8):
                        src = uintp(((n * h + 8 * by + i) * w + 8 * bx + j) * c)
                        dst = uintp(8 * i + j) * cols + col
                        if has_res:
                            for k in range(uintp(c)):
                                tf[dst + k] = yf[src + k] + bias[k] + rf[src + k]
                        else:
                            for k in range(uintp(c)):
                                tf[dst + k] = yf[src + k] + bias[k]


@njit(nogil=True, cache=True)
def scatter_masked(t, low, apx, y):
    """The inverse layout of :func:`gather_blocks`, masked: ``y = (low if apx else t) * [low > 0]``."""
    m, h, w, c = y.shape
    bh, bw = h // 8, w // 8
    yf, tf, lf = y.reshape(-1), t.reshape(-1), low.reshape(-1)
    cols = uintp(t.shape[1])
    zero = y.dtype.type(0)
    for n in range(m):
        for by in range(bh):
            for bx in range(bw):
                col = uintp(((n * bh + by) * bw + bx) * c)
                for i in range(8):
                    for j in range(8):
                        dst = uintp(((n * h + 8 * by + i) * w + 8 * bx + j) * c)
                        src = uintp(8 * i + j) * cols + col
                        for k in range(uintp(c)):
                            g = lf[src + k]
                            v = g if apx else tf[src + k]
                            yf[dst + k] = v if g > zero else zero
