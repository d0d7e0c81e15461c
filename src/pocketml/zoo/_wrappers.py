"""Thin torch wrappers giving transformers models plain tensor-in, tensor-out forwards.

torch.export and converters want positional tensors and tensor outputs, not ModelOutput objects,
keyword plumbing or caches. Kept apart from the model modules so those import without torch.
"""

from __future__ import annotations

import torch
from torch import nn


class MeanPooledEmbedder(nn.Module):
    """Sentence embedding as sentence-transformers computes it: mean over real tokens, then L2 norm."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        mean = summed / mask.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(mean, p=2.0, dim=1)


class WhisperEncoderStates(nn.Module):
    """Whisper encoder: log-mel features (B, 80, 3000) -> hidden states (B, 1500, d_model)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_features=input_features).last_hidden_state


class WhisperDecoderLogits(nn.Module):
    """One full (uncached) Whisper decoder pass: tokens + encoder states -> next-token logits."""

    def __init__(self, decoder: nn.Module, proj_out: nn.Module):
        super().__init__()
        self.decoder = decoder
        self.proj_out = proj_out

    def forward(self, input_ids: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        hidden = self.decoder(
            input_ids=input_ids, encoder_hidden_states=encoder_hidden_states, use_cache=False
        ).last_hidden_state
        return self.proj_out(hidden)
