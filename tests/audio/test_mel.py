"""Whisper log-mel features against transformers' WhisperFeatureExtractor, on speech and signals."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from pocketml.audio import CHUNK_SAMPLES, N_FRAMES, log_mel_spectrogram, mel_filters, pad_or_trim, read_wav, resample
from pocketml.errors import InputError

SR = 16000
ATOL = 1e-4


@pytest.fixture(scope="module")
def extractor():
    transformers = pytest.importorskip("transformers")
    return transformers.WhisperFeatureExtractor()


def reference(extractor, audio: np.ndarray, path: str = "numpy") -> np.ndarray:
    """transformers' features of `audio`: its NumPy path (default) or its torch path."""
    if path == "numpy":  # __call__ picks the torch path whenever torch is installed
        padded = pad_or_trim(np.asarray(audio, np.float32))
        return extractor._np_extract_fbank_features(padded[None], "cpu")[0]
    return extractor(audio, sampling_rate=SR, return_tensors="np").input_features[0]


def signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(3 * SR) / SR
    chirp_t = np.arange(5 * SR) / SR
    return {
        "tone": 0.5 * np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 1.5 * t),
        "chirp": 0.3 * np.sin(2 * np.pi * (50 * chirp_t + 780 * chirp_t**2)),  # 50 Hz -> 7.85 kHz
        "noise": 0.1 * rng.standard_normal(2 * SR),
        "clicks": np.where(np.arange(SR) % 1600 == 0, 0.9, 0.0),
        "quiet": 1e-4 * rng.standard_normal(SR),  # near the 1e-10 clamp
        "loud": np.clip(3 * np.sin(2 * np.pi * 200 * t), -1, 1),
        "short": 0.5 * np.sin(2 * np.pi * 300 * np.arange(1000) / SR),
        "exact_30s": 0.05 * rng.standard_normal(CHUNK_SAMPLES),
        "over_30s": 0.05 * rng.standard_normal(CHUNK_SAMPLES + 12345),
    }


@pytest.mark.parametrize("name", list(signals()))
def test_matches_transformers_on_signals(extractor, name):
    audio = signals()[name].astype(np.float32)
    ours = log_mel_spectrogram(audio)
    assert ours.shape == (80, N_FRAMES) and ours.dtype == np.float32
    assert np.abs(ours - reference(extractor, audio)).max() <= ATOL


def test_matches_transformers_torch_path(extractor):
    """transformers' default path (torch STFT in float32) agrees within the same tolerance."""
    pytest.importorskip("torch")
    audio = signals()["chirp"].astype(np.float32)
    assert np.abs(log_mel_spectrogram(audio) - reference(extractor, audio, path="torch")).max() <= ATOL


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs: apt-get install espeak-ng")
@pytest.mark.parametrize(
    "text", ["The quick brown fox jumps over the lazy dog.", "Please call Stella. Ask her to bring these things."]
)
def test_matches_transformers_on_espeak_speech(extractor, tmp_path, text):
    path = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True, timeout=60)
    samples, rate = read_wav(path)
    audio = resample(samples, rate, SR)
    ours = log_mel_spectrogram(audio)
    assert np.abs(ours - reference(extractor, audio)).max() <= ATOL
    voiced = ours[:, : audio.size // 160]
    assert voiced.max() - voiced.min() > 1.0  # real structure, not a flat floor


def test_filters_match_transformers(extractor):
    np.testing.assert_allclose(mel_filters(80), extractor.mel_filters.T, rtol=0, atol=1e-12)
    from transformers.audio_utils import mel_filter_bank

    big = mel_filter_bank(201, 128, 0.0, 8000.0, SR, norm="slaney", mel_scale="slaney")
    np.testing.assert_allclose(mel_filters(128), big.T, rtol=0, atol=1e-12)


def test_filters_shape_and_area():
    f = mel_filters(80)
    assert f.shape == (80, 201) and not f.flags.writeable
    # Slaney normalisation: each triangle has area 1 in Hz, up to sampling it on 40 Hz bins
    area = f.sum(axis=1) * (SR / 400)
    np.testing.assert_allclose(area, 1.0, rtol=0.1)
    assert np.all(np.diff(np.argmax(f, axis=1)) >= 0)  # centres rise with the filter index


def test_silence_and_padding():
    silence = log_mel_spectrogram(np.zeros(SR, np.float32))
    np.testing.assert_array_equal(silence, np.full((80, N_FRAMES), -1.5, np.float32))  # (log10(1e-10)+4)/4
    empty = log_mel_spectrogram(np.zeros(0, np.float32))
    np.testing.assert_array_equal(empty, silence)
    x = np.random.default_rng(0).standard_normal(SR + 77).astype(np.float32)
    assert log_mel_spectrogram(x, n_samples=None).shape == (80, (SR + 77) // 160)
    assert log_mel_spectrogram(x, n_mels=128).shape == (128, N_FRAMES)
    assert pad_or_trim(x, 100).shape == (100,) and pad_or_trim(x, 20000)[SR + 77 :].max() == 0


def test_scale_dependence_is_whisper_s():
    """Features are absolute log power, floored 8 decades (2 units) below the clip's own peak."""
    x = signals()["noise"]
    a, b = log_mel_spectrogram(x), log_mel_spectrogram(10 * x)
    assert np.isclose(b.max() - a.max(), 0.5, atol=1e-4)  # 20 dB more power: +2 in log10, /4
    assert np.isclose(a.max() - a.min(), 2.0, atol=1e-4)


def test_rejects_bad_input():
    with pytest.raises(InputError, match="1-D"):
        log_mel_spectrogram(np.zeros((2, SR), np.float32))
    with pytest.raises(InputError, match="NaN"):
        log_mel_spectrogram(np.array([0.0, np.nan] * 500))
    with pytest.raises(InputError, match="more than 200"):
        log_mel_spectrogram(np.zeros(150), n_samples=None)
    with pytest.raises(InputError, match="real samples"):
        log_mel_spectrogram(np.zeros(SR, np.complex64))
