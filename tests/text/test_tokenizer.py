"""Tokenizer from SmolLM2's GGUF: encodings against transformers' GGUF tokenizer, round trips,
streaming, JSON, and errors."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import text_refs as refs

from pocketml.errors import ConfigError, InputError, PackageError
from pocketml.text import StreamDecoder, Tokenizer
from pocketml.text.tokenizer import PRE_TOKENIZERS, byte_alphabet


def llama_cpp_reference(hf, texts):
    """transformers' encodings with llama.cpp's "smollm" split applied first: every number character
    (\\p{N}) alone. transformers ignores `tokenizer.ggml.pre` for this file and runs GPT-2's split
    only, which differs on whitespace or non-ASCII numbers next to digits ("the  50", "½")."""
    import regex

    pieces = [[p for p in regex.split(r"(\p{N})", t) if p] for t in texts]
    flat = hf.backend_tokenizer.encode_batch([p for ps in pieces for p in ps], add_special_tokens=False)
    out, at = [], 0
    for ps in pieces:
        out.append([i for e in flat[at : at + len(ps)] for i in e.ids])
        at += len(ps)
    return out


# -- against transformers ---------------------------------------------------------------------------


@pytest.mark.slow  # transformers takes ~10 s to read the GGUF's tokenizer
def test_encodings_match_transformers_with_llama_cpp_split():
    hf, tok = refs.hf_tokenizer(), refs.tokenizer()
    texts = refs.corpus() + refs.wikipedia_paragraphs()
    expected = llama_cpp_reference(hf, texts)
    mismatched = [t for t, want in zip(texts, expected) if tok.encode(t) != want]
    assert not mismatched, f"{len(mismatched)} of {len(texts)} texts differ, e.g. {mismatched[0][:200]!r}"
    # and transformers as it is, wherever the split does not matter (nearly everywhere)
    plain = hf.backend_tokenizer.encode_batch(list(refs.corpus()), add_special_tokens=False)
    same = sum(e.ids == want for e, want in zip(plain, expected))
    assert same >= 0.99 * len(refs.corpus())


@pytest.mark.slow
def test_split_on_numbers_is_llama_cpps():
    tok = refs.tokenizer()
    # digits pre-split: "  " stays one token before a number, "½" is a piece of its own
    assert [tok.decode([i]) for i in tok.encode("in the  50 metres")] == ["in", " the", "  ", "5", "0", " metres"]
    assert [tok.decode([i]) for i in tok.encode("notably ½,")] == ["not", "ably", " ", "½", ","]


@pytest.mark.slow
def test_decode_matches_transformers():
    hf, tok = refs.hf_tokenizer(), refs.tokenizer()
    for text in refs.corpus():
        ids = tok.encode(text)
        assert tok.decode(ids) == hf.decode(ids) == text
        assert tok.decode(ids, skip_special=True) == hf.decode(ids, skip_special_tokens=True)
    rng = np.random.default_rng(0)  # arbitrary ids: invalid UTF-8 and special tokens included
    for _ in range(200):
        ids = rng.integers(0, tok.vocab_size, rng.integers(1, 12)).tolist() + [3, 0, 16]
        rng.shuffle(ids)
        assert tok.decode(ids) == hf.decode(ids)
        assert tok.decode(ids, skip_special=True) == hf.decode(ids, skip_special_tokens=True)


@pytest.mark.slow
def test_special_ids_match_transformers():
    hf, tok = refs.hf_tokenizer(), refs.tokenizer()
    assert tok.vocab_size == len(hf) == 49152
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.unk_id) == (
        hf.bos_token_id, hf.eos_token_id, hf.pad_token_id, hf.unk_token_id)
    special = {i for i, t in hf.added_tokens_decoder.items() if t.special}
    assert tok.special_ids == special == set(range(17))


@pytest.mark.slow
@pytest.mark.parametrize("pre", ["gpt-2", "llama-bpe", "qwen2"])
def test_other_pre_tokenizers_match_transformers(pre):
    """Each regex split on SmolLM2's vocabulary, against transformers' builder given the same metadata."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import (GGUF_TOKENIZER_MAPPING,
                                                                       convert_gguf_tokenizer)

    metadata = dict(refs.metadata(), **{"tokenizer.ggml.pre": pre})
    names = GGUF_TOKENIZER_MAPPING["tokenizer"]
    hf_dict = {name: metadata[f"tokenizer.{key}"] for key, name in names.items() if f"tokenizer.{key}" in metadata}
    hf, _ = convert_gguf_tokenizer("llama", hf_dict)
    tok = Tokenizer.from_gguf_metadata(metadata)
    texts = refs.corpus() + refs.wikipedia_paragraphs()[:2000]
    want = hf.encode_batch(list(texts), add_special_tokens=False)
    assert [tok.encode(t) for t in texts] == [e.ids for e in want]


