"""WAV reading and band-limited resampling in NumPy.

The RIFF chunks are parsed here rather than by the stdlib `wave` module, which reads only integer
PCM: float WAVs (format 3) and WAVE_FORMAT_EXTENSIBLE files (0xFFFE, what most tools write for
24-bit, 32-bit and multi-channel audio) are common and must load the same way.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from math import gcd
from pathlib import Path

import numpy as np

from pocketml.errors import InputError

_PCM = 1
_IEEE_FLOAT = 3
_EXTENSIBLE = 0xFFFE
# Sub-format GUIDs of WAVE_FORMAT_EXTENSIBLE: the format code, then this fixed 14-byte suffix.
_GUID_SUFFIX = bytes.fromhex("000000001000800000aa00389b71")
# Encoders writing to a pipe cannot seek back to fill in the data size, so they write a
# placeholder near the 32-bit limit (espeak-ng --stdout: 0x7ffff000; others 0xffffffff). A
# size that large running past the end of the file means "to the end", not truncation.
_PLACEHOLDER_SIZE = 0x7FFF0000


def read_wav(path) -> tuple[np.ndarray, int]:
    """Samples of a WAV file as float32 mono in [-1, 1], and its sample rate in Hz.

    Reads integer PCM of 8 (unsigned), 16, 24 and 32 bits and IEEE float of 32 or 64 bits, in
    plain or WAVE_FORMAT_EXTENSIBLE files; channels are averaged. Integers are scaled by their
    full range (int16 by 1/32768); floats are returned as stored, which is normally within
    [-1, 1]. A data size left as a streaming placeholder (as `espeak-ng --stdout` writes) reads
    to the end of the file. Raises `InputError` naming the file for a missing file, a file that
    is not WAV, a truncated one, or an encoding it cannot read.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read WAV file: {e.strerror or e}") from e
    fmt, frames = _chunks(data, path)
    samples = _decode(frames, fmt, path)
    return samples, fmt["rate"]


