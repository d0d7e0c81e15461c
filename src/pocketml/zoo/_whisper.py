"""Whisper with cached attention, for on-device transcription (torch modules over transformers').

Two modules share one `WhisperForConditionalGeneration`'s weights, under the same parameter names
(`encoder.*`, `decoder.*`, `proj_out.*`), so their converted programs merge into one package
without duplicating a weight:

- `WhisperCrossKV`: log-mel -> every decoder layer's cross-attention keys and values. They depend
  on the audio only, so they are computed once per 30 s window, not once per token.
- `CachedWhisperDecoder`: new tokens + those keys/values -> logits, with the self-attention
  keys/values of earlier tokens in buffers (states once converted), as `_llama.CachedLlama`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, T, heads * D) -> (B, heads, T, D)."""
    b, t, c = x.shape
    return x.view(b, t, heads, c // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, T, D) -> (B, T, heads * D)."""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


class WhisperCrossKV(nn.Module):
    """forward(input_features (1, 80, 3000)) -> (k_0, v_0, ..., k_{L-1}, v_{L-1}), each
    (1, heads, 1500, head_dim): the encoder, then each decoder layer's cross-attention k/v
    projections of its output (Whisper's key projection has no bias)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, heads: int):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.heads = heads

    def forward(self, input_features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        states = self.encoder(input_features=input_features).last_hidden_state
        out = []
        for layer in self.decoder.layers:
            attn = layer.encoder_attn
            out += [_split_heads(attn.k_proj(states), self.heads), _split_heads(attn.v_proj(states), self.heads)]
        return tuple(out)


class CachedWhisperDecoder(nn.Module):
    """Whisper's decoder with its self-attention keys and values cached in buffers.

    forward(input_ids (1, T) int64, causal_mask (1, 1, T, S) float, k_0, v_0, ..., k_{L-1},
    v_{L-1} (from `WhisperCrossKV`)) -> logits (1, T, vocab). S = tokens in the cache after this
    call, so the call's tokens sit at positions S-T .. S-1; the mask (0 / -inf, added to the
    scores) carries the position in its shape. The first call passes the prompt (S = T), each
    later one a single token.
    """

    def __init__(self, decoder: nn.Module, proj_out: nn.Module, heads: int, context_length: int):
        super().__init__()
        self.decoder = decoder
        self.proj_out = proj_out
        self.heads = heads
        self.context_length = context_length
        head_dim = decoder.embed_tokens.weight.shape[1] // heads
        # one slot more than the context: torch.export would otherwise specialise on a write
        # that covers the whole buffer (S == T == length); the last slot is never used
        shape = (1, heads, context_length + 1, head_dim)
        for i in range(len(decoder.layers)):
            self.register_buffer(f"k_cache_{i}", torch.zeros(shape))
            self.register_buffer(f"v_cache_{i}", torch.zeros(shape))

    def forward(self, input_ids: torch.Tensor, causal_mask: torch.Tensor, *cross_kv: torch.Tensor) -> torch.Tensor:
        dec, heads = self.decoder, self.heads
        t, s = input_ids.shape[1], causal_mask.shape[-1]
        x = dec.embed_tokens(input_ids) * dec.embed_scale + dec.embed_positions.weight[s - t : s]
        for i, layer in enumerate(dec.layers):
            k_cache, v_cache = getattr(self, f"k_cache_{i}"), getattr(self, f"v_cache_{i}")
            attn = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            k_cache[:, :, s - t : s] = _split_heads(attn.k_proj(h), heads)
            v_cache[:, :, s - t : s] = _split_heads(attn.v_proj(h), heads)
            out = F.scaled_dot_product_attention(
                _split_heads(attn.q_proj(h), heads), k_cache[:, :, :s], v_cache[:, :, :s], attn_mask=causal_mask
            )
            x = x + attn.out_proj(_merge_heads(out))
            cross = layer.encoder_attn
            h = layer.encoder_attn_layer_norm(x)
            out = F.scaled_dot_product_attention(
                _split_heads(cross.q_proj(h), heads), cross_kv[2 * i], cross_kv[2 * i + 1]
            )
            x = x + cross.out_proj(_merge_heads(out))
            x = x + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(x))))
        return self.proj_out(dec.layer_norm(x))
