"""Conversion of scaled_dot_product_attention end to end."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pocketml as pm
from helpers import check_module
from nn_op_helpers import Fn, op_types

torch.manual_seed(0)


def sdpa(**kw):
    return Fn(lambda q, k, v, *mask: F.scaled_dot_product_attention(q, k, v, *mask, **kw))


def _qkv(hq=4, hk=4, L=5, S=5, E=8, Ev=8, B=2):
    return torch.randn(B, hq, L, E), torch.randn(B, hk, S, E), torch.randn(B, hk, S, Ev)


def _check(module, inputs, tmp_path):
    m = check_module(module, inputs, tmp_path)
    assert op_types(m).count("scaled_dot_product_attention") == 1
    return m


@pytest.mark.parametrize("L,S", [(5, 5), (3, 7), (7, 3)])
def test_causal(L, S, tmp_path):
    _check(sdpa(is_causal=True), _qkv(L=L, S=S), tmp_path)


def test_scale_gqa_and_value_dim(tmp_path):
    _check(sdpa(scale=0.3), _qkv(Ev=6, S=7), tmp_path)
    _check(sdpa(enable_gqa=True, is_causal=True), _qkv(hq=6, hk=2), tmp_path)


def test_masks(tmp_path):
    q, k, v = _qkv(hq=4, hk=2, L=5, S=7)
    bool_mask = torch.rand(2, 1, 5, 7) > 0.3
    bool_mask[0, 0, 1] = False  # a fully masked row gives zeros, as torch
    _check(sdpa(enable_gqa=True), (q, k, v, bool_mask), tmp_path)
    _check(sdpa(), (*_qkv(L=5, S=7), torch.randn(5, 7)), tmp_path)


def test_fused_cpu_op(tmp_path):
    """The fused CPU kernel's op (found in some exported programs) lowers to the same IR op."""
    def f(q, k, v):
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, is_causal=True, scale=0.2)[0]
    _check(Fn(f), _qkv(L=4, S=6), tmp_path)


class Causal(torch.nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def test_dynamic_sequence_length():
    module = Causal().eval()
    seq = torch.export.Dim("seq", min=2, max=64)
    ep = torch.export.export(module, _qkv(L=8, S=8), dynamic_shapes=({2: seq}, {2: seq}, {2: seq}))
    m = pm.convert(ep)
    for n in (3, 17):
        q, k, v = _qkv(L=n, S=n)
        got = m.predict(dict(zip(m.input_names, (q.numpy(), k.numpy(), v.numpy()))))[m.output_names[0]]
        np.testing.assert_allclose(got, module(q, k, v).numpy(), atol=1e-5)
