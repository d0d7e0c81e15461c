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
import math
import mmap as _mmap
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import ConfigError, PackageError, VerificationError
from ..ir.program import Program
from ..ir.types import MAX_DIM, DType
from ..ir.verify import verify
from .files import FileWatch, check_target, open_regular, temp_file

MAGIC = b"POCKETML"
FORMAT_VERSION = 1
ALIGN = 64
_PREFIX = struct.Struct("<8sIIQ")
MAX_HEADER = 256 << 20  # bytes; a large LLM's header is a few MiB
MAX_DEPTH = 64  # JSON nesting; real headers nest about 8 levels
MAX_INT = 2**63  # JSON integers beyond int64 mean nothing in a package


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
    content = {"format_version": FORMAT_VERSION, "metadata": metadata,
               "program": program.to_json(), "weights": table, "data_size": offset}
    try:
        _check_json(content)  # what a reader would refuse is refused now, not after the save
    except ValueError as e:
        raise ConfigError(f"cannot save package {str(path)!r}: {e}") from None
    header = json.dumps(content, separators=(",", ":"), allow_nan=False).encode()
    data_start = _align(_PREFIX.size + len(header))
    check_target(path)
    try:
        fd, tmp = temp_file(path)
    except OSError as e:
        raise PackageError(f"cannot save package {str(path)!r}: {e.strerror}") from None
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
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # disk full, permission denied, target turned into a folder...
            raise PackageError(f"cannot save package {str(path)!r}: {e.strerror or e}") from None
        raise


def read(path: str | os.PathLike, verify_checksums: bool = True, mmap: bool = True) -> tuple[Program, dict]:
    """Load and validate a package; weights are read-only views of a memory map (no copy), or
    with `mmap=False` of a private copy read into memory."""
    program, metadata, _ = read_watched(path, verify_checksums, mmap)
    return program, metadata


def read_watched(path: str | os.PathLike, verify_checksums: bool = True,
                 mmap: bool = True) -> tuple[Program, dict, FileWatch | None]:
    """`read`, plus the watch that notices the mapped file changing (None without a map)."""
    path = Path(path)
    f = open_regular(path)
    try:
        size = os.fstat(f.fileno()).st_size
        if size < _PREFIX.size:
            raise PackageError(f"{path}: too short ({size} bytes) to be a pocketml package")
        buf = _map(f, path) if mmap else _read_all(f, path, size)
        program, metadata = _parse(path, buf, size, verify_checksums)
        if mmap and verify_checksums:
            _unmap_pages(buf)
    except BaseException:
        f.close()
        raise
    if not mmap:
        f.close()
        return program, metadata, None
    return program, metadata, FileWatch(f, path)


def _unmap_pages(mm) -> None:
    """Drops the mapped pages the checksums read from the process's resident set (they stay in
    the page cache: a later read maps them back without I/O). Until the model runs, the weights
    then take no memory, so what a session builds in between (a tokenizer's ~30 MiB while it
    parses) does not add to them at the peak."""
    if hasattr(_mmap, "MADV_DONTNEED"):
        try:
            mm.madvise(_mmap.MADV_DONTNEED)
        except OSError:
            pass


def _map(f, path: Path):
    try:
        return _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_READ)
    except (OSError, ValueError) as e:
        raise PackageError(f"{path}: cannot memory-map the package: {e}") from None


def _read_all(f, path: Path, size: int) -> np.ndarray:
    """The file in a 64-byte-aligned buffer (weights keep their alignment), then read-only."""
    try:
        raw = np.empty(size + ALIGN, np.uint8)
    except MemoryError:
        raise PackageError(f"{path}: not enough memory to read the {size}-byte package") from None
    start = -raw.ctypes.data % ALIGN
    buf = raw[start:start + size]
    if f.readinto(memoryview(buf)) != size:
        raise PackageError(f"{path}: the file changed size while being read")
    buf.flags.writeable = False
    return buf


