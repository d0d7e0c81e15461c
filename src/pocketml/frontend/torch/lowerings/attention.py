"""Lowerings of scaled dot-product attention (kept whole, and the fused variants) to one op."""
from __future__ import annotations

from ..builder import Builder
from ..registry import Unsupported, lowers
from ._nn_util import Outputs


def _sdpa(b: Builder, q, k, v, mask=None, dropout_p=0.0, is_causal=False, scale=None, what="sdpa"):
    if dropout_p:
        raise Unsupported(f"{what} with dropout_p={dropout_p} (dropout is random; pass dropout_p=0 "
                          "when not training)")
    if not q.dtype.is_float or k.dtype != q.dtype or v.dtype != q.dtype:
        raise Unsupported(f"{what} of {q.dtype.value}/{k.dtype.value}/{v.dtype.value} inputs")
    if mask is not None and mask.dtype.value != "bool" and mask.dtype != q.dtype:
        raise Unsupported(f"{what}: mask of dtype {mask.dtype.value} with {q.dtype.value} inputs")
    if mask is not None and is_causal:
        raise Unsupported(f"{what}: both attn_mask and is_causal")
    return b.op("scaled_dot_product_attention", [q, k, v, mask],
                {"is_causal": bool(is_causal), "scale": None if scale is None else float(scale)})


@lowers("aten.scaled_dot_product_attention.default")
def scaled_dot_product_attention(b, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    return _sdpa(b, q, k, v, attn_mask, dropout_p, is_causal, scale)


@lowers("aten._scaled_dot_product_attention_math.default")
def sdpa_math(b, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, dropout_mask=None, scale=None,
              enable_gqa=False):
    if dropout_mask is not None:
        raise Unsupported("_scaled_dot_product_attention_math with a dropout_mask")
    out = _sdpa(b, q, k, v, attn_mask, dropout_p, is_causal, scale)
    return Outputs((out, None), "_scaled_dot_product_attention_math", ("output", "attn_weights"))


@lowers("aten._scaled_dot_product_flash_attention_for_cpu.default")
def sdpa_flash_cpu(b, q, k, v, dropout_p=0.0, is_causal=False, attn_mask=None, scale=None):
    out = _sdpa(b, q, k, v, attn_mask, dropout_p, is_causal, scale)
    return Outputs((out, None), "_scaled_dot_product_flash_attention_for_cpu", ("output", "logsumexp"))


@lowers("aten._scaled_dot_product_efficient_attention.default")
def sdpa_efficient(b, q, k, v, attn_bias, compute_log_sumexp, dropout_p=0.0, is_causal=False, scale=None):
    out = _sdpa(b, q, k, v, attn_bias, dropout_p, is_causal, scale)
    return Outputs((out, None, None, None), "_scaled_dot_product_efficient_attention",
                   ("output", "log_sumexp", "philox_seed", "philox_offset"))


@lowers("aten._scaled_dot_product_flash_attention.default")
def sdpa_flash(b, q, k, v, dropout_p=0.0, is_causal=False, return_debug_mask=False, scale=None):
    out = _sdpa(b, q, k, v, None, dropout_p, is_causal, scale)
    return Outputs((out,) + (None,) * 8, "_scaled_dot_product_flash_attention", ("output", "logsumexp"))


@lowers("aten._scaled_dot_product_cudnn_attention.default")
def sdpa_cudnn(b, q, k, v, attn_bias, compute_log_sumexp, dropout_p=0.0, is_causal=False,
               return_debug_mask=False, scale=None):
    out = _sdpa(b, q, k, v, attn_bias, dropout_p, is_causal, scale)
    return Outputs((out,) + (None,) * 8, "_scaled_dot_product_cudnn_attention", ("output", "logsumexp"))