def test_byte_alphabet_is_gpt2s():
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    assert byte_alphabet() == bytes_to_unicode()


# -- our own --------------------------------------------------------------------------------------


def test_round_trip_on_real_text():
    tok = refs.tokenizer()
    for text in refs.corpus():
        assert tok.decode(tok.encode(text)) == text
    text = "\n\n".join(refs.corpus())  # one long text, as an int32 array of ids
    assert tok.decode(np.array(tok.encode(text), dtype=np.int32)) == text


def test_special_tokens_in_text_stay_whole():
    tok = refs.tokenizer()
    ids = tok.encode("<|im_start|>user\nHi<|im_end|>\n")
    assert ids[0] == 1 and 2 in ids and tok.decode(ids) == "<|im_start|>user\nHi<|im_end|>\n"
    assert tok.decode(ids, skip_special=True) == "user\nHi\n"
    assert tok.token(tok.eos_id) == "<|im_end|>"


def test_add_special_follows_the_metadata():
    tok = refs.tokenizer()
    assert tok.encode("Hi") == tok.encode("Hi", add_special=False)  # SmolLM2 adds no BOS
    with_bos = Tokenizer.from_gguf_metadata(dict(refs.metadata(), **{"tokenizer.ggml.add_bos_token": True}))
    assert with_bos.encode("Hi") == [with_bos.bos_id, *tok.encode("Hi")]
    assert with_bos.encode("Hi", add_special=False) == tok.encode("Hi")


def test_stream_decoder_joins_to_decode():
    tok = refs.tokenizer()
    for text in refs.corpus()[-len(refs.EDGE_TEXTS):] + refs.corpus()[:50]:
        ids = tok.encode(text)
        stream = tok.decode_stream()
        pieces = [stream.feed(i) for i in ids]
        assert "".join(pieces) + stream.flush() == text
        assert not any("\ufffd" in p for p in pieces)  # never half a character
    rng = np.random.default_rng(1)
    for _ in range(100):  # arbitrary ids, invalid UTF-8 included
        ids = rng.integers(0, tok.vocab_size, rng.integers(1, 20))
        for skip in (False, True):
            stream = StreamDecoder(tok, skip_special=skip)
            assert "".join(stream.feed(i) for i in ids) + stream.flush() == tok.decode(ids, skip_special=skip)


def test_stream_decoder_holds_back_a_split_character():
    tok = refs.tokenizer()
    ids = tok.encode("😀")
    assert len(ids) == 3  # its 4 UTF-8 bytes are cut across three tokens
    stream = tok.decode_stream()
    assert [stream.feed(i) for i in ids] == ["", "", "😀"]
    assert stream.feed(ids[0]) == "" and stream.flush() == "\ufffd"  # an unfinished character, at the end
    assert stream.feed(tok.encode("a")[0]) == "a"  # flush starts afresh


def test_json_round_trip():
    tok = refs.tokenizer()
    text = tok.to_json()
    back = Tokenizer.from_json(text)
    assert json.loads(text)["format"] == "pocketml.tokenizer"
    assert (back.vocab_size, back.bos_id, back.eos_id, back.pad_id, back.unk_id, back.special_ids) == (
        tok.vocab_size, tok.bos_id, tok.eos_id, tok.pad_id, tok.unk_id, tok.special_ids)
    assert back.chat_template == tok.chat_template
    for t in refs.corpus()[:100] + refs.EDGE_TEXTS:
        assert back.encode(t) == tok.encode(t)


