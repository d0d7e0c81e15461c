"""Sparse (pruned) weights: a bit mask of the kept elements and their values.

Layout (the `sparse_to_dense` op): mask = `bits.pack_bits(mask, 1)` over the weight's shape,
row-major (bit i of the stream is element i: LSB-first within each byte, 1 = kept); values =
the kept elements, 1-D in row-major order (nnz of them, in the result's dtype; in a package they
may themselves be the output of `lut_to_dense` or `dequantize`). Everything else is zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bits import pack_bits, unpack_bits


@dataclass
class Sparse:
    """A sparse weight: mask_packed = pack_bits(mask, 1), values = w[mask] (row-major)."""
    mask_packed: np.ndarray
    values: np.ndarray
    shape: tuple[int, ...]


def sparsify(w, mask) -> Sparse:
    w = np.asarray(w)
    mask = np.asarray(mask)
    if mask.shape != w.shape:
        raise ValueError(f"mask shape {mask.shape} differs from the weight's {w.shape}")
    if mask.dtype != np.bool_:
        if mask.dtype.kind not in "iu" or (mask.size and (mask.min() < 0 or mask.max() > 1)):
            raise ValueError("mask must be boolean (or 0/1)")
        mask = mask.astype(bool)
    return Sparse(pack_bits(mask, 1), np.ascontiguousarray(w[mask]), tuple(int(n) for n in w.shape))


def densify(mask_packed, values, shape) -> np.ndarray:
    """Zeros of `shape` with `values` at the mask's positions (row-major); values' dtype."""
    shape = tuple(int(n) for n in shape)
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {values.shape}")
    count = int(np.prod(shape, dtype=np.int64))
    bits = unpack_bits(mask_packed, 1, count).view(np.bool_)
    nnz = int(np.count_nonzero(bits))
    if nnz != values.size:
        raise ValueError(f"mask has {nnz} set bits but {values.size} values were given")
    out = np.zeros(count, values.dtype)
    out[bits] = values
    return out.reshape(shape)
