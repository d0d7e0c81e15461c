"""Minimal GGUF reader: metadata and tensor layout read directly, dequantized by the gguf package.

gguf.GGUFReader makes a NumPy view for every array element, which takes ~4 s for SmolLM2's
49 k-token vocabulary and merges; reading the same layout with struct and np.frombuffer takes a
fraction of a second. Dequantization stays with `gguf.quants.dequantize`.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import PackageError

# GGUF metadata value types -> NumPy dtypes (8 = string and 9 = array are handled apart).
_SCALARS = {
    0: np.dtype("u1"), 1: np.dtype("i1"), 2: np.dtype("<u2"), 3: np.dtype("<i2"),
    4: np.dtype("<u4"), 5: np.dtype("<i4"), 6: np.dtype("<f4"), 7: np.dtype("?"),
    10: np.dtype("<u8"), 11: np.dtype("<i8"), 12: np.dtype("<f8"),
}  # fmt: skip
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # NumPy order (slowest dimension first), the reverse of the file's
    qtype: int  # ggml type id (gguf.GGMLQuantizationType)
    offset: int  # absolute byte offset in the file
    nbytes: int


class GGUFFile:
    """A GGUF file's metadata (`metadata`, plain Python values) and tensors (`tensors`, `read`)."""

    def __init__(self, path):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            self._buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # slices are plain bytes
        self._pos = 0
        if self._take(4, "magic") != b"GGUF":
            raise PackageError(f"{self.path} is not a GGUF file")
        version = self._unpack("<I")
        if version not in (2, 3):
            raise PackageError(f"{self.path}: GGUF version {version} is not supported (2 and 3 are)")
        n_tensors, n_kv = self._unpack("<Q"), self._unpack("<Q")
        self.metadata = {}
        for _ in range(n_kv):
            key = self._string()
            self.metadata[key] = self._value(self._unpack("<I"))
        infos = []
        for _ in range(n_tensors):
            name = self._string()
            dims = [self._unpack("<Q") for _ in range(self._unpack("<I"))]
            infos.append((name, tuple(reversed(dims)), self._unpack("<I"), self._unpack("<Q")))
        alignment = int(self.metadata.get("general.alignment", 32))
        data_start = -(-self._pos // alignment) * alignment
        self.tensors = [
            TensorInfo(name, shape, qtype, data_start + offset, _nbytes(shape, qtype))
            for name, shape, qtype, offset in infos
        ]
        for info in self.tensors:
            if info.offset + info.nbytes > len(self._buf):
                raise PackageError(f"{self.path}: truncated, tensor {info.name} runs past the end of the file")

    def read(self, info: TensorInfo) -> np.ndarray:
        """The tensor dequantized to float32, in NumPy order."""
        from gguf import GGMLQuantizationType
        from gguf.quants import dequantize

        raw = np.frombuffer(self._buf, np.uint8, info.nbytes, info.offset)
        rows = int(np.prod(info.shape[:-1], dtype=np.int64))
        values = dequantize(raw.reshape(rows, -1), GGMLQuantizationType(info.qtype))
        return np.asarray(values, dtype=np.float32).reshape(info.shape)

    # -- parsing helpers ------------------------------------------------------------------------

    def _take(self, n: int, what: str) -> bytes:
        if self._pos + n > len(self._buf):
            raise PackageError(f"{self.path}: truncated GGUF file while reading {what}")
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out

    def _unpack(self, fmt: str):
        return struct.unpack(fmt, self._take(struct.calcsize(fmt), fmt))[0]

    def _string(self) -> str:
        return self._take(self._unpack("<Q"), "string").decode("utf-8")

    def _value(self, vtype: int):
        if vtype in _SCALARS:
            return np.frombuffer(self._take(_SCALARS[vtype].itemsize, "value"), _SCALARS[vtype])[0].item()
        if vtype == _STRING:
            return self._string()
        if vtype == _ARRAY:
            itype, count = self._unpack("<I"), self._unpack("<Q")
            if itype in _SCALARS:
                dtype = _SCALARS[itype]
                return np.frombuffer(self._take(count * dtype.itemsize, "array"), dtype).tolist()
            return [self._value(itype) for _ in range(count)]
        raise PackageError(f"{self.path}: unknown GGUF metadata type {vtype}")


def _nbytes(shape: tuple[int, ...], qtype: int) -> int:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    block, size = GGML_QUANT_SIZES[GGMLQuantizationType(qtype)]
    return int(np.prod(shape, dtype=np.int64)) // block * size