def _parse(path: Path, mm, size: int, verify_checksums: bool) -> tuple[Program, dict]:
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
    if hlen > MAX_HEADER:
        raise PackageError(f"{path}: header of {hlen} bytes is larger than the {MAX_HEADER} allowed")
    raw = bytes(mm[_PREFIX.size:_PREFIX.size + hlen])
    if zlib.crc32(raw) != crc:
        raise PackageError(f"{path}: header is corrupt (checksum mismatch)")
    header = _load_json(path, raw)
    data_start = _align(_PREFIX.size + hlen)
    weights = _weights(path, mm, header, data_start, size, verify_checksums)
    if not isinstance(header.get("program"), dict):
        raise PackageError(f"{path}: malformed program in header: 'program' must be an object")
    try:
        program = Program.from_json(header["program"], weights)
    except VerificationError as e:
        raise PackageError(f"{path}: malformed program in header: {e}") from None
    try:
        verify(program)
    except VerificationError as e:
        raise PackageError(f"{path}: invalid program: {e}") from None
    metadata = header.get("metadata", {})
    if not isinstance(metadata, dict):
        raise PackageError(f"{path}: metadata must be an object")
    return program, metadata


def _load_json(path: Path, raw: bytes) -> dict:
    def no_constant(name):
        raise ValueError(f"{name} is not JSON")

    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=no_constant)
        _check_json(header)
    except UnicodeDecodeError as e:
        raise PackageError(f"{path}: header is not UTF-8: {e}") from None
    except RecursionError:
        raise PackageError(f"{path}: header nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:  # JSONDecodeError, an integer of thousands of digits, _check_json
        raise PackageError(f"{path}: header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise PackageError(f"{path}: header must be a JSON object")
    return header


def _check_json(obj) -> None:
    """ValueError unless nesting stays within MAX_DEPTH, integers within int64 and floats finite,
    so that later (recursive) code never meets what it cannot handle. Iterative: no recursion."""
    stack = [(obj, 1)]
    while stack:
        o, depth = stack.pop()
        if isinstance(o, (dict, list, tuple)):
            if depth > MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            stack.extend((v, depth + 1) for v in (o.values() if isinstance(o, dict) else o))
        elif isinstance(o, int) and not isinstance(o, bool) and abs(o) > MAX_INT:
            raise ValueError(f"an integer of {o.bit_length()} bits is out of range (int64)")
        elif isinstance(o, float) and not math.isfinite(o):
            raise ValueError(f"non-finite number {o}")


def _weights(path, mm, header, data_start, size, verify_checksums) -> dict[str, np.ndarray]:
    if not isinstance(header.get("weights"), dict):
        raise PackageError(f"{path}: header lacks a weights table")
    data_size = header.get("data_size")
    if type(data_size) is not int or data_start + data_size != size:
        raise PackageError(f"{path}: truncated or padded: expected {data_start}+{data_size!r:.40} bytes, "
                           f"file has {size}")
    out = {}
    for name, e in header["weights"].items():
        entry = _weight_entry(e, verify_checksums)
        if entry is None:
            raise PackageError(f"{path}: weight {name!r} has a malformed table entry {e!r:.200}")
        dtype, shape, offset, nbytes = entry
        if nbytes != math.prod(shape) * dtype.itemsize:  # exact: np.prod would wrap around
            raise PackageError(f"{path}: weight {name!r}: {nbytes} bytes do not hold {dtype.value}{list(shape)}")
        if offset + nbytes > data_size:
            raise PackageError(f"{path}: weight {name!r} lies outside the data section")
        arr = np.frombuffer(mm, dtype=dtype.np.newbyteorder("<"), count=nbytes // dtype.itemsize,
                            offset=data_start + offset).reshape(shape)
        if verify_checksums and zlib.crc32(_bytes(arr)) != e["crc32"]:
            raise PackageError(f"{path}: weight {name!r} is corrupt (checksum mismatch)")
        out[name] = arr
    return out


def _weight_entry(e, verify_checksums: bool):
    """(dtype, shape, offset, nbytes) of a well-formed table entry, else None. Ints must be true
    ints (a bool is not a size) and in range."""
    if not isinstance(e, dict) or not isinstance(e.get("dtype"), str) or e["dtype"] not in DType.__members__:
        return None
    shape, offset, nbytes = e.get("shape"), e.get("offset"), e.get("nbytes")
    if not isinstance(shape, list) or not all(type(d) is int and 0 <= d <= MAX_DIM for d in shape):
        return None
    if not (type(offset) is int and type(nbytes) is int and offset >= 0 and nbytes >= 0
            and offset % ALIGN == 0):
        return None
    if verify_checksums and type(e.get("crc32")) is not int:
        return None
    return DType(e["dtype"]), tuple(shape), offset, nbytes
