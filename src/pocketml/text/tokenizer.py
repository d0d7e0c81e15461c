"""Byte-level BPE tokenizer described by a GGUF file's metadata, run by HuggingFace `tokenizers`.

Encoding is `tokenizers`' BPE over the file's vocabulary and merges, with the split llama.cpp
applies for the file's pre-tokenizer type (`tokenizer.ggml.pre`). Decoding maps every token to
its bytes and decodes them as UTF-8 in one place, so `decode` and the streaming decoder agree to
the character, even on invalid byte sequences.
"""

from __future__ import annotations

import codecs
import ctypes
import json
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path

import numpy as np

from pocketml.errors import ConfigError, InputError, PackageError

# version 2: "tokenizer" holds the `tokenizers` description as a JSON string, handed to it
# unparsed (parsing it in Python first left ~9 MiB of freed small objects in the process);
# version 1 held it as a nested object and still loads
_FORMAT, _VERSION, _READS = "pocketml.tokenizer", 2, (1, 2)

# GGUF token types (llama.cpp's llama_token_type)
_CONTROL, _USER_DEFINED = 3, 4

# GPT-2's pre-tokenizer regex, as `tokenizers.pre_tokenizers.ByteLevel(use_regex=True)` applies it.
_GPT2 = "gpt2"
# Each number character alone (\p{N}), then GPT-2's regex: what llama.cpp runs for these types.
_DIGITS_THEN_GPT2 = "digits+gpt2"
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# tokenizer.ggml.pre -> split; only types whose llama.cpp regexes these reproduce exactly.
PRE_TOKENIZERS = {
    "gpt-2": _GPT2,
    "smollm": _DIGITS_THEN_GPT2,
    "starcoder": _DIGITS_THEN_GPT2,
    "refact": _DIGITS_THEN_GPT2,
    "command-r": _DIGITS_THEN_GPT2,
    "llama-bpe": _LLAMA3_SPLIT,
    "qwen2": _QWEN2_SPLIT,
}


def byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> character table: printable bytes stand for themselves, others from U+0100 on."""
    printable = {*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    out, shifted = {}, 0
    for b in range(256):
        if b in printable:
            out[b] = chr(b)
        else:
            out[b] = chr(0x100 + shifted)
            shifted += 1
    return out


def _return_freed_memory() -> None:
    """Hands the C heap's free pages back to the system (glibc's malloc_trim). Building a BPE
    tokenizer from its JSON frees ~21 MiB of parse buffers (SmolLM2's 48,900 merges) that glibc
    keeps in the process otherwise: a 4-bit SmolLM2 session's peak RSS 177 -> 156 MiB. A no-op
    where the C library has no malloc_trim (macOS, musl, Windows)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)


