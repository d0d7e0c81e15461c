"""End-to-end conversion of creation ops (and the model patterns built from them), vs torch."""
import torch
import torch.nn as nn

from helpers import Fn, check_module, op_types
from pocketml.frontend.torch.convert import export, to_program


x4 = torch.randn(2, 3, 4, 5)

CREATORS = [
    lambda x: torch.arange(5),
    lambda x: torch.arange(1, 10, 2),
    lambda x: torch.arange(1, 5),
    lambda x: torch.arange(0, 1, 0.25),
    lambda x: torch.arange(5, dtype=torch.float32),
    lambda x: torch.arange(4, -4, -3),
    lambda x: torch.arange(x.shape[-1]),
    lambda x: torch.full((2, 3), 2.5),
    lambda x: torch.full((3,), 7),
    lambda x: torch.full((2, 2), True),
    lambda x: torch.full((2, 2), float("-inf")),
    lambda x: torch.zeros(3),
    lambda x: torch.ones(2, 3, dtype=torch.int64),
    lambda x: torch.zeros((2,), dtype=torch.bool),
    lambda x: torch.empty(3).fill_(2.0),
    lambda x: torch.scalar_tensor(1.5),
    lambda x: torch.tensor(3),
    lambda x: x.new_zeros(3),
    lambda x: x.new_ones((3, 2)),
    lambda x: x.new_full((2,), -1.0),
    lambda x: x.new_empty((2,)).zero_(),
]


def test_creation_from_shapes(tmp_path):
    m = check_module(Fn(*CREATORS), (x4,), tmp_path)
    assert set(op_types(m)) <= {"const", "identity"}  # static creations fold into constants


def test_creation_ops_are_ops_before_folding():
    prog = to_program(export(Fn(*CREATORS[:3], lambda x: torch.full((2,), 1.0)), (x4,)))
    assert [op.type for op in prog.main.ops] == ["arange"] * 3 + ["full"]


def test_like_ops_follow_their_input(tmp_path):
    m = check_module(Fn(
        lambda x: torch.zeros_like(x),
        lambda x: torch.ones_like(x, dtype=torch.int64),
        lambda x: torch.full_like(x, 3),
        lambda x: torch.full_like(x, float("inf")),
        lambda x: torch.empty_like(x).zero_(),
        lambda x: torch.zeros_like(x[0, 0], dtype=torch.bool),
        lambda x: x.clone().fill_(-2.0),
    ), (x4,), tmp_path)
    assert "full_like" in op_types(m)


def test_triu_tril_stay_whole(tmp_path):
    m = check_module(Fn(
        lambda x: x.triu(),
        lambda x: x.triu(1),
        lambda x: x.tril(-1),
        lambda x: torch.tril(x[0, 0] > 0),
    ), (x4,), tmp_path)
    assert op_types(m).count("triu") == 2 and op_types(m).count("tril") == 2


def test_large_masks_are_built_at_run_time(tmp_path):
    """A causal mask bigger than the folding limit is computed by full + triu, not stored."""
    m = check_module(Fn(lambda x: torch.full((64, 64), float("-inf")).triu(1) + x), (torch.randn(64, 64),), tmp_path)
    assert "triu" in op_types(m) and "full" in op_types(m)
    assert all(w.size < 64 * 64 for w in m.program.weights.values())


def test_lifted_scalar_tensor_constant(tmp_path):
    """torch.tensor(...) literals become 0-d lifted constants and must stay 0-d through save/load."""
    check_module(Fn(lambda x: x.clone().index_fill(1, torch.tensor([0, 2]), torch.tensor(4.0))), (x4,), tmp_path)


def test_llama_rotary_and_causal_mask_pattern(tmp_path):
    """SmolLM2/Llama: position ids from arange, inv_freq outer product, cos/sin, rotate_half with
    slicing + neg + cat, a triu causal mask expanded over batch, and GQA key repetition."""

    class Rotary(nn.Module):
        def __init__(self, dim=8):
            super().__init__()
            inv = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
            self.register_buffer("inv_freq", inv, persistent=False)

        def forward(self, q, k):
            b, h, t, d = q.shape
            pos = torch.arange(t).unsqueeze(0).expand(b, -1)
            freqs = self.inv_freq[None, :, None].float() * pos[:, None, :].float()  # (b, d/2, t)
            emb = torch.cat((freqs.transpose(1, 2), freqs.transpose(1, 2)), dim=-1)
            cos, sin = emb.cos()[:, None], emb.sin()[:, None]

            def rotate_half(x):
                x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
                return torch.cat((-x2, x1), dim=-1)

            q = q * cos + rotate_half(q) * sin
            k = k * cos[:, :, :, :] + rotate_half(k) * sin
            kv = k[:, :, None, :, :].expand(b, k.shape[1], h // k.shape[1], t, d).reshape(b, h, t, d)
            mask = torch.full((t, t), float("-inf")).triu(1)[None, None].expand(b, 1, t, t)
            return q, kv, mask, k.repeat_interleave(h // k.shape[1], dim=1)

    check_module(Rotary(), (torch.randn(2, 4, 6, 8), torch.randn(2, 2, 6, 8)), tmp_path, atol=1e-5)


def test_whisper_positional_slice_pattern(tmp_path):
    """Whisper decoder: embed_positions.weight[past : past + t] added to token embeddings;
    encoder: conv output permuted to (batch, time, channels)."""
    class Dec(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(50, 8)
            self.pos = nn.Embedding(32, 8)

        def forward(self, ids, feats):
            t = ids.shape[1]
            h = self.tok(ids) + self.pos.weight[0:t]
            return h, feats.permute(0, 2, 1)

    check_module(Dec(), (torch.tensor([[1, 2, 3, 49]]), torch.randn(1, 8, 10)), tmp_path)


def test_efficientnet_pattern(tmp_path):
    """EfficientNet: "same" padding before a depthwise stage, flatten before the classifier."""
    class Head(nn.Module):
        def forward(self, x):
            x = nn.functional.pad(x, (0, 1, 0, 1))
            return torch.flatten(x, 1), x[:, :, :1, :1].flatten(1)

    check_module(Head(), (x4,), tmp_path)
