"""WAV reading (every encoding, by `wave` and by hand), its errors, and resampling accuracy."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import textwrap
import wave

import numpy as np
import pytest

from pocketml.audio import read_wav, resample
from pocketml.errors import InputError

_GUID_SUFFIX = bytes.fromhex("000000001000800000aa00389b71")


def riff(fmt_body: bytes, data: bytes, extra_chunks: bytes = b"", data_size: int | None = None) -> bytes:
    """A RIFF/WAVE file: fmt chunk, optional chunks, data chunk (padded to even length)."""
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body + extra_chunks
    body += b"data" + struct.pack("<I", size) + data + (b"\0" if len(data) % 2 else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def fmt_chunk(tag: int, channels: int, rate: int, bits: int, extensible_tag: int | None = None) -> bytes:
    align = channels * bits // 8
    head = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if extensible_tag is None:
        return head
    guid = struct.pack("<H", extensible_tag) + _GUID_SUFFIX
    return head + struct.pack("<HHI", 22, bits, (1 << channels) - 1) + guid


def int_frames(bits: int, channels: int, n: int = 500, seed: int = 0) -> np.ndarray:
    """Random integer samples spanning the full range of `bits`, with both extremes present."""
    rng = np.random.default_rng(seed)
    lo, hi = (0, 255) if bits == 8 else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    x = rng.integers(lo, hi, size=(n, channels), endpoint=True, dtype=np.int64)
    x[0, 0], x[1, 0] = lo, hi
    return x


def int_bytes(x: np.ndarray, bits: int) -> bytes:
    if bits == 8:
        return x.astype(np.uint8).tobytes()
    if bits == 24:
        return np.ascontiguousarray((x.astype("<i4").view(np.uint8)).reshape(-1, 4)[:, :3]).tobytes()
    return x.astype(f"<i{bits // 8}").tobytes()


def expected_float(x: np.ndarray, bits: int) -> np.ndarray:
    scaled = (x - 128.0) / 128.0 if bits == 8 else x / float(1 << (bits - 1))
    return scaled.mean(axis=1).astype(np.float32)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("bits", [8, 16, 24, 32])
def test_pcm_written_by_wave_module(tmp_path, bits, channels):
    x = int_frames(bits, channels)
    path = tmp_path / f"pcm{bits}.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(bits // 8)
        w.setframerate(22050)
        w.writeframes(int_bytes(x, bits))
    samples, rate = read_wav(path)
    assert rate == 22050 and samples.dtype == np.float32 and samples.shape == (500,)
    np.testing.assert_allclose(samples, expected_float(x, bits), atol=1e-7)
    assert samples.min() >= -1.0 and samples.max() <= 1.0
    if channels == 1:
        assert samples.min() == -1.0  # full-scale negative maps to exactly -1


@pytest.mark.parametrize("bits", [16, 24, 32])
def test_pcm_extensible(tmp_path, bits):
    x = int_frames(bits, 3, seed=bits)
    path = tmp_path / "ext.wav"
    path.write_bytes(riff(fmt_chunk(0xFFFE, 3, 48000, bits, extensible_tag=1), int_bytes(x, bits)))
    samples, rate = read_wav(path)
    assert rate == 48000
    np.testing.assert_allclose(samples, expected_float(x, bits), atol=1e-7)


@pytest.mark.parametrize("extensible", [False, True])
@pytest.mark.parametrize("bits", [32, 64])
def test_float(tmp_path, bits, extensible):
    x = np.random.default_rng(bits).uniform(-1, 1, size=(300, 2))
    fmt = fmt_chunk(0xFFFE, 2, 16000, bits, 3) if extensible else fmt_chunk(3, 2, 16000, bits)
    path = tmp_path / "float.wav"
    path.write_bytes(riff(fmt, x.astype(f"<f{bits // 8}").tobytes()))
    samples, rate = read_wav(path)
    assert rate == 16000 and samples.dtype == np.float32
    np.testing.assert_allclose(samples, x.astype(f"<f{bits // 8}").astype(np.float64).mean(axis=1), atol=1e-7)


def test_skips_other_chunks_including_odd_sized_ones(tmp_path):
    x = int_frames(16, 1, n=7)  # 14 bytes of data; LIST chunk below has an odd length + pad byte
    extra = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\0" + b"fact" + struct.pack("<I", 4) + b"\7\0\0\0"
    path = tmp_path / "chunks.wav"
    path.write_bytes(riff(fmt_chunk(1, 1, 8000, 16), int_bytes(x, 16), extra_chunks=extra) + b"id3 \0\0\0\0")
    samples, _ = read_wav(path)
    np.testing.assert_allclose(samples, expected_float(x, 16))


def test_streaming_placeholder_size_reads_to_end(tmp_path):
    x = int_frames(16, 1, n=101)
    path = tmp_path / "stream.wav"
    path.write_bytes(riff(fmt_chunk(1, 1, 22050, 16), int_bytes(x, 16), data_size=0x7FFFF000))
    samples, _ = read_wav(path)
    np.testing.assert_allclose(samples, expected_float(x, 16))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs: apt-get install espeak-ng")
@pytest.mark.parametrize("to_stdout", [False, True])
def test_reads_espeak_output(tmp_path, to_stdout):
    path = tmp_path / "hello.wav"
    cmd = ["espeak-ng", "-v", "en-us", "hello world"]
    if to_stdout:  # a pipe: espeak-ng leaves placeholder sizes in the header
        path.write_bytes(subprocess.run(cmd + ["--stdout"], check=True, capture_output=True, timeout=60).stdout)
    else:
        subprocess.run(cmd + ["-w", str(path)], check=True, capture_output=True, timeout=60)
    samples, rate = read_wav(path)
    assert rate == 22050 and 0.5 * rate < samples.size < 3 * rate
    assert 0.1 < np.abs(samples).max() <= 1.0


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def _error(tmp_path, content: bytes) -> str:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_wav(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_not_a_wav(tmp_path):
    assert "not a WAV file" in _error(tmp_path, b"ID3\x03 this is an mp3, honestly")
    assert "not a WAV file" in _error(tmp_path, b"")
    assert "RIFX" in _error(tmp_path, b"RIFX\0\0\0\x24WAVE")


def test_truncated(tmp_path):
    good = riff(fmt_chunk(1, 2, 16000, 16), int_bytes(int_frames(16, 2), 16))
    assert "truncated" in _error(tmp_path, good[:-100])
    assert "truncated" in _error(tmp_path, good[:30])  # inside the fmt chunk
    assert "no data chunk" in _error(tmp_path, good[:36])  # fmt complete, data header gone
    odd = riff(fmt_chunk(1, 2, 16000, 16), b"\0" * 10)  # 2.5 stereo frames
    assert "whole number" in _error(tmp_path, odd)


def test_unsupported_encodings(tmp_path):
    assert "mu-law" in _error(tmp_path, riff(fmt_chunk(7, 1, 8000, 8), b"\0" * 8))
    assert "12-bit PCM" in _error(tmp_path, riff(struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 12), b"\0" * 8))
    assert "16-bit float" in _error(tmp_path, riff(fmt_chunk(3, 1, 8000, 16), b"\0" * 8))
    unknown = fmt_chunk(0xFFFE, 1, 8000, 16, 1)[:24] + b"\x01" * 16
    assert "sub-format" in _error(tmp_path, riff(unknown, b"\0" * 8))


def test_malformed(tmp_path):
    data_first = b"RIFF" + struct.pack("<I", 16) + b"WAVE" + b"data" + struct.pack("<I", 0)
    assert "before the fmt" in _error(tmp_path, data_first)
    nan = riff(fmt_chunk(3, 1, 8000, 32), np.array([0.0, np.nan], "<f4").tobytes())
    assert "non-finite" in _error(tmp_path, nan)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nothing.wav"):
        read_wav(tmp_path / "nothing.wav")


# ---------------------------------------------------------------------------------------------
# Resampling
# ---------------------------------------------------------------------------------------------

RATES = [(22050, 16000), (44100, 16000), (48000, 16000), (8000, 16000), (11025, 16000), (16000, 22050)]


def _tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)


@pytest.mark.parametrize("from_rate,to_rate", RATES)
def test_resampled_tones_match_the_ideal_signal(from_rate, to_rate):
    """In-band tones come out as the same sine sampled at the new rate (away from the edges)."""
    for freq in (100.0, 1000.0, 0.85 * min(from_rate, to_rate) / 2):
        y = resample(_tone(freq, from_rate), from_rate, to_rate)
        assert y.dtype == np.float32 and y.size == to_rate
        ideal = _tone(freq, to_rate)
        inner = slice(300, -300)
        assert np.abs(y[inner] - ideal[inner]).max() < 1e-4, freq
        spectrum = np.abs(np.fft.rfft(y[inner] * np.hanning(y[inner].size)))
        peak_hz = np.argmax(spectrum) * to_rate / y[inner].size
        assert abs(peak_hz - freq) < 2.0


@pytest.mark.parametrize("from_rate", [22050, 44100, 48000])
def test_downsampling_suppresses_aliases(from_rate):
    """Tones the 16 kHz output cannot hold (>= 8 kHz) are removed rather than folded back."""
    for freq in (8000.0, 8600.0, 10000.0, 0.45 * from_rate):
        y = resample(_tone(freq, from_rate), from_rate, 16000)[300:-300]
        level_db = 20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2) / 0.5) + 1e-30)
        assert level_db < -85, (freq, level_db)


def test_resample_lengths_constants_and_identity():
    x = np.random.default_rng(0).standard_normal(1001).astype(np.float32)
    assert resample(x, 16000, 16000) is not x and np.array_equal(resample(x, 16000, 16000), x)
    assert resample(x, 22050, 16000).size == -(-1001 * 320 // 441)
    assert resample(x, 8000, 16000).size == 2002
    assert resample(np.zeros(0), 22050, 16000).size == 0
    y = resample(np.full(5000, 0.25), 44100, 16000)
    np.testing.assert_allclose(y[200:-200], 0.25, atol=1e-6)  # DC passes with unit gain
    # many output blocks give the same result as one
    long = np.random.default_rng(1).standard_normal(300_000)
    np.testing.assert_allclose(resample(long, 48000, 16000)[:2000], resample(long[:7000], 48000, 16000)[:2000])


def test_resample_rejects_bad_arguments():
    with pytest.raises(InputError, match="1-D"):
        resample(np.zeros((2, 10)), 22050, 16000)
    with pytest.raises(InputError, match="positive integer"):
        resample(np.zeros(10), 0, 16000)
    with pytest.raises(InputError, match="positive integer"):
        resample(np.zeros(10), 22050.5, 16000)


def test_audio_never_imports_torch(tmp_path):
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes((_tone(440, 22050) * 10000).astype("<i2").tobytes())
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
        sys.meta_path.insert(0, Block())
        from pocketml.audio import log_mel_spectrogram, read_wav, resample
        x, rate = read_wav({str(path)!r})
        mel = log_mel_spectrogram(resample(x, rate, 16000))
        assert mel.shape == (80, 3000), mel.shape
        assert not any(k == "torch" or k.startswith("torch.") for k in sys.modules), "torch imported"
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
