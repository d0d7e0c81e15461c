"""The .pocket file: one self-contained package, weights 64-byte aligned for zero-copy mmap.

Layout (little-endian; docs/FORMAT.md is the specification):
    0   8  magic b"POCKETML"
    8   4  u32 format version
    12  4  u32 CRC-32 of the header bytes
    16  8  u64 header length H
    24  H  header: UTF-8 JSON {format_version, metadata, program, weights, data_size}
    ..     zero padding to a multiple of 64: the data section starts there
    data   each weight at its `offset` (a multiple of 64) relative to the data section
No pickle: the header is JSON and weights are raw little-endian arrays.
"""
from __future__ import annotations

import json
import mmap
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import PackageError, VerificationError
from ..ir.program import Program
from ..ir.types import DType
from ..ir.verify import verify

MAGIC = b"POCKETML"
FORMAT_VERSION = 1
ALIGN = 64
_PREFIX = struct.Struct("<8sIIQ")


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _bytes(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1).view(np.uint8)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write(path: str | os.PathLike, program: Program, metadata: dict) -> None:
    """Write atomically: a temp file in the same folder, fsync'd, then renamed over `path`."""
    path = Path(path)
    used = program.used_weights()
    table, offset = {}, 0
    arrays = {}
    for name in sorted(used):
        a = np.ascontiguousarray(program.weights[name]).reshape(np.shape(program.weights[name]))
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        DType.of(a.dtype)  # raises for an unsupported dtype before anything is written
        arrays[name] = a
        table[name] = {"dtype": DType.of(a.dtype).value, "shape": list(a.shape), "offset": offset,
                       "nbytes": a.nbytes, "crc32": zlib.crc32(_bytes(a))}
        offset = _align(offset + a.nbytes)
    header = json.dumps({"format_version": FORMAT_VERSION, "metadata": metadata,
                         "program": program.to_json(), "weights": table, "data_size": offset},
                        separators=(",", ":"), allow_nan=False).encode()
    data_start = _align(_PREFIX.size + len(header))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, zlib.crc32(header), len(header)))
            f.write(header)
            f.write(b"\0" * (data_start - f.tell()))
            for name, a in arrays.items():
                f.write(b"\0" * (data_start + table[name]["offset"] - f.tell()))
                f.write(_bytes(a))
            f.write(b"\0" * (data_start + offset - f.tell()))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: str | os.PathLike, verify_checksums: bool = True) -> tuple[Program, dict]:
    """Load and validate a package; weights are read-only views of a memory map (no copy)."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise PackageError(f"cannot open package {str(path)!r}: {e.strerror}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size < _PREFIX.size:
            raise PackageError(f"{path}: too short ({size} bytes) to be a pocketml package")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    magic, version, crc, hlen = _PREFIX.unpack_from(mm, 0)
    if magic != MAGIC:
        raise PackageError(f"{path}: not a pocketml package (bad magic {magic!r})")
    if version != FORMAT_VERSION:
        newer = " written by a newer pocketml; upgrade pocketml to read it" if version > FORMAT_VERSION else ""
        raise PackageError(f"{path}: unknown package format version {version} (this pocketml reads "
                           f"version {FORMAT_VERSION}){newer}")
    if _PREFIX.size + hlen > size:
        raise PackageError(f"{path}: truncated: header of {hlen} bytes runs past the end of the "
                           f"{size}-byte file")
    raw = mm[_PREFIX.size:_PREFIX.size + hlen]
    if zlib.crc32(raw) != crc:
        raise PackageError(f"{path}: header is corrupt (checksum mismatch)")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PackageError(f"{path}: header is not valid JSON: {e}") from None
    data_start = _align(_PREFIX.size + hlen)
    weights = _weights(path, mm, header, data_start, size, verify_checksums)
    try:
        program = Program.from_json(header["program"], weights)
        verify(program)
    except VerificationError as e:
        raise PackageError(f"{path}: invalid program: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise PackageError(f"{path}: malformed program in header: {type(e).__name__}: {e}") from None
    metadata = header.get("metadata", {})
    if not isinstance(metadata, dict):
        raise PackageError(f"{path}: metadata must be an object")
    return program, metadata


def _weights(path, mm, header, data_start, size, verify_checksums) -> dict[str, np.ndarray]:
    if not isinstance(header, dict) or not isinstance(header.get("weights"), dict):
        raise PackageError(f"{path}: header lacks a weights table")
    data_size = header.get("data_size")
    if not isinstance(data_size, int) or data_start + data_size != size:
        raise PackageError(f"{path}: truncated or padded: expected {data_start}+{data_size} bytes, "
                           f"file has {size}")
    out = {}
    for name, e in header["weights"].items():
        try:
            dtype = DType(e["dtype"])
            shape = tuple(e["shape"])
            offset, nbytes = e["offset"], e["nbytes"]
            ok = (all(isinstance(d, int) and d >= 0 for d in shape) and isinstance(offset, int)
                  and isinstance(nbytes, int) and offset >= 0 and offset % ALIGN == 0)
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise PackageError(f"{path}: weight {name!r} has a malformed table entry {e!r}")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes != expected:
            raise PackageError(f"{path}: weight {name!r}: {nbytes} bytes do not hold {dtype.value}{list(shape)}")
        if offset + nbytes > data_size:
            raise PackageError(f"{path}: weight {name!r} lies outside the data section")
        arr = np.frombuffer(mm, dtype=dtype.np.newbyteorder("<"), count=nbytes // dtype.itemsize,
                            offset=data_start + offset).reshape(shape)
        if verify_checksums and zlib.crc32(_bytes(arr)) != e.get("crc32"):
            raise PackageError(f"{path}: weight {name!r} is corrupt (checksum mismatch)")
        out[name] = arr
    return out

