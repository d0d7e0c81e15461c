"""Speech to text with a converted Whisper package, torch-free: `pocketml transcribe`.

The package (`pocketml zoo convert whisper-tiny-en`) holds two functions over one weights table:
`encoder` (log-mel `input_features` (1, n_mels, 3000) -> each decoder layer's cross-attention
keys and values) and `decoder` (`input_ids` (1, T), `causal_mask` (1, 1, T, S) and those keys and
values -> `logits` (1, T, vocab), its self-attention keys/values in states). The cross-attention
keys/values depend on the audio only, so they are computed once per 30 s window and fed to every
decoder call; each call after the prompt runs one token. Its metadata carries the tokenizer
("tokenizer_json", a `tokenizers` tokenizer.json) and the decoding settings ("transcription":
prompt, eot, suppress, suppress_at_start, max_new_tokens, sample_rate, n_mels).

Decoding is Whisper's greedy search without timestamps: the prompt, then the most likely token
with the `suppress` ids (and at the first step also `suppress_at_start`) excluded, until
end-of-text or `max_new_tokens`. Audio longer than 30 s is cut into consecutive windows of at
most 30 s, each ending at the quietest 0.1 s of its last 5 s so that a cut rarely splits a word;
each window is transcribed on its own (no text is carried over as a prompt) and the texts are
joined with spaces. Without timestamps a word spoken across a cut may be lost or doubled.

    result = pm.transcribe("whisper-tiny-en.pocket", "speech.wav")
    print(result.text, result.stats)
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError, InputError
from .generation import causal_mask, peak_rss_mib
from .model import Model, load

WINDOW_SECONDS = 30  # what Whisper's encoder sees (3000 frames)
_SEARCH_SECONDS = 5  # a window ends at the quietest point of its last 5 s
_QUIET_SECONDS = 0.1  # ... measured over 0.1 s


@dataclass
class Stats:
    audio_seconds: float = 0.0
    windows: int = 0
    features_seconds: float = 0.0  # reading, resampling and log-mel
    encoder_seconds: float = 0.0
    decoder_calls: int = 0  # each yields one token (the last of a window: end-of-text or the limit)
    decode_seconds: float = 0.0
    tokens: int = 0  # text tokens produced (end-of-text not counted)
    peak_rss_mib: float = 0.0

    @property
    def total_seconds(self) -> float:
        return self.features_seconds + self.encoder_seconds + self.decode_seconds

    @property
    def decode_tok_s(self) -> float:
        return self.decoder_calls / self.decode_seconds if self.decode_seconds else float("nan")

    @property
    def real_time_factor(self) -> float:
        """Processing time / audio duration: below 1 is faster than real time."""
        return self.total_seconds / self.audio_seconds if self.audio_seconds else float("nan")

    def __str__(self) -> str:
        return (f"audio: {self.audio_seconds:.2f} s in {self.windows} window(s) | features: "
                f"{self.features_seconds:.3f} s | encoder: {self.encoder_seconds:.3f} s | decoder: "
                f"{self.decoder_calls} calls, {self.decode_tok_s:.1f} tok/s | real-time factor: "
                f"{self.real_time_factor:.3f} | peak memory: {self.peak_rss_mib:.0f} MiB")


@dataclass
class Transcription:
    text: str
    tokens: list[list[int]]  # the text tokens of each window (prompt and end-of-text left out)
    stats: Stats = field(default_factory=Stats)

    def __str__(self) -> str:
        return self.text


class Transcriber:
    """A loaded speech-recognition package, ready to transcribe many clips.

    `model`: a path, or a `Model` of such a package (any of its functions). The encoder and
    decoder share the package's memory-mapped weights; the decoder's state is reset per window.
    """

    def __init__(self, model: Model | str | os.PathLike):
        if not isinstance(model, Model):
            model = load(model)
        program, meta = model.program, model.metadata
        missing = [f for f in ("encoder", "decoder") if f not in program.functions]
        if missing:
            raise ConfigError(f"transcription needs a package with functions 'encoder' and 'decoder' "
                              f"(pocketml zoo convert whisper-tiny-en OUT.pocket); this one has "
                              f"{list(program.functions)}")
        self.encoder, self.decoder = model.variant("encoder"), model.variant("decoder")
        settings = meta.get("transcription")
        if not isinstance(settings, dict) or not isinstance(meta.get("tokenizer_json"), str):
            raise ConfigError("this package's metadata lacks 'transcription' settings or 'tokenizer_json'; "
                              "convert it with `pocketml zoo convert whisper-tiny-en OUT.pocket`")
        try:
            self.prompt = [int(t) for t in settings["prompt"]]
            self.eot = int(settings["eot"])
            self.suppress = np.array(settings.get("suppress", []), np.int64)
            self.suppress_at_start = np.array(settings.get("suppress_at_start", []), np.int64)
            self.max_new_tokens = int(settings["max_new_tokens"])
            self.sample_rate = int(settings.get("sample_rate", 16_000))
            self.n_mels = int(settings.get("n_mels", 80))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"bad 'transcription' settings in the package metadata: {e!r}") from None
        self._check_signatures()
        self.context_length = self._context_length()
        self._tokenizer_json = meta["tokenizer_json"]
        self._tokenizer = None
        self._state = self.decoder.make_state()

    def _check_signatures(self) -> None:
        enc, dec = self.encoder, self.decoder
        want = {"input_ids", "causal_mask", *enc.output_names}
        if enc.input_names != ["input_features"] or set(dec.input_names) != want or \
                dec.output_names != ["logits"] or not dec.states:
            raise ConfigError(f"the package's functions do not fit together: encoder {enc.input_names} -> "
                              f"{enc.output_names}, decoder {dec.input_names} -> {dec.output_names} "
                              f"({'with' if dec.states else 'without'} states); the decoder must take "
                              "input_ids, causal_mask and every encoder output, and keep a KV cache")

    def _context_length(self) -> int | None:
        dim = self.decoder.inputs["causal_mask"].shape[-1]
        if isinstance(dim, int):
            return dim
        return self.decoder.function.dim_ranges.get(dim, [0, None])[1]

    @property
    def tokenizer(self):
        """The package's tokenizer (a `tokenizers.Tokenizer`), made on first use."""
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_str(self._tokenizer_json)
        return self._tokenizer

    def samples(self, audio, sample_rate: int | None = None) -> np.ndarray:
        """Mono float32 samples at the model's rate from a WAV path or an array (at
        `sample_rate`, default the model's 16 kHz)."""
        from .audio import read_wav, resample

        if isinstance(audio, (str, os.PathLike)):
            if sample_rate is not None:
                raise InputError("sample_rate= is for arrays; a WAV file says its own rate")
            audio, sample_rate = read_wav(audio)
        x = np.asarray(audio)
        if x.ndim != 1 or not np.issubdtype(x.dtype, np.floating):
            raise InputError(f"audio must be a WAV path or 1-D float samples, got {x.dtype}{list(x.shape)}")
        if x.size == 0:
            raise InputError("the audio is empty")
        rate = self.sample_rate if sample_rate is None else sample_rate
        return resample(x, rate, self.sample_rate).astype(np.float32, copy=False)

    def transcribe(self, audio, sample_rate: int | None = None) -> Transcription:
        """The text of `audio` (a WAV path, or 1-D float samples at `sample_rate`, default
        16 kHz), with its tokens and timings."""
        from .audio import log_mel_spectrogram

        stats = Stats()
        t0 = time.perf_counter()
        x = self.samples(audio, sample_rate)
        stats.audio_seconds = x.size / self.sample_rate
        stats.features_seconds += time.perf_counter() - t0
        texts, tokens = [], []
        for window in split_windows(x, self.sample_rate):
            stats.windows += 1
            t0 = time.perf_counter()
            features = log_mel_spectrogram(window, self.n_mels)[None]
            t1 = time.perf_counter()
            cross_kv = self.encoder.predict({"input_features": features})
            t2 = time.perf_counter()
            ids = self._decode(cross_kv, stats)
            stats.features_seconds += t1 - t0
            stats.encoder_seconds += t2 - t1
            stats.decode_seconds += time.perf_counter() - t2
            tokens.append(ids)
            texts.append(self.tokenizer.decode(ids, skip_special_tokens=True).strip())
        stats.tokens = sum(len(t) for t in tokens)
        stats.peak_rss_mib = peak_rss_mib()
        return Transcription(" ".join(t for t in texts if t), tokens, stats)

    def calibration_samples(self, audios) -> dict[str, list[dict]]:
        """Calibration data for compressing this package (`pm.compress(package, config,
        calibration=...)`) from speech (WAV paths or 16 kHz sample arrays): each window's encoder
        input, and for the decoder the prompt and the tokens this package transcribes
        (end-of-text included) as one prefill over the window's cross-attention keys/values:
        the activations of decoding them one by one, in one call."""
        from .audio import log_mel_spectrogram

        encoder, decoder = [], []
        for audio in audios:
            for window in split_windows(self.samples(audio), self.sample_rate):
                features = log_mel_spectrogram(window, self.n_mels)[None]
                cross_kv = {k: np.array(v) for k, v in self.encoder.predict({"input_features": features}).items()}
                ids = self.prompt + self._decode(cross_kv, Stats()) + [self.eot]
                if self.context_length is not None:
                    ids = ids[:self.context_length]
                encoder.append({"input_features": features})
                decoder.append({"input_ids": np.array([ids], np.int64), "causal_mask": causal_mask(0, len(ids)),
                                **cross_kv})
        return {"encoder": encoder, "decoder": decoder}

    def _decode(self, cross_kv: dict, stats: Stats) -> list[int]:
        """Greedy text tokens for one window's cross-attention keys/values."""
        self._state.reset()
        limit = self.max_new_tokens
        if self.context_length is not None:
            limit = min(limit, self.context_length - len(self.prompt) + 1)
        new, out = list(self.prompt), []
        for step in range(limit):
            past = len(self.prompt) + len(out) - len(new)
            mask = causal_mask(past, len(new))
            logits = self.decoder.predict({"input_ids": np.array([new], np.int64), "causal_mask": mask, **cross_kv},
                                          state=self._state)["logits"][0, -1].copy()
            stats.decoder_calls += 1
            logits[self.suppress] = -np.inf
            if step == 0:
                logits[self.suppress_at_start] = -np.inf
            token = int(np.argmax(logits))
            if token == self.eot:
                break
            out.append(token)
            new = [token]
        return out


def split_windows(samples: np.ndarray, sample_rate: int = 16_000) -> list[np.ndarray]:
    """Consecutive pieces of at most 30 s covering `samples`; every piece but the last ends at the
    quietest 0.1 s (lowest energy) of its last 5 s."""
    size, search = WINDOW_SECONDS * sample_rate, _SEARCH_SECONDS * sample_rate
    width = max(1, int(_QUIET_SECONDS * sample_rate))
    out, start = [], 0
    while samples.size - start > size:
        lo = start + size - search
        energy = np.concatenate([[0.0], np.cumsum(samples[lo : start + size].astype(np.float64) ** 2)])
        quietest = int(np.argmin(energy[width:] - energy[:-width]))  # the 0.1 s from lo + quietest
        cut = lo + quietest + width // 2
        out.append(samples[start:cut])
        start = cut
    out.append(samples[start:])
    return out


def transcribe(model: Model | str | os.PathLike, audio, sample_rate: int | None = None) -> Transcription:
    """The text of `audio` (a WAV path, or 1-D float samples at `sample_rate`, default 16 kHz)
    with a Whisper package (see the module docs); `.text`, `.tokens`, `.stats`."""
    return Transcriber(model).transcribe(audio, sample_rate)