def _chunks(data: bytes, path: Path) -> tuple[dict, memoryview]:
    """The parsed `fmt ` chunk and the raw bytes of the `data` chunk."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        kind = {b"RIFX": "RIFX (big-endian) WAV", b"RF64": "RF64 WAV"}.get(data[:4])
        if kind:
            raise InputError(f"{path}: {kind} files are not supported; only little-endian RIFF WAVE")
        raise InputError(f"{path}: not a WAV file (no RIFF/WAVE header; starts with {bytes(data[:12])!r})")
    view = memoryview(data)
    fmt, pos = None, 12
    while pos + 8 <= len(data):
        chunk_id, size = bytes(view[pos : pos + 4]), struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            if body + size > len(data):
                raise InputError(f"{path}: truncated WAV: the fmt chunk needs {size} bytes, {len(data) - body} left")
            fmt = _parse_fmt(view[body : body + size], path)
        elif chunk_id == b"data":
            if fmt is None:
                raise InputError(f"{path}: malformed WAV: data chunk comes before the fmt chunk")
            available = len(data) - body
            if size >= _PLACEHOLDER_SIZE and size > available:
                size = available - available % fmt["block_align"]
            if size > available:
                raise InputError(
                    f"{path}: truncated WAV: the data chunk declares {size} bytes but only {available} are present"
                )
            if size % fmt["block_align"]:
                raise InputError(
                    f"{path}: truncated WAV: the data chunk holds {size} bytes, not a whole number of "
                    f"{fmt['block_align']}-byte frames"
                )
            return fmt, view[body : body + size]
        pos = body + size + (size & 1)  # chunks are padded to an even length
    if fmt is None:
        raise InputError(f"{path}: malformed or truncated WAV: no fmt chunk")
    raise InputError(f"{path}: malformed or truncated WAV: no data chunk")


def _parse_fmt(body: memoryview, path: Path) -> dict:
    if len(body) < 16:
        raise InputError(f"{path}: malformed WAV: fmt chunk of {len(body)} bytes (at least 16 needed)")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == _EXTENSIBLE:
        if len(body) < 40:
            raise InputError(f"{path}: malformed WAV: extensible fmt chunk of {len(body)} bytes (40 needed)")
        sub = bytes(body[24:40])
        if sub[2:] != _GUID_SUFFIX:
            raise InputError(f"{path}: unsupported WAV encoding: extensible sub-format {sub.hex()}")
        tag = struct.unpack_from("<H", sub)[0]
    if tag not in (_PCM, _IEEE_FLOAT):
        names = {2: "ADPCM", 6: "A-law", 7: "mu-law", 0x11: "IMA ADPCM", 0x55: "MP3"}
        name = names.get(tag, f"format code {tag:#06x}")
        raise InputError(f"{path}: unsupported WAV encoding {name}; only PCM integer and IEEE float are read")
    supported = (8, 16, 24, 32) if tag == _PCM else (32, 64)
    kind = "PCM" if tag == _PCM else "float"
    if bits not in supported:
        raise InputError(f"{path}: unsupported WAV encoding: {bits}-bit {kind} (supported: {supported})")
    if channels == 0 or rate == 0:
        raise InputError(f"{path}: malformed WAV: {channels} channels at {rate} Hz")
    if block_align != channels * bits // 8:
        raise InputError(
            f"{path}: unsupported WAV layout: {block_align}-byte frames for {channels} x {bits}-bit samples"
        )
    return dict(tag=tag, channels=channels, rate=rate, block_align=block_align, bits=bits)


def _decode(raw: memoryview, fmt: dict, path: Path) -> np.ndarray:
    bits, channels = fmt["bits"], fmt["channels"]
    if fmt["tag"] == _IEEE_FLOAT:
        x = np.frombuffer(raw, np.dtype(f"<f{bits // 8}")).astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise InputError(f"{path}: float WAV holds non-finite samples (NaN or infinity)")
    elif bits == 8:
        x = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
    elif bits == 24:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        x = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8) / float(1 << 23)  # sign-extend
    else:
        x = np.frombuffer(raw, np.dtype(f"<i{bits // 8}")) / float(1 << (bits - 1))
    return x.reshape(-1, channels).mean(axis=1).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Resampling
# ---------------------------------------------------------------------------------------------

# Kaiser-windowed sinc: flat to 90% of the lower Nyquist rate, >= 90 dB down from its Nyquist on.
_PASS_EDGE = 0.90
_ATTENUATION_DB = 90.0
_BETA = 0.1102 * (_ATTENUATION_DB - 8.7)


def resample(x, from_rate: int, to_rate: int = 16_000) -> np.ndarray:
    """`x` (1-D) resampled from `from_rate` to `to_rate` Hz with a band-limited polyphase filter.

    A Kaiser-windowed sinc low-pass at the lower of the two Nyquist rates removes everything the
    output cannot represent (>= 90 dB down at and above it) and passes 0 to 90% of it flat. The
    output has ceil(len(x) * to_rate / from_rate) samples, aligned with the input's first
    sample; the signal is taken as zero outside the input. Returns float32.
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise InputError(f"resample expects 1-D samples, got shape {x.shape}")
    if int(from_rate) != from_rate or int(to_rate) != to_rate or from_rate <= 0 or to_rate <= 0:
        raise InputError(f"resample needs positive integer rates, got {from_rate} -> {to_rate}")
    from_rate, to_rate = int(from_rate), int(to_rate)
    if from_rate == to_rate or x.size == 0:
        return x.astype(np.float32)
    g = gcd(from_rate, to_rate)
    up, down = to_rate // g, from_rate // g
    table, half = _polyphase(up, down)
    x = x.astype(np.float64)
    n_out = -(-x.size * up // down)
    padded = np.ascontiguousarray(np.pad(x, (half, half + 1)))
    out = np.empty(n_out, np.float32)
    taps, step = table.shape[1], padded.strides[0]
    # Output n sits at input time base + phase / up with base, phase = divmod(n * down, up); the
    # outputs n0, n0 + up, n0 + 2 up, ... share a phase and their windows start `down` samples
    # apart: one strided view and one matrix-vector product per phase (up of them), nothing copied.
    for n0 in range(min(up, n_out)):
        base, phase = divmod(n0 * down, up)
        count = len(range(n0, n_out, up))
        windows = np.lib.stride_tricks.as_strided(padded[base:], (count, taps), (down * step, step), writeable=False)
        out[n0::up] = windows @ table[phase]
    return out


@lru_cache(maxsize=8)
def _polyphase(up: int, down: int) -> tuple[np.ndarray, int]:
    """(up, 2 * half + 1) filter taps, one row per fractional phase, and `half`.

    Row p weights input samples base - half .. base + half for an output at input time
    base + p / up. Each row is normalised to sum to 1, so a constant passes unchanged.
    """
    ratio = up / down  # output rate over input rate
    cutoff = 0.5 * min(1.0, ratio)  # lower Nyquist rate, in cycles per input sample
    transition = (1.0 - _PASS_EDGE) * cutoff
    centre = cutoff - transition / 2
    # Kaiser's length formula for the stop-band attenuation over this transition width
    half = int(np.ceil((_ATTENUATION_DB - 7.95) / (2.285 * 2 * np.pi * transition) / 2))
    offsets = np.arange(-half, half + 1)[None, :]
    tau = np.arange(up)[:, None] / up - offsets  # output time minus input sample time
    window = np.i0(_BETA * np.sqrt(np.clip(1.0 - (tau / (half + 1)) ** 2, 0.0, None))) / np.i0(_BETA)
    table = 2 * centre * np.sinc(2 * centre * tau) * window
    table /= table.sum(axis=1, keepdims=True)
    table.flags.writeable = False
    return table, half
