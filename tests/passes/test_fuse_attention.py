"""fuse_attention: hand-written attention becomes one scaled_dot_product_attention op, equal to
torch and to the unfused program; anything not exactly attention is left alone."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pocketml as pm
from helpers import Fn, check_module, op_types, to_numpy
from pocketml.model import Model
from pocketml.passes import eliminate_dead_code, fold_constants, run_passes

torch.manual_seed(0)
B, H, L, S, E = 2, 3, 5, 7, 8
SDPA = "scaled_dot_product_attention"


def _qkv(L=L, S=S, dtype=torch.float32):
    return tuple(torch.randn(B, H, n, E, dtype=dtype) for n in (L, S, S))


def _unfused(module, inputs) -> Model:
    from pocketml.frontend.torch import export, to_program

    program = to_program(export(module.eval(), inputs))
    return Model(run_passes(program, (eliminate_dead_code, fold_constants, eliminate_dead_code)))


def _sdpa_op(model):
    (op,) = [op for op in model.program.main.ops if op.type == SDPA]
    return op


def _fused(module, inputs, tmp_path, atol=1e-5, rtol=1e-5):
    """Converts `module`: checks one sdpa op and no softmax, equality with torch and with the unfused
    program (1e-5 relative); returns the sdpa op and the input names."""
    model = check_module(module, inputs, tmp_path, atol=atol, rtol=rtol)
    types = op_types(model)
    assert types.count(SDPA) == 1 and "softmax" not in types and "matmul" not in types, types
    feed = {n: to_numpy(t) for n, t in zip(model.input_names, inputs)}
    got, want = model.predict(feed), _unfused(module, inputs).predict(feed)
    for name in want:
        scale = np.abs(want[name].astype(np.float32)).max()
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=max(1e-5, rtol) * scale)
    return _sdpa_op(model), model.input_names


def _not_fused(module, inputs):
    model = check_module(module, inputs)
    assert SDPA not in op_types(model) and "softmax" in op_types(model)


def attention(scale=None, mask_first=False):
    """softmax(q @ k^T * scale + mask) @ v, spelled out; `mask` (an extra input) is optional."""
    def f(q, k, v, *mask):
        s = q @ k.transpose(-2, -1)
        if scale is not None:
            s = s * scale
        if mask:
            s = s + mask[0]
        return torch.softmax(s, dim=-1) @ v
    return Fn(f)


def masked(fill):
    """softmax(fill(q @ k^T, m)) @ v for a bool mask input m."""
    return Fn(lambda q, k, v, m: torch.softmax(fill(q @ k.transpose(-2, -1), m), dim=-1) @ v)


NEG_INF = float("-inf")


# ---------------------------------------------------------------------------------------------
# Fused
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [None, 0.125, 0.3])
def test_scale_by_mul(scale, tmp_path):
    op, _ = _fused(attention(scale), _qkv(), tmp_path)
    assert op.attrs == {"is_causal": False, "scale": pytest.approx(1.0 if scale is None else scale)}
    assert op.inputs[3] is None


def test_div_by_sqrt_d_and_permuted_k(tmp_path):
    def f(q, k, v):
        return torch.softmax(torch.matmul(q, k.permute(0, 1, 3, 2)) / math.sqrt(q.shape[-1]), dim=-1) @ v
    op, _ = _fused(Fn(f), _qkv(), tmp_path)
    assert op.attrs["scale"] == pytest.approx(1 / math.sqrt(E))


def test_prescaled_q_is_folded_into_the_scale(tmp_path):
    def direct(q, k, v):
        return torch.softmax((q * E ** -0.5) @ k.transpose(-1, -2), dim=-1) @ v

    def before_head_split(x, k, v):  # as Whisper: q_proj(x) * scale, then split into heads
        q = (x * 0.3).view(B, L, H, E).transpose(1, 2)
        return torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v

    assert _fused(Fn(direct), _qkv(), tmp_path)[0].attrs["scale"] == pytest.approx(E ** -0.5)
    q, k, v = _qkv()
    op, _ = _fused(Fn(before_head_split), (torch.randn(B, L, H * E), k, v), tmp_path)
    assert op.attrs["scale"] == pytest.approx(0.3)


def test_k_stored_transposed(tmp_path):
    """k^T made by one permute of (B, S, H, E) keys: k is that input re-permuted."""
    def f(q, k_bshe, v):
        return torch.softmax(q @ k_bshe.permute(0, 2, 3, 1) * 0.2, dim=-1) @ v
    q, _, v = _qkv()
    _fused(Fn(f), (q, torch.randn(B, S, H, E), v), tmp_path)


def test_additive_float_mask_input(tmp_path):
    mask = torch.randn(B, 1, L, S)
    op, names = _fused(attention(0.125), (*_qkv(), mask), tmp_path)
    assert op.inputs[3] == names[3] and op.attrs["is_causal"] is False


def test_mask_added_first_in_the_sum(tmp_path):
    op, names = _fused(Fn(lambda q, k, v, m: torch.softmax(m + q @ k.transpose(-2, -1), -1) @ v),
                       (*_qkv(), torch.randn(L, S)), tmp_path)
    assert op.inputs[3] == names[3]


class CausalBuffer(torch.nn.Module):
    """GPT-2 style: a registered lower-triangular bool buffer and masked_fill(~mask, -inf)."""

    def __init__(self, n=L):
        super().__init__()
        self.register_buffer("mask", torch.tril(torch.ones(n, n, dtype=torch.bool)))

    def forward(self, q, k, v):
        s = q @ k.transpose(-2, -1) * 0.125
        return torch.softmax(s.masked_fill(~self.mask, NEG_INF), dim=-1) @ v


class CausalTriu(torch.nn.Module):
    """An additive 0/-inf mask built from triu(full(-inf), 1) in forward (a constant once folded)."""

    def __init__(self, fill=NEG_INF):
        super().__init__()
        self.fill = fill

    def forward(self, q, k, v):
        n = q.shape[-2]
        mask = torch.triu(torch.full((n, n), self.fill), diagonal=1)
        return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(E) + mask, dim=-1) @ v


@pytest.mark.parametrize("module", [CausalBuffer(), CausalTriu()], ids=["bool-buffer", "triu-inf"])
def test_causal_mask_constant_becomes_is_causal(module, tmp_path):
    op, _ = _fused(module, _qkv(L=L, S=L), tmp_path)
    assert op.attrs["is_causal"] is True and op.inputs[3] is None


def test_bool_mask_input_masked_fill(tmp_path):
    keep = torch.rand(B, 1, L, S) > 0.3
    keep[..., 0] = True  # every query sees a key (see test_fully_masked_row_gives_zero)
    op, names = _fused(masked(lambda s, m: s.masked_fill(~m, NEG_INF)), (*_qkv(), keep), tmp_path)
    assert op.inputs[3] == names[3]  # where(not m, -inf, s): the logical_not is looked through
    op, names = _fused(masked(lambda s, m: torch.where(m, s, NEG_INF)), (*_qkv(), keep), tmp_path)
    assert op.inputs[3] == names[3]
    # masked_fill(m, -inf) with m marking blocked keys: the mask is negated by a new logical_not
    _fused(masked(lambda s, m: s.masked_fill(m, NEG_INF)), (*_qkv(), ~keep), tmp_path)


def test_lead_dims(tmp_path):
    """Without heads (B*H folded, bmm), without any batch, and with grouped-query repeat_interleave."""
    _fused(attention(0.2), tuple(t.reshape(B * H, -1, E) for t in _qkv()), tmp_path)
    _fused(attention(0.2), tuple(t[0, 0] for t in _qkv()), tmp_path)

    def gqa(q, k, v):
        k, v = k.repeat_interleave(3, dim=1), v.repeat_interleave(3, dim=1)
        return torch.softmax(q @ k.transpose(-2, -1) * 0.2, dim=-1) @ v
    q = torch.randn(B, 6, L, E)
    _fused(Fn(gqa), (q, torch.randn(B, 2, S, E), torch.randn(B, 2, S, E)), tmp_path)


def test_float16(tmp_path):
    """fp16, also with the softmax taken in float32 (s.float() ... .to(q.dtype))."""
    q, k, v = _qkv(dtype=torch.float16)
    mask = torch.randn(B, 1, L, S, dtype=torch.float16)
    _fused(attention(0.125), (q, k, v, mask), tmp_path, atol=2e-3, rtol=2e-3)
    upcast = Fn(lambda q, k, v: torch.softmax((q @ k.transpose(-2, -1) * 0.125).float(), -1).half() @ v)
    _fused(upcast, (q, k, v), tmp_path, atol=2e-3, rtol=2e-3)


def test_pass_leaves_converted_sdpa_alone():
    model = pm.convert(Fn(lambda *qkv: F.scaled_dot_product_attention(*qkv, is_causal=True)), _qkv(L=L, S=L))
    assert op_types(model) == [SDPA] and _sdpa_op(model).attrs == {"is_causal": True, "scale": None}


def test_fully_masked_row_gives_zero_not_nan():
    """The one difference from the unfused chain: a row with no key to attend is 0 (torch's sdpa)
    where softmax over all -inf gives NaN."""
    keep = torch.rand(B, 1, L, S) > 0.3
    keep[..., 0] = True
    keep[0, 0, 2] = False
    inputs = (*_qkv(), keep)
    module = masked(lambda s, m: s.masked_fill(~m, NEG_INF))
    with torch.no_grad():
        want = to_numpy(module(*inputs))
    model = pm.convert(module, inputs)
    got = model.predict({n: to_numpy(t) for n, t in zip(model.input_names, inputs)})["output"]
    assert np.isnan(want[:, :, 2]).any() and not np.isnan(got).any()
    np.testing.assert_array_equal(got[0, :, 2], 0)
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Not fused, or fused only as a mask
# ---------------------------------------------------------------------------------------------


def test_softmax_on_another_axis_is_not_fused():
    _not_fused(Fn(lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1), dim=-2) @ v), _qkv(L=L, S=L))


def test_intermediate_used_twice_is_not_fused():
    def probs_returned(q, k, v):
        p = torch.softmax(q @ k.transpose(-2, -1) * 0.125, dim=-1)
        return p @ v, p

    def scores_reused(q, k, v):
        s = q @ k.transpose(-2, -1) * 0.125
        return torch.softmax(s, dim=-1) @ v + s.sum(-1, keepdim=True)

    _not_fused(Fn(probs_returned), _qkv())
    _not_fused(Fn(scores_reused), _qkv())


def test_non_scalar_multiplier_is_not_fused():
    class PerKeyScale(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("w", torch.rand(S) + 0.5)

        def forward(self, q, k, v):
            return torch.softmax(q @ k.transpose(-2, -1) * self.w, dim=-1) @ v

    _not_fused(PerKeyScale(), _qkv())


def test_mask_before_the_scale_is_not_fused():
    _not_fused(Fn(lambda q, k, v, m: torch.softmax((q @ k.transpose(-2, -1) + m) * 0.125, -1) @ v),
               (*_qkv(), torch.randn(L, S)))


class WindowMask(torch.nn.Module):
    """A constant bool mask that is not causal: a sliding window of 2 keys."""

    def __init__(self):
        super().__init__()
        i = torch.arange(L)
        self.register_buffer("mask", (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < 2))

    def forward(self, q, k, v):
        s = (q @ k.transpose(-2, -1)).masked_fill(~self.mask, NEG_INF)
        return torch.softmax(s, dim=-1) @ v


def test_non_causal_constant_mask_is_passed_as_mask(tmp_path):
    op, _ = _fused(WindowMask(), _qkv(L=L, S=L), tmp_path)
    assert op.attrs["is_causal"] is False and op.inputs[3] is not None
    # A causal mask of finite fill (finfo.min) is not exactly is_causal: kept as an additive mask.
    op, _ = _fused(CausalTriu(torch.finfo(torch.float32).min), _qkv(L=L, S=L), tmp_path)
    assert op.attrs["is_causal"] is False and op.inputs[3] is not None
