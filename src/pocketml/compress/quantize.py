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
             input_axis=1) -> Quantized:
    """Linear quantization (see the module docstring for ranges and zero points).

    granularity: "per_tensor"; "per_channel" (one scale per slice along `axis`); "per_block"
    (blocks of `block_size` along `input_axis` within each slice along `axis`).
    """
    w = real_array(w)
    qmin, qmax = quant_range(dtype, symmetric)
    sshape = _scale_shape(w.shape, granularity, axis, block_size, input_axis)
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
