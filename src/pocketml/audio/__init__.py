"""Audio front end for speech models, torch-free: WAV reading, resampling, Whisper's log-mel."""

from pocketml.audio.mel import CHUNK_SAMPLES, N_FRAMES, SAMPLE_RATE, log_mel_spectrogram, mel_filters, pad_or_trim
from pocketml.audio.wav import read_wav, resample

__all__ = [
    "CHUNK_SAMPLES",
    "N_FRAMES",
    "SAMPLE_RATE",
    "log_mel_spectrogram",
    "mel_filters",
    "pad_or_trim",
    "read_wav",
    "resample",
]