def test_json_of_version_1_still_loads():
    """Packages written before version 2 hold the `tokenizers` description as a nested object."""
    tok = refs.tokenizer()
    data = json.loads(tok.to_json())
    assert data["version"] == 2 and isinstance(data["tokenizer"], str)
    data.update(version=1, tokenizer=json.loads(data["tokenizer"]))
    back = Tokenizer.from_json(json.dumps(data))
    for t in refs.corpus()[:20] + refs.EDGE_TEXTS:
        assert back.encode(t) == tok.encode(t)


def test_runs_without_torch(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(refs.tokenizer().to_json(), encoding="utf-8")
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "transformers"):
                    raise ImportError(name + " is blocked in this test")
        sys.meta_path.insert(0, Block())
        import numpy as np
        from pocketml.text import Sampler, Tokenizer
        assert "tokenizers" not in sys.modules and "jinja2" not in sys.modules  # imported on first use
        tok = Tokenizer.from_json(open({str(path)!r}, encoding="utf-8").read())
        prompt = tok.apply_chat_template([{{"role": "user", "content": "Hi"}}])
        ids = tok.encode(prompt)
        logits = np.zeros(tok.vocab_size, np.float16); logits[ids[-1]] = 1
        assert Sampler().sample(logits) == ids[-1]
        assert tok.decode(ids) == prompt
        assert not any(k.split(".")[0] in ("torch", "transformers") for k in sys.modules)
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# -- errors ---------------------------------------------------------------------------------------


def test_bad_inputs():
    tok = refs.tokenizer()
    with pytest.raises(InputError, match="str"):
        tok.encode(b"bytes")
    with pytest.raises(InputError, match="outside the vocabulary"):
        tok.decode([5, tok.vocab_size])
    with pytest.raises(InputError, match="outside the vocabulary"):
        tok.decode_stream().feed(-1)
    with pytest.raises(InputError, match="ints"):
        tok.decode([1.5])
    with pytest.raises(InputError, match="1-D"):
        tok.decode(np.zeros((2, 2), np.int64))
    assert tok.decode([]) == ""


@pytest.mark.parametrize(
    "change, message",
    [
        ({"tokenizer.ggml.model": "llama"}, "only byte-level BPE"),
        ({"tokenizer.ggml.pre": "falcon"}, "pre-tokenizer 'falcon', which is not supported"),
        ({"tokenizer.ggml.pre": None}, "no 'tokenizer.ggml.pre'"),
        ({"tokenizer.ggml.merges": None}, "no 'tokenizer.ggml.merges'"),
        ({"tokenizer.ggml.eos_token_id": 10**6}, "outside the vocabulary"),
        ({"tokenizer.ggml.add_bos_token": True, "tokenizer.ggml.bos_token_id": None}, "names none"),
    ],
)
def test_unsupported_metadata(change, message):
    metadata = {k: v for k, v in {**refs.metadata(), **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        Tokenizer.from_gguf_metadata(metadata)


def test_not_a_gguf(tmp_path):
    path = tmp_path / "x.gguf"
    path.write_bytes(b"not a gguf file at all")
    with pytest.raises(ConfigError, match="not a GGUF file"):
        Tokenizer.from_gguf(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", "does not parse"),
        ('{"format": "other"}', "not a pocketml tokenizer"),
        ('{"format": "pocketml.tokenizer", "version": 99}', "version 99"),
        ('{"format": "pocketml.tokenizer", "version": 1, "tokenizer": {"model": 1}}', "invalid tokenizer"),
        ('{"format": "pocketml.tokenizer", "version": 2, "tokenizer": "{\\"model\\": 1}"}', "invalid tokenizer"),
        ('{"format": "pocketml.tokenizer", "version": 2, "tokenizer": "{"}', "invalid tokenizer"),
    ],
)
def test_bad_json(text, message):
    with pytest.raises(PackageError, match=message):
        Tokenizer.from_json(text)


def test_supported_pre_tokenizers_are_listed_in_the_error():
    metadata = dict(refs.metadata(), **{"tokenizer.ggml.pre": "unknown"})
    with pytest.raises(ConfigError) as e:
        Tokenizer.from_gguf_metadata(metadata)
    assert all(name in str(e.value) for name in PRE_TOKENIZERS)
