"""Linear quantization: choosing scales and zero points, and rounding (Core ML's ranges).

The stored form and its decoding, w = (data - zero_point) * scale per block, are
`pocketml.formats.quant`'s. Ranges:
    symmetric: int8 [-127, 127], int4 [-7, 7] (zero_point None); uint8 [0, 254] with zero point
    127, uint4 [0, 14] with zero point 7. scale = max|w| / 127 (or / 7), so both signs use the
    same range and the largest magnitude is exact.
    affine: the full range, int8 [-128, 127], uint8 [0, 255], int4 [-8, 7], uint4 [0, 15];
    [lo, hi] = [min(w, 0), max(w, 0)] so 0 is exactly representable, scale = (hi - lo) /
    (qmax - qmin), zero_point = clip(rint(qmin - lo / scale)) stored as an integer of the data's
    dtype (int8 for int8/int4, uint8 for uint8/uint4).
    Rounding is half to even (np.rint). A slice of all zeros gets scale 1. The error of every
    element is at most scale / 2 (plus float32 rounding).
4-bit data are held one value per int8/uint8 element; `formats.quant.pack_quantized` packs them
as nibbles.

algorithm="search" (`search.py`) keeps the ranges but picks each block's scale (symmetric) or
scale and float offset (affine: the zero point is then float32, w = (data - zero_point) * scale
still) that minimise the block's squared error, weighted by `importance` where given (the input
activations' second moments from calibration); min/max is one of its candidates' starting points.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..formats.args import check_axis, check_int, real_array
from ..formats.quant import QUANT_DTYPES, blocked, storage_dtype

QUANT_GRANULARITIES = ("per_tensor", "per_channel", "per_block")


def quant_range(dtype: str, symmetric: bool) -> tuple[int, int]:
    """(qmin, qmax) of `dtype` (see the module docstring)."""
    if dtype not in QUANT_DTYPES:
        raise ValueError(f"dtype must be one of {list(QUANT_DTYPES)}, got {dtype!r}")
    nbits, signed = QUANT_DTYPES[dtype]
    if signed:
        lo, hi = -(1 << (nbits - 1)), (1 << (nbits - 1)) - 1
        return (lo + 1 if symmetric else lo), hi
    return 0, (1 << nbits) - 1 - (1 if symmetric else 0)


@dataclass
class Quantized:
    """w ≈ (data - zero_point) * scale, scale/zero_point broadcast per block (decoded by
    `formats.quant.dequantize`)."""
    data: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray | None
    dtype: str


def _scale_shape(shape, granularity, axis, block_size, input_axis) -> tuple[int, ...]:
    rank = len(shape)
    if granularity == "per_tensor":
        return (1,) * rank
    if granularity not in QUANT_GRANULARITIES:
        raise ValueError(f"granularity must be one of {QUANT_GRANULARITIES}, got {granularity!r}")
    axis = check_axis(axis, rank)
    out = [1] * rank
    out[axis] = shape[axis]
    if granularity == "per_block":
        ia = check_axis(input_axis, rank, "input_axis")
        if ia == axis:
            raise ValueError("input_axis must differ from axis")
        bs = check_int(block_size, "block_size", 1)
        if shape[ia] % bs:
            raise ValueError(f"block_size {bs} does not divide the weight's dimension {shape[ia]} "
                             f"on input_axis {ia}")
        out[ia] = shape[ia] // bs
    return tuple(out)


def quantize(w, dtype="int8", symmetric=True, granularity="per_channel", axis=0, block_size=0,
             input_axis=1, algorithm="minmax", importance=None) -> Quantized:
    """Linear quantization (see the module docstring for ranges and zero points).

    granularity: "per_tensor"; "per_channel" (one scale per slice along `axis`); "per_block"
    (blocks of `block_size` along `input_axis` within each slice along `axis`).
    algorithm: "minmax" or "search"; importance: non-negative weights broadcastable to w's
    shape for the search's error (None: all alike).
    """
    w = real_array(w)
    qmin, qmax = quant_range(dtype, symmetric)
    sshape = _scale_shape(w.shape, granularity, axis, block_size, input_axis)
    if algorithm == "search":
        return _searched(w, dtype, symmetric, sshape, qmin, qmax, importance)
    if algorithm != "minmax":
        raise ValueError(f"algorithm must be minmax or search, got {algorithm!r}")
    full, small = blocked(w.shape, sshape)
    wb = w.astype(np.float64).reshape(full)
    red = tuple(range(1, 2 * w.ndim, 2))
    if symmetric:
        half = (qmax - qmin) // 2
        s = np.max(np.abs(wb), axis=red, initial=0.0) / half
        zp = (qmin + qmax + 1) // 2
    else:
        lo = np.min(wb, axis=red, initial=0.0)
        hi = np.max(wb, axis=red, initial=0.0)
        s = (hi - lo) / (qmax - qmin)
    s[s == 0] = 1.0
    scale = s.reshape(sshape).astype(np.float32)
    s32 = scale.astype(np.float64)
    if symmetric:
        zp_arr = np.full(sshape, zp, np.float64)
    else:
        zp_arr = np.clip(np.rint(qmin - lo.reshape(sshape) / s32), qmin, qmax)
    q = np.clip(np.rint(wb / s32.reshape(small)) + zp_arr.reshape(small), qmin, qmax)
    sd = storage_dtype(dtype)
    data = q.reshape(w.shape).astype(sd)
    zero_point = None if symmetric and qmin < 0 else zp_arr.astype(sd)
    return Quantized(data, scale, zero_point, dtype)


def as_blocks(a: np.ndarray, sshape) -> tuple[np.ndarray, tuple, tuple]:
    """a viewed as rows of blocks (one row per scale entry, in the scale's order): (rows,
    the blocked shape, the axis order that made the rows)."""
    full, _ = blocked(a.shape, sshape)
    order = tuple(range(0, 2 * a.ndim, 2)) + tuple(range(1, 2 * a.ndim, 2))
    rows = a.reshape(full).transpose(order).reshape(int(np.prod(sshape)), -1)
    return rows, full, order


def from_blocks(rows: np.ndarray, shape, full, order) -> np.ndarray:
    """Inverse of `as_blocks`."""
    return rows.reshape([full[i] for i in order]).transpose(np.argsort(order)).reshape(shape)


def _searched(w, dtype, symmetric, sshape, qmin, qmax, importance) -> Quantized:
    from .search import fit_affine, fit_symmetric

    rows, full, order = as_blocks(w.astype(np.float32), sshape)
    h = None
    if importance is not None:
        h = as_blocks(np.broadcast_to(np.asarray(importance, np.float32), w.shape), sshape)[0]
    sd = storage_dtype(dtype)
    if symmetric:
        half = (qmax - qmin) // 2
        scale, q = fit_symmetric(rows, -half, half, h)
        zp = (qmin + qmax + 1) // 2
        data = from_blocks(q + zp, w.shape, full, order).astype(sd)
        zero_point = None if qmin < 0 else np.full(sshape, zp, sd)
        return Quantized(data, scale.reshape(sshape), zero_point, dtype)
    scale, offset, q = fit_affine(rows, qmin, qmax, h)
    data = from_blocks(q, w.shape, full, order).astype(sd)
    zero_point = (qmin - offset.astype(np.float64) / scale).astype(np.float32)
    return Quantized(data, scale.reshape(sshape), zero_point.reshape(sshape), dtype)