class Tokenizer:
    """Text <-> token ids for a byte-level BPE model, with its special ids and chat template.

    Build one with `Tokenizer.from_gguf(path)`; carry it as a string with `to_json()` / `from_json()`.
    `backend` is the `tokenizers.Tokenizer` doing the encoding.
    """

    def __init__(self, backend, *, bos_id=None, eos_id=None, pad_id=None, unk_id=None, chat_template=None):
        from tokenizers import decoders, models

        if not isinstance(backend.model, models.BPE) or not isinstance(backend.decoder, decoders.ByteLevel):
            raise ConfigError("Tokenizer needs a byte-level BPE backend (models.BPE with a ByteLevel decoder)")
        self.backend = backend
        self.vocab_size = backend.get_vocab_size(with_added_tokens=True)
        named = {"bos_id": bos_id, "eos_id": eos_id, "pad_id": pad_id, "unk_id": unk_id}
        for name, value in named.items():
            if value is not None and not 0 <= value < self.vocab_size:
                raise ConfigError(f"{name} {value} is outside the vocabulary (size {self.vocab_size})")
        self.bos_id, self.eos_id, self.pad_id, self.unk_id = bos_id, eos_id, pad_id, unk_id
        self.chat_template = chat_template
        added = backend.get_added_tokens_decoder()
        self.special_ids = frozenset(i for i, token in added.items() if token.special)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_gguf(cls, path) -> Tokenizer:
        """The tokenizer described by the metadata of the GGUF file at `path`."""
        from ..io.gguf import GGUFFile

        try:
            metadata = GGUFFile(path).metadata
        except PackageError as e:
            raise ConfigError(f"cannot read a tokenizer from {path}: {e}") from e
        return cls.from_gguf_metadata(metadata, source=Path(path).name)

    @classmethod
    def from_gguf_metadata(cls, metadata: Mapping, source: str = "the GGUF metadata") -> Tokenizer:
        """The tokenizer described by GGUF metadata (keys `tokenizer.*`, as llama.cpp writes them)."""
        from tokenizers import AddedToken
        from tokenizers import Tokenizer as Backend
        from tokenizers import decoders, models

        def field(key, default=None, required=False):
            if required and key not in metadata:
                raise ConfigError(f"{source} has no {key!r}: it does not describe a tokenizer")
            return metadata.get(key, default)

        kind = field("tokenizer.ggml.model", required=True)
        if kind != "gpt2":
            raise ConfigError(
                f"{source} has a {kind!r} tokenizer; only byte-level BPE ('gpt2', as in GPT-2, Llama 3, Qwen2, "
                "SmolLM) is supported"
            )
        pre = field("tokenizer.ggml.pre", required=True)
        if pre not in PRE_TOKENIZERS:
            raise ConfigError(
                f"{source} asks for pre-tokenizer {pre!r}, which is not supported; supported: "
                f"{', '.join(sorted(PRE_TOKENIZERS))}"
            )
        tokens = list(field("tokenizer.ggml.tokens", required=True))
        merges = [tuple(m.split(" ", 1)) for m in field("tokenizer.ggml.merges", required=True)]
        types = list(field("tokenizer.ggml.token_type", [1] * len(tokens)))
        if len(types) != len(tokens):
            raise ConfigError(f"{source}: {len(types)} token types for {len(tokens)} tokens")

        # A token stored with characters outside the byte alphabet is respelled in it (as transformers
        # does), so BPE, which only ever sees byte-alphabet text, can reach it.
        alphabet = byte_alphabet()
        spelled = set(alphabet.values())
        vocab = {
            t if set(t) <= spelled else "".join(alphabet[b] for b in t.encode("utf-8")): i for i, t in enumerate(tokens)
        }
        if len(vocab) != len(tokens):
            raise ConfigError(f"{source}: the vocabulary has duplicate tokens")
        backend = Backend(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
        backend.pre_tokenizer = _pre_tokenizer(PRE_TOKENIZERS[pre])
        backend.decoder = decoders.ByteLevel()

        # Control tokens (<|im_start|>, ...) stay whole and are special; user-defined ones stay whole.
        # A "control" token outside the byte alphabet is a llama.cpp mislabel, left as it is.
        backend.add_special_tokens(
            [
                AddedToken(t, special=True, normalized=False)
                for t, kind in zip(tokens, types)
                if kind == _CONTROL and set(t) <= spelled
            ]
        )
        backend.add_tokens(
            [
                AddedToken(t, special=False, normalized=False)
                for t, kind in zip(tokens, types)
                if kind == _USER_DEFINED and t in vocab
            ]
        )
        if backend.get_vocab_size(with_added_tokens=True) != len(tokens):
            raise ConfigError(f"{source}: its special tokens are not all in the vocabulary")

        ids = {name: field(f"tokenizer.ggml.{name}_token_id") for name in ("bos", "eos", "padding", "unknown")}
        for name, value in ids.items():
            if value is not None and not 0 <= value < len(tokens):
                raise ConfigError(f"{source}: tokenizer.ggml.{name}_token_id {value} is outside the vocabulary")
        added = {}  # BOS / EOS added around every encoding, as the file asks
        for name in ("bos", "eos"):
            if field(f"tokenizer.ggml.add_{name}_token", False):
                if ids[name] is None:
                    raise ConfigError(f"{source} asks to add a {name.upper()} token but names none")
                added[name] = (tokens[ids[name]], ids[name])
        backend.post_processor = _post_processor(added.get("bos"), added.get("eos"))
        return cls(
            backend,
            bos_id=ids["bos"],
            eos_id=ids["eos"],
            pad_id=ids["padding"],
            unk_id=ids["unknown"],
            chat_template=field("tokenizer.chat_template"),
        )

    def to_json(self) -> str:
        """Everything this tokenizer needs, as one JSON string (for a package's metadata)."""
        return json.dumps(
            {
                "format": _FORMAT,
                "version": _VERSION,
                "bos_id": self.bos_id,
                "eos_id": self.eos_id,
                "pad_id": self.pad_id,
                "unk_id": self.unk_id,
                "chat_template": self.chat_template,
                "tokenizer": self.backend.to_str(),
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        """The tokenizer `to_json` wrote."""
        from tokenizers import Tokenizer as Backend

        try:
            data = json.loads(text)
        except (TypeError, ValueError) as e:
            raise PackageError(f"tokenizer JSON does not parse: {e}") from e
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise PackageError(f"not a pocketml tokenizer (expected format {_FORMAT!r})")
        if data.get("version") not in _READS:
            raise PackageError(
                f"tokenizer format version {data.get('version')!r} is not supported (this pocketml reads "
                f"{', '.join(map(str, _READS))}); upgrade pocketml"
            )
        try:
            spec = data.pop("tokenizer")
            spec = spec if data["version"] >= 2 and isinstance(spec, str) else json.dumps(spec)
        except (KeyError, TypeError, ValueError) as e:
            raise PackageError(f"tokenizer JSON has no valid 'tokenizer': {e}") from e
        data = {k: data.get(k) for k in ("bos_id", "eos_id", "pad_id", "unk_id", "chat_template")}
        try:
            backend = Backend.from_str(spec)
        except Exception as e:  # tokenizers raises plain Exception on a malformed description
            raise PackageError(f"tokenizer JSON has an invalid tokenizer: {e}") from e
        del spec
        _return_freed_memory()
        return cls(
            backend,
            bos_id=data.get("bos_id"),
            eos_id=data.get("eos_id"),
            pad_id=data.get("pad_id"),
            unk_id=data.get("unk_id"),
            chat_template=data.get("chat_template"),
        )

    # -- text <-> ids ---------------------------------------------------------------------------

    def encode(self, text: str, add_special: bool = True) -> list[int]:
        """Token ids of `text`. Special tokens written in the text (`<|im_start|>`) are recognised;
        `add_special` adds the BOS/EOS the model asks for (none for SmolLM2)."""
        if not isinstance(text, str):
            raise InputError(f"encode takes a str, got {type(text).__name__}")
        return self.backend.encode(text, add_special_tokens=add_special).ids

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        """Text of `ids`; byte sequences that are not UTF-8 become U+FFFD."""
        return self._bytes(self._check_ids(ids), skip_special).decode("utf-8", errors="replace")

    def decode_stream(self, skip_special: bool = False) -> StreamDecoder:
        """An incremental decoder: feed it generated ids one at a time, get text as it completes."""
        return StreamDecoder(self, skip_special)

    def token(self, token_id: int) -> str:
        """The text of one token (a special token's name, e.g. '<|im_end|>')."""
        return self.decode([token_id])

    def apply_chat_template(self, messages, add_generation_prompt: bool = True, **variables) -> str:
        """`messages` ([{"role": ..., "content": ...}, ...]) rendered with the model's chat template."""
        return self._chat.render(messages, add_generation_prompt=add_generation_prompt, **variables)

    # -- helpers --------------------------------------------------------------------------------

    @cached_property
    def _chat(self):
        from pocketml.text.chat import ChatTemplate

        if self.chat_template is None:
            raise ConfigError(
                "this tokenizer has no chat template (its GGUF has no tokenizer.chat_template); render the "
                "prompt with pocketml.text.ChatTemplate(source, ...) or write it out and call encode"
            )
        named = {"bos_token": self.bos_id, "eos_token": self.eos_id, "unk_token": self.unk_id, "pad_token": self.pad_id}
        return ChatTemplate(self.chat_template, {k: self.token(i) for k, i in named.items() if i is not None})

    @cached_property
    def _token_bytes(self) -> list[bytes]:
        """Each id's bytes, as tokenizers' ByteLevel decoder gives them: a token spelled in the byte
        alphabet maps character by character, any other token is its own UTF-8."""
        to_byte = {ord(c): b for b, c in byte_alphabet().items()}
        to_byte.update({b: 0xFFFF for b in range(256) if b not in to_byte})  # not in the alphabet: fail below
        out: list[bytes | None] = [None] * self.vocab_size
        for token, i in self.backend.get_vocab(with_added_tokens=True).items():
            try:
                out[i] = token.translate(to_byte).encode("latin-1")
            except UnicodeEncodeError:
                out[i] = token.encode("utf-8")
        if None in out:
            raise ConfigError(f"token id {out.index(None)} has no token: the vocabulary has holes")
        return out

    def _check_ids(self, ids) -> list[int]:
        arr = ids if isinstance(ids, np.ndarray) else np.asarray(list(ids))
        if arr.size == 0:
            return []
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise InputError(f"token ids must be a 1-D sequence of ints, got {arr.dtype} with shape {arr.shape}")
        outside = (arr < 0) | (arr >= self.vocab_size)
        if outside.any():
            raise InputError(f"token id {arr[outside][0]} is outside the vocabulary (0..{self.vocab_size - 1})")
        return arr.tolist()

    def _bytes(self, ids: list[int], skip_special: bool) -> bytes:
        table = self._token_bytes
        if skip_special:
            return b"".join(table[i] for i in ids if i not in self.special_ids)
        return b"".join(table[i] for i in ids)


def _pre_tokenizer(split: str):
    from tokenizers import Regex, pre_tokenizers

    gpt2 = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if split == _GPT2:
        return gpt2
    if split == _DIGITS_THEN_GPT2:
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), gpt2])
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(split), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def _post_processor(bos: tuple[str, int] | None, eos: tuple[str, int] | None):
    """Adds `bos` / `eos` ((token, id), or None) around each encoded sequence."""
    from tokenizers import processors

    before, after = [bos[0]] if bos else [], [eos[0]] if eos else []
    single = [*before, "$A", *after]
    pair = [*single, *before, "$B:1", *after]
    specials = sorted({t for t in (bos, eos) if t is not None})
    return processors.TemplateProcessing(single=" ".join(single), pair=" ".join(pair), special_tokens=specials)


class StreamDecoder:
    """Turns ids fed one at a time into text pieces, holding back a character whose UTF-8 bytes are
    split across tokens until it is complete. The pieces, then `flush()`, join to `decode(ids)`.

        stream = tokenizer.decode_stream()
        for token_id in generated:
            print(stream.feed(token_id), end="", flush=True)
        print(stream.flush())
    """

    def __init__(self, tokenizer: Tokenizer, skip_special: bool = False):
        self._tokenizer = tokenizer
        self._skip_special = skip_special
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        """The text that `token_id` completes ("" while a character is still incomplete)."""
        ids = self._tokenizer._check_ids([token_id])
        return self._utf8.decode(self._tokenizer._bytes(ids, self._skip_special))

    def flush(self) -> str:
        """The text still held back (U+FFFD for an incomplete character); the stream starts afresh."""
        out = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return out
