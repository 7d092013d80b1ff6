"""Brute-force references, independent of dctnet's own code paths."""

import numpy as np
import scipy.fft


def zigzag_by_walking():
    """The JPEG scan, walked step by step as T.81 Figure A.6 draws it."""
    a = b = 0
    order = [0]
    up = True
    while len(order) < 64:
        if up:
            if b == 7:
                a += 1
                up = False
            elif a == 0:
                b += 1
                up = False
            else:
                a -= 1
                b += 1
        else:
            if a == 7:
                b += 1
                up = True
            elif b == 0:
                a += 1
                up = True
            else:
                a += 1
                b -= 1
        order.append(a * 8 + b)
    return np.array(order)


ZZ = zigzag_by_walking()


def blocks(x):
    """(..., H, W) -> (..., H/8, W/8, 8, 8)."""
    *lead, h, w = x.shape
    y = x.reshape(*lead, h // 8, 8, w // 8, 8)
    return np.moveaxis(y, -3, -2)


def unblocks(b):
    """(..., BH, BW, 8, 8) -> (..., 8 BH, 8 BW)."""
    *lead, bh, bw, _, _ = b.shape
    return np.moveaxis(b, -2, -3).reshape(*lead, 8 * bh, 8 * bw)


def dct_ref(x):
    """Blockwise orthonormal DCT-II by scipy, zigzag last axis."""
    f = scipy.fft.dctn(blocks(np.asarray(x, dtype=np.float64)), axes=(-2, -1), norm="ortho")
    return f.reshape(*f.shape[:-2], 64)[..., ZZ]


def idct_ref(c):
    c = np.asarray(c, dtype=np.float64)
    nat = np.empty_like(c)
    nat[..., ZZ] = c
    f = nat.reshape(*c.shape[:-1], 8, 8)
    return unblocks(scipy.fft.idctn(f, axes=(-2, -1), norm="ortho"))
