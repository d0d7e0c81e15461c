"""scaled_dot_product_attention against F.scaled_dot_product_attention."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nn_op_helpers import infer_op, rand, run_op
from pocketml.ir.types import DType, TensorType

rng = np.random.default_rng(5)
T = torch.from_numpy


def _check(qs, ks, vs=None, mask=None, **attrs):
    vs = vs or ks
    q, k, v = rand(rng, qs), rand(rng, ks), rand(rng, vs)
    out, = run_op("scaled_dot_product_attention", [q, k, v, mask], **attrs)
    gqa = len(qs) >= 3 and qs[-3] != ks[-3]
    ref = F.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=None if mask is None else T(mask),
                                         enable_gqa=gqa, **attrs).numpy()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)


def test_plain():
    _check((2, 4, 5, 8), (2, 4, 5, 8))


@pytest.mark.parametrize("L,S", [(5, 5), (5, 7), (7, 5), (1, 6)])
def test_causal(L, S):
    _check((2, 4, L, 8), (2, 4, S, 8), is_causal=True)  # top-left aligned, as torch


def test_scale_and_value_dim():
    _check((2, 4, 5, 8), (2, 4, 7, 8), (2, 4, 7, 6), scale=0.3)


@pytest.mark.parametrize("kv_heads", [1, 2])
def test_gqa(kv_heads):
    _check((2, 4, 5, 8), (2, kv_heads, 7, 8), (2, kv_heads, 7, 6), scale=0.5)
    _check((2, 6, 5, 8), (2, kv_heads, 5, 8), is_causal=True)


@pytest.mark.parametrize("mshape", [(5, 7), (2, 1, 5, 7), (2, 4, 5, 7), (1, 7)])
def test_bool_mask(mshape):
    m = rng.random(mshape) > 0.3
    _check((2, 4, 5, 8), (2, 4, 7, 8), mask=m)
    _check((2, 4, 5, 8), (2, 2, 7, 8), mask=m)  # with grouped-query


def test_fully_masked_rows_give_zero():
    m = np.ones((5, 7), dtype=bool)
    m[2] = False
    _check((2, 4, 5, 8), (2, 4, 7, 8), mask=m)
    fm = np.zeros((5, 7), dtype=np.float32)
    fm[1] = -np.inf
    _check((2, 4, 5, 8), (2, 4, 7, 8), mask=fm)


@pytest.mark.parametrize("mshape", [(5, 7), (2, 4, 5, 7), (2, 1, 1, 7)])
def test_float_mask(mshape):
    _check((2, 4, 5, 8), (2, 4, 7, 8), mask=rand(rng, mshape))
    _check((2, 4, 5, 8), (2, 2, 7, 8), mask=rand(rng, mshape))


def test_low_rank_inputs():
    _check((3, 5, 8), (3, 7, 8))
    _check((5, 8), (7, 8), is_causal=True)


def test_large_logits_stable():
    q = rand(rng, (1, 2, 4, 8), scale=100)
    k = rand(rng, (1, 2, 6, 8), scale=100)
    v = rand(rng, (1, 2, 6, 8))
    out, = run_op("scaled_dot_product_attention", [q, k, v, None])
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, F.scaled_dot_product_attention(T(q), T(k), T(v)).numpy(), atol=1e-4)


def test_infer():
    f = DType.float32
    t, = infer_op("scaled_dot_product_attention",
                  [TensorType(f, ("b", 9, "t", 64)), TensorType(f, ("b", 3, "t", 64)),
                   TensorType(f, ("b", 3, "t", 32)), None], is_causal=True)
    assert t.shape == ("b", 9, "t", 32)
    with pytest.raises(ValueError):
        infer_op("scaled_dot_product_attention", [TensorType(f, (1, 4, 5, 8)), TensorType(f, (1, 3, 5, 8)),
                                                  TensorType(f, (1, 3, 5, 8)), None])
