"""Linearly quantized weights: w = (data - zero_point) * scale, per tensor, channel or block.

Storage dtypes (`QUANT_DTYPES`): int8, uint8, int4, uint4. One value is held in an int8 (int8,
int4) or uint8 (uint8, uint4) element (`storage_dtype`); in a package (the `dequantize` op)
8-bit data are stored as they are, of the weight's shape, and 4-bit data as nibbles packed
LSB-first into a uint8 1-D stream (`bits.pack_bits(..., 4)`, row-major; int4 as two's
complement nibbles), by `pack_quantized`.

Blocks: scale (and the optional zero_point, of the scale's shape and the data's storage dtype
or float) has the weight's rank; scale.shape[i] divides shape[i] and element idx uses
scale[idx[i] // (shape[i] // scale.shape[i]) for each i]. All ones is per tensor; the channel
count on one axis is per channel; a further dimension on the input axis is per block. The
arithmetic is float32; the result has the scale's dtype (float16 or float32).
"""
from __future__ import annotations

import numpy as np

from .bits import pack_bits, unpack_bits

QUANT_DTYPES = {"int8": (8, True), "uint8": (8, False), "int4": (4, True), "uint4": (4, False)}


def storage_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype holding one quantized value: int8 for int8/int4, uint8 for uint8/uint4."""
    if dtype not in QUANT_DTYPES:
        raise ValueError(f"dtype must be one of {list(QUANT_DTYPES)}, got {dtype!r}")
    return np.dtype(np.int8 if QUANT_DTYPES[dtype][1] else np.uint8)


def blocked(shape, sshape):
    """Shapes that view an array of `shape` as blocks of `sshape`: (full, small)."""
    full, small = [], []
    for n, s in zip(shape, sshape):
        full += [s, n // s if s else 0]
        small += [s, 1]
    return tuple(full), tuple(small)


def dequantize(data, scale, zero_point=None) -> np.ndarray:
    """(data - zero_point) * scale, scale/zero_point of rank data.ndim broadcast per block (the
    block along dim i is data.shape[i] // scale.shape[i] long). Computed in float32; output
    dtype is scale's when float16/float32, float32 otherwise."""
    data = np.asarray(data)
    scale = np.asarray(scale)
    if data.dtype.kind not in "iuf":
        raise ValueError(f"quantized data must be numeric, got dtype {data.dtype}")
    if scale.ndim != data.ndim or any(s < 1 or n % s for n, s in zip(data.shape, scale.shape)):
        raise ValueError(f"scale shape {scale.shape} does not divide the data shape {data.shape}")
    out_dtype = scale.dtype if scale.dtype in (np.float16, np.float32) else np.dtype(np.float32)
    full, small = blocked(data.shape, scale.shape)
    q = data.astype(np.float32).reshape(full)
    if zero_point is not None:
        zp = np.asarray(zero_point)
        if zp.shape != scale.shape:
            raise ValueError(f"zero_point shape {zp.shape} differs from the scale's {scale.shape}")
        q = q - zp.astype(np.float32).reshape(small)
    out = q * scale.astype(np.float32).reshape(small)
    return out.reshape(data.shape).astype(out_dtype, copy=False)


def pack_quantized(data, dtype: str) -> np.ndarray:
    """The stored form of quantized data for the `dequantize` op: 8-bit data as they are, 4-bit
    data as LSB-first nibbles in a uint8 1-D stream (int4 as two's complement nibbles)."""
    data = np.asarray(data)
    nbits, signed = QUANT_DTYPES[dtype] if dtype in QUANT_DTYPES else (None, None)
    if nbits is None:
        raise ValueError(f"dtype must be one of {list(QUANT_DTYPES)}, got {dtype!r}")
    lo, hi = (-(1 << (nbits - 1)), (1 << (nbits - 1)) - 1) if signed else (0, (1 << nbits) - 1)
    if data.dtype.kind not in "iu" or (data.size and (data.min() < lo or data.max() > hi)):
        raise ValueError(f"{dtype} data must be integers in [{lo}, {hi}]")
    if nbits == 8:
        return data.astype(storage_dtype(dtype))
    return pack_bits(data.astype(np.int16) & 0xF, 4)


def unpack_quantized(packed, dtype: str, shape) -> np.ndarray:
    """Inverse of `pack_quantized`: int8 (int8/int4) or uint8 (uint8/uint4) data of `shape`."""
    shape = tuple(int(n) for n in shape)
    sd = storage_dtype(dtype)
    packed = np.asarray(packed)
    count = int(np.prod(shape, dtype=np.int64))
    if QUANT_DTYPES[dtype][0] == 8:
        if packed.dtype != sd or packed.size != count:
            raise ValueError(f"{dtype} data must be {count} {sd} values")
        return packed.reshape(shape)
    nib = unpack_bits(packed, 4, count)
    if sd == np.int8:
        return ((nib.astype(np.int16) ^ 8) - 8).astype(np.int8).reshape(shape)
    return nib.reshape(shape)
