"""End-to-end conversion of indexing ops: torch module -> IR -> package -> NumPy runtime, vs torch."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import pocketml as pm
from helpers import Fn, check_module, op_types


torch.manual_seed(0)
x4 = torch.randn(2, 3, 4, 5)
idx = torch.tensor([[0, 1], [2, 0]])


def test_gather_index_select_take_along_dim(tmp_path):
    check_module(Fn(
        lambda x, i: torch.gather(x[0, 0], 1, i),
        lambda x, i: torch.gather(x, 2, i.view(1, 1, 2, 2).expand(2, 3, 2, 2)),
        lambda x, i: torch.index_select(x, 2, i[0]),
        lambda x, i: torch.index_select(x, -1, i.flatten()),
        lambda x, i: torch.take_along_dim(x[0, 0, :2], i, 1),
    ), (x4, idx), tmp_path)


def test_embedding_stays_whole(tmp_path):
    emb = nn.Embedding(10, 4, padding_idx=0)
    m = check_module(emb, (torch.tensor([[1, 0, 9], [3, 3, 2]]),), tmp_path)
    assert op_types(m) == ["embedding"]
    m = check_module(Fn(lambda i: F.embedding(i, torch.arange(12.0).view(6, 2))),
                     (torch.tensor([5, 0, 2]),), tmp_path)
    assert "embedding" in op_types(m)


def test_advanced_indexing(tmp_path):
    m = check_module(Fn(
        lambda x, i: x[:, i],                    # one index tensor -> take
        lambda x, i: x[i[0]],
        lambda x, i: x[..., i[1]],
        lambda x, i: x[i % 2, :, i],             # separated: result dims move to the front
        lambda x, i: x[:, i[0], :, i[1]],
        lambda x, i: x[:, i[0], i[1]],           # adjacent: dims stay in place
        lambda x, i: x[i[:, :1] % 2, i[:1] + 1],  # broadcasting index tensors
        lambda x, i: x[:, -1 - i],               # negative indices
    ), (x4, idx), tmp_path)
    assert "index" in op_types(m) and "take" in op_types(m)


def test_boolean_mask_indexing_is_rejected_with_advice():
    class M(nn.Module):
        def forward(self, x):
            return x[x > 0]
    with pytest.raises(pm.ConversionError):
        pm.convert(M(), (x4,))


def test_slice_and_index_assignment(tmp_path):

    def assign(x, i):
        y = x.clone()
        y[:, 1] = 0.0                    # select_scatter (fill)
        y[..., 1:3] = x[..., :2]         # slice_scatter
        y[0, 1, 2] = x[1, 1, 1]          # scalar into a nested select
        y[:, i[0]] = 1.0                 # index_put with a tensor index
        y[x > 1] = -1.0                  # index_put with a bool mask
        return y

    def accumulate(x, i):
        y = torch.zeros(2, 3, 5)
        return torch.ops.aten.index_put(y, [None, None, i.flatten()], x[:, :, 0, :4], True)

    def index_fill(x, i):
        return x[0, 0].index_fill(0, i[0], 2.0)

    check_module(Fn(assign, accumulate, index_fill), (x4, idx), tmp_path)


@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")
def test_scatter_family(tmp_path):
    x = torch.randn(4, 5)
    perm = torch.stack([torch.randperm(4) for _ in range(5)], 1)[:3]  # distinct targets per column
    rep = torch.tensor([[0, 1, 2, 0, 1], [0, 3, 2, 0, 1], [3, 1, 0, 0, 1]])  # repeated targets
    src = torch.randn(4, 6)  # larger than index: torch reads the leading block
    check_module(Fn(
        lambda x, p, r, s: x.scatter(0, p, s),
        lambda x, p, r, s: x.scatter(0, p, 1.5),
        lambda x, p, r, s: x.scatter_add(0, r, s),
        lambda x, p, r, s: x.scatter_reduce(0, r, s[:3, :5], "sum"),
        lambda x, p, r, s: x.scatter_reduce(0, r, s[:3, :5], "amax"),
        lambda x, p, r, s: x.scatter_reduce(0, r, s[:3, :5], "amin"),
        lambda x, p, r, s: x.scatter_reduce(0, r, s[:3, :5], "prod"),
        lambda x, p, r, s: x.scatter(0, r, s, reduce="add"),       # legacy scatter.reduce
        lambda x, p, r, s: x.scatter(0, r, 2.0, reduce="multiply"),  # legacy scatter.value_reduce
    ), (x, perm, rep, src), tmp_path, atol=1e-5)


def test_scatter_reduce_mean_is_unsupported():
    class M(nn.Module):
        def forward(self, x, i):
            return x.scatter_reduce(0, i, x, "mean")
    with pytest.raises(pm.ConversionError, match="mean"):
        pm.convert(M(), (torch.randn(3, 2), torch.zeros(3, 2, dtype=torch.long)))


def test_topk_and_sort(tmp_path):
    x = torch.randperm(2 * 3 * 8).float().view(2, 3, 8)  # distinct values: one right answer
    check_module(Fn(
        lambda x: x.topk(3),
        lambda x: x.topk(2, dim=1, largest=False),
        lambda x: torch.topk(x, 1, dim=0, sorted=False),
        lambda x: x.sort(),
        lambda x: x.sort(dim=1, descending=True),
        lambda x: x.argsort(dim=-1),
        lambda x: torch.sort(x, stable=True, descending=True),
        lambda x: x.msort(),
    ), (x,), tmp_path)


def test_sort_with_ties_is_stable(tmp_path):
    check_module(Fn(lambda x: torch.sort(x, stable=True), lambda x: torch.sort(x, stable=True, descending=True)),
                 (torch.tensor([[3, 1, 3, 2, 1, 3]]),), tmp_path)


def test_masked_fill(tmp_path):
    check_module(Fn(
        lambda x, m: x.masked_fill(m, float("-inf")),
        lambda x, m: x.masked_fill(x > 0, 0.5),
        lambda x, m: x.masked_fill(m, x[0, 0, 0, 0]),
    ), (x4, x4 < -0.5), tmp_path)


def test_bert_embeddings_pattern(tmp_path):
    """MiniLM/BERT: word + position (sliced buffer) + token type (expanded zeros buffer) embeddings,
    and the extended attention mask mask[:, None, None, :]."""

    class Embeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.word = nn.Embedding(30, 8)
            self.pos = nn.Embedding(16, 8)
            self.token_type = nn.Embedding(2, 8)
            self.register_buffer("position_ids", torch.arange(16).expand((1, -1)), persistent=False)
            self.register_buffer("token_type_ids", torch.zeros(1, 16, dtype=torch.long), persistent=False)

        def forward(self, input_ids, attention_mask):
            b, t = input_ids.shape
            pos = self.position_ids[:, :t]
            types = self.token_type_ids[:, :t].expand(b, t)
            h = self.word(input_ids) + self.pos(pos) + self.token_type(types)
            ext = attention_mask[:, None, None, :].to(torch.float32)
            ext = (1.0 - ext) * torch.finfo(torch.float32).min
            heads = h.view(b, t, 2, 4).permute(0, 2, 1, 3)
            return heads, ext

    ids = torch.tensor([[2, 7, 29, 0, 0], [5, 1, 3, 4, 6]])
    mask = (ids != 0).long()
    m = check_module(Embeddings(), (ids, mask), tmp_path)
    # the position and token-type lookups read constant ids: folded at conversion
    assert op_types(m).count("embedding") == 1


def test_out_of_range_indices_raise_like_torch():
    """index_select and embedding reject negative ids (torch raises); x[i] counts from the end."""
    m = pm.convert(Fn(lambda x, i: torch.index_select(x, 0, i), lambda x, i: x[i]),
                   (torch.randn(5, 2), torch.tensor([0, 4])), input_names=["x", "ids"])
    x = torch.randn(5, 2).numpy()
    with pytest.raises(IndexError):
        torch.index_select(torch.from_numpy(x), 0, torch.tensor([-1]))
    with pytest.raises(pm.InputError, match=r"input 'ids'.*-1 is outside \[0, 4\]"):
        m.predict({"x": x, "ids": torch.tensor([-1, 0]).numpy()})
    with pytest.raises(pm.InputError, match="input 'ids'"):
        m.predict({"x": x, "ids": torch.tensor([5, 0]).numpy()})
