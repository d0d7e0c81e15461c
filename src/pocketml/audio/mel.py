"""Whisper's log-mel spectrogram in NumPy (what its encoder takes as `input_features`)."""

from __future__ import annotations

from functools import cache

import numpy as np

from pocketml.errors import InputError

SAMPLE_RATE = 16_000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_SAMPLES = 30 * SAMPLE_RATE  # Whisper always sees 30 s windows
N_FRAMES = CHUNK_SAMPLES // HOP_LENGTH  # 3000


def pad_or_trim(samples, length: int = CHUNK_SAMPLES) -> np.ndarray:
    """1-D `samples` cut to `length`, or zero-padded at the end up to it."""
    samples = np.asarray(samples)
    if samples.shape[0] >= length:
        return samples[:length]
    return np.pad(samples, (0, length - samples.shape[0]))


def _hz_to_mel(f):
    """Slaney's mel scale (librosa's htk=False): linear to 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(f < 1000.0, 3.0 * f / 200.0, 15.0 + np.log(np.maximum(f, 1000.0) / 1000.0) / logstep)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(m < 15.0, 200.0 * m / 3.0, 1000.0 * np.exp(logstep * (np.maximum(m, 15.0) - 15.0)))


@cache
def mel_filters(n_mels: int = 80) -> np.ndarray:
    """(n_mels, N_FFT // 2 + 1) triangular filters over 0-8 kHz with Slaney's area normalisation.

    The same matrix as librosa.filters.mel(sr=16000, n_fft=400, n_mels, htk=False,
    norm="slaney"), which is what Whisper ships in mel_filters.npz (80 and 128 bins).
    """
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), n_mels + 2))
    widths = np.diff(edges)
    rising = (fft_hz[None, :] - edges[:-2, None]) / widths[:-1, None]
    falling = (edges[2:, None] - fft_hz[None, :]) / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # each filter has unit area in Hz
    weights.flags.writeable = False
    return weights


@cache
def _bands(n_mels: int) -> tuple:
    """Each filter's nonzero run of bins: (first bin, its weights). A filter covers a few bins
    (about 400 nonzeros of the 80 x 201 matrix), so the projection is a few hundred scaled rows
    added, not a BLAS matrix product: that one woke OpenBLAS's threads, whose spinning after it
    took a core from the encoder that runs next (Whisper's encoder 35 ms slower a window)."""
    out = []
    for row in mel_filters(n_mels):
        nz = np.flatnonzero(row)
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
        out.append((lo, row[lo:hi]))
    return tuple(out)


def _project(power_t: np.ndarray, n_mels: int) -> np.ndarray:
    """mel_filters(n_mels) @ power_t for power_t (bins, frames): the filters' bands only."""
    out = np.zeros((n_mels, power_t.shape[1]))
    for m, (lo, w) in enumerate(_bands(n_mels)):
        for i, v in enumerate(w):
            out[m] += v * power_t[lo + i]
    return out


@cache
def _hann() -> np.ndarray:
    """Periodic Hann window (torch.hann_window's default), as Whisper uses for its STFT."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)


def log_mel_spectrogram(samples, n_mels: int = 80, n_samples: int | None = CHUNK_SAMPLES) -> np.ndarray:
    """16 kHz mono audio -> Whisper's log-mel features, (n_mels, frames) float32.

    As Whisper and transformers' WhisperFeatureExtractor: the audio is padded with zeros or cut
    to `n_samples` (30 s, so 3000 frames; None keeps its length: len // 160 frames), then a
    centred STFT (400-sample periodic Hann window, hop 160, reflect padding), power spectrum,
    `n_mels` Slaney mel filters, log10 clamped at 1e-10, floored at its maximum - 8, and
    (x + 4) / 4. Computed in float64. Add a batch axis (`[None]`) for the encoder.
    """
    x = np.asarray(samples)
    if x.ndim != 1:
        raise InputError(f"log_mel_spectrogram expects 1-D mono samples, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise InputError(f"log_mel_spectrogram expects real samples, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise InputError("log_mel_spectrogram: samples contain NaN or infinity")
    if n_samples is not None:
        x = pad_or_trim(x, n_samples)
    if x.size <= N_FFT // 2:
        raise InputError(f"log_mel_spectrogram needs more than {N_FFT // 2} samples, got {x.size}")
    padded = np.pad(x, N_FFT // 2, mode="reflect")
    # frames start every hop; the last (1 + len // hop)-th frame is dropped, as Whisper does
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][: x.size // HOP_LENGTH]
    power = np.abs(np.fft.rfft(frames * _hann(), axis=1)) ** 2
    log_spec = np.log10(np.maximum(_project(np.ascontiguousarray(power.T), n_mels), 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)
