"""A NumPy stand-in for `pocketml._native.PackedLinear` (the same interface and argument checks),
used where the extension is not built with its packed kernels, so the plan logic is always tested.

It decodes the packed formats itself (LSB-first bit streams, two's complement int4) rather than
calling pocketml's decoders: the tests compare it with the references, so it must not share them.
"""
from __future__ import annotations

import types

import numpy as np

_QUANT = {"int8": (8, True), "uint8": (8, False), "int4": (4, True), "uint4": (4, False)}


def _unpack(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    bits = np.unpackbits(packed, bitorder="little")[:count * nbits].reshape(count, nbits)
    return (bits.astype(np.int64) << np.arange(nbits)).sum(axis=1)


def _c_contiguous(a, what: str, dtypes) -> None:
    if not isinstance(a, np.ndarray) or a.dtype not in dtypes or not a.flags.c_contiguous:
        raise TypeError(f"{what} must be a C-contiguous array of {dtypes}, got {type(a).__name__} "
                        f"{getattr(a, 'dtype', '')}")


def _blocks(a: np.ndarray, n: int, k: int) -> np.ndarray:
    """a [GN, GK] repeated to [N, K]."""
    return np.repeat(np.repeat(a, n // a.shape[0], axis=0), k // a.shape[1], axis=1)


class PackedLinear:
    calls = {"gemm": 0, "rows": 0}  # counted across objects, for the tests

    def __init__(self, w: np.ndarray, fmt: str, nbytes: int):
        self._w = w.astype(np.float32)
        self.shape = w.shape
        self.format = fmt
        self.nbytes = nbytes

    @classmethod
    def dense(cls, w):
        _c_contiguous(w, "w", (np.float32, np.float16))
        if w.ndim != 2:
            raise ValueError("w must be 2-D")
        return cls(w, f"dense_{w.dtype}", w.nbytes)

    @classmethod
    def quantized(cls, data, scale, zero_point, dtype, N, K):
        nbits, signed = _QUANT[dtype]
        if nbits == 8:
            _c_contiguous(data, "data", (np.int8, np.uint8))
            q = data.reshape(N, K).astype(np.float32)
        else:
            _c_contiguous(data, "data", (np.uint8,))
            q = _unpack(data.reshape(-1), 4, N * K)
            if signed:
                q = np.where(q >= 8, q - 16, q)
            q = q.reshape(N, K).astype(np.float32)
        _c_contiguous(scale, "scale", (np.float32, np.float16))
        if zero_point is not None:
            q = q - _blocks(zero_point.astype(np.float32), N, K)
        w = q * _blocks(scale.astype(np.float32), N, K)
        return cls(w, f"{dtype}", data.nbytes + scale.nbytes)

    @classmethod
    def lut(cls, indices, lut, nbits, N, K, row_scale=None):
        _c_contiguous(indices, "indices", (np.uint8,))
        _c_contiguous(lut, "lut", (np.float32, np.float16))
        g0, g1, entries, d = lut.shape
        if entries != 1 << nbits or d != 1 or N % g0 or K % g1:
            raise ValueError("lut shape does not fit")
        idx = _unpack(indices, nbits, N * K).reshape(N, K)
        rows = np.arange(N)[:, None] // (N // g0)
        cols = np.arange(K)[None, :] // (K // g1)
        w = lut[rows, cols, idx, 0].astype(np.float32)
        if row_scale is not None:
            _c_contiguous(row_scale, "row_scale", (np.float32,))
            w = w * row_scale.reshape(N, 1)
        return cls(w, f"lut{nbits}", indices.nbytes + lut.nbytes)

    def gemm(self, x, out, bias=None, threads=0, exact=True):
        PackedLinear.calls["gemm"] += 1
        _c_contiguous(x, "x", (np.float32,))
        _c_contiguous(out, "out", (np.float32,))
        if not isinstance(threads, int) or threads < 0:
            raise ValueError("threads must be >= 0")
        n, k = self.shape
        if x.ndim != 2 or x.shape[1] != k or out.shape != (x.shape[0], n):
            raise ValueError(f"gemm: x {x.shape} / out {out.shape} do not fit a [{n}, {k}] weight")
        np.matmul(x, self._w.T, out=out)
        if bias is not None:
            _c_contiguous(bias, "bias", (np.float32,))
            out += bias

    def rows(self, ids, out):
        PackedLinear.calls["rows"] += 1
        _c_contiguous(ids, "ids", (np.int64,))
        _c_contiguous(out, "out", (np.float32,))
        n, k = self.shape
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            raise ValueError("id out of range")
        out[...] = self._w[ids]


module = types.SimpleNamespace(PackedLinear=PackedLinear, simd_level=lambda: "numpy",
                               default_threads=lambda: 1)
