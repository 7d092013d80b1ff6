"""Quickstart: the blockwise JPEG transform on a few images."""

import numpy as np

import dctnet

x = np.random.default_rng(0).uniform(0, 255, size=(4, 3, 32, 32)).astype(np.float32)
c = dctnet.to_dct(x)
err = float(np.abs(dctnet.from_dct(c) - x).max())
q = dctnet.quant_table(75, "luma")
zero = float((dctnet.quantize(c, q) == 0).mean())
print(f"pixels {x.shape} -> DCT {c.shape}; round-trip max error {err:.2e}; "
      f"zero quantized coefficients at q75: {zero:.1%}")
