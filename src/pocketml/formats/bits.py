"""Bit packing: unsigned values of `nbits` bits (1..8) stored densely in a uint8 stream.

Bit order is LSB-first: value i occupies bits [i*nbits, (i+1)*nbits) of the little-endian bit
stream, where bit b of the stream is bit b % 8 of byte b // 8 (so 8 values of nbits bits fill
exactly nbits bytes, and with nbits = 4 value 2j is the low nibble of byte j). The last byte is
zero-padded; a stream of `count` values is `packed_size(count, nbits)` = ceil(count * nbits / 8)
bytes. nbits = 8 is the values as bytes; nbits = 1 is `np.packbits(bitorder="little")`.

Palettization indices (`lut_to_dense`), 4-bit quantized data (`dequantize`) and pruning masks
(`sparse_to_dense`) are all stored this way.
"""
from __future__ import annotations

import numpy as np

from .args import check_int, check_nbits


def packed_size(count: int, nbits: int) -> int:
    """Bytes holding `count` values of `nbits` bits packed densely."""
    return (check_int(count, "count", 0) * check_nbits(nbits) + 7) // 8


def pack_bits(values: np.ndarray, nbits: int) -> np.ndarray:
    """Unsigned ints < 2**nbits (any shape, read row-major) packed densely LSB-first into uint8."""
    nbits = check_nbits(nbits)
    v = np.asarray(values)
    if v.dtype == np.bool_:
        v = v.view(np.uint8)
    elif v.dtype.kind not in "iu":
        raise ValueError(f"pack_bits packs unsigned integers, got dtype {v.dtype}")
    flat = v.reshape(-1)
    n = flat.size
    if n and (flat.min() < 0 or flat.max() >= (1 << nbits)):
        raise ValueError(f"pack_bits: values must lie in [0, {(1 << nbits) - 1}] for nbits={nbits}, "
                         f"got [{flat.min()}, {flat.max()}]")
    if nbits == 8:
        return flat.astype(np.uint8)
    if nbits == 1:
        return np.packbits(flat.astype(np.uint8, copy=False), bitorder="little")
    # 8 values of nbits bits fill exactly nbits bytes: build one little-endian 64-bit word per 8
    groups = -(-n // 8)
    buf = np.zeros(groups * 8, np.uint64)
    buf[:n] = flat
    buf = buf.reshape(groups, 8)
    words = buf[:, 0].copy()
    for j in range(1, 8):
        words |= buf[:, j] << np.uint64(j * nbits)
    out = words.astype("<u8").view(np.uint8).reshape(groups, 8)[:, :nbits].reshape(-1)
    return out[:packed_size(n, nbits)].copy()


def unpack_bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """The first `count` values of a `pack_bits` stream, as uint8 1-D (extra bytes are ignored)."""
    nbits = check_nbits(nbits)
    count = check_int(count, "count", 0)
    p = np.asarray(packed)
    if p.dtype != np.uint8:
        raise ValueError(f"packed bits must be uint8, got dtype {p.dtype}")
    p = p.reshape(-1)
    need = packed_size(count, nbits)
    if p.size < need:
        raise ValueError(f"packed stream of {p.size} bytes is too short for {count} values of "
                         f"{nbits} bits ({need} bytes needed)")
    if nbits == 8:
        return p[:count].copy()
    if nbits == 1:
        return np.unpackbits(p[:need], count=count, bitorder="little")
    groups = -(-count // 8)
    raw = np.zeros(groups * nbits, np.uint8)
    raw[:need] = p[:need]
    buf = np.zeros((groups, 8), np.uint8)
    buf[:, :nbits] = raw.reshape(groups, nbits)
    words = buf.view("<u8").reshape(groups)
    out = np.empty((groups, 8), np.uint8)
    mask = np.uint64((1 << nbits) - 1)
    for j in range(8):
        out[:, j] = (words >> np.uint64(j * nbits)) & mask
    return out.reshape(-1)[:count]
