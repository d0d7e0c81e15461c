"""scaled_dot_product_attention, as torch's F.scaled_dot_product_attention (incl. grouped-query)."""
from __future__ import annotations

import math

import numpy as np

from ..registry import register
from ..types import TensorType, broadcast_shapes


def _gqa_lead(q_lead, kv_lead, what):
    """kv's leading dims with its head dim (-1 of the leading dims) widened to q's for grouped-query."""
    kv_lead = list(kv_lead)
    if q_lead and kv_lead:
        hq, hk = q_lead[-1], kv_lead[-1]
        if isinstance(hq, int) and isinstance(hk, int) and hq != hk and hk != 1 and hq != 1:
            if hq % hk:
                raise ValueError(f"sdpa: {what} has {hk} heads, which do not divide the query's {hq}")
            kv_lead[-1] = hq
    return tuple(kv_lead)


def _infer(types, attrs):
    q, k, v, mask = types
    if q.rank < 2 or k.rank != q.rank or v.rank != q.rank:
        raise ValueError(f"sdpa needs q, k, v of equal rank >= 2, got {q}, {k}, {v}")
    if not q.dtype.is_float or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"sdpa needs q, k, v of one float dtype, got {q}, {k}, {v}")
    L, E, S = q.shape[-2], q.shape[-1], k.shape[-2]
    if isinstance(E, int) and isinstance(k.shape[-1], int) and E != k.shape[-1]:
        raise ValueError(f"sdpa: query feature size {E} != key's {k.shape[-1]}")
    lead = [q.shape[:-2], _gqa_lead(q.shape[:-2], k.shape[:-2], "key"), _gqa_lead(q.shape[:-2], v.shape[:-2], "value")]
    if mask is not None:
        if mask.dtype.value != "bool" and mask.dtype != q.dtype:
            raise ValueError(f"sdpa mask must be bool or {q.dtype.value}, got {mask}")
        ms = broadcast_shapes(mask.shape, (L, S))
        if len(ms) > 2:
            lead.append(ms[:-2])
    return [TensorType(q.dtype, broadcast_shapes(*lead) + (L, v.shape[-1]))]


@register("scaled_dot_product_attention", inputs=("q", "k", "v", "mask?"), infer=_infer,
          attrs={"is_causal": False, "scale": None})
def scaled_dot_product_attention(a, attrs):
    """softmax(q @ k^T * scale + mask) @ v over q (..., Hq, L, E), k (..., Hk, S, E), v (..., Hk, S, Ev).

    scale: None = 1/sqrt(E). mask broadcasts to (..., L, S): bool (True = attend) or float (added).
    is_causal: query i attends keys j <= i (top-left aligned, as torch). Hk may divide Hq (grouped-
    query attention: each k/v head serves Hq/Hk consecutive query heads). Rows with no key to attend
    give 0 (torch's safe softmax).
    """
    q, k, v, mask = a
    dtype = q.dtype
    L, E = q.shape[-2:]
    S = k.shape[-2]
    scale = attrs["scale"]
    scale = 1.0 / math.sqrt(E) if scale is None else float(scale)
    out_shape = _infer([TensorType.of(t) if t is not None else None for t in a], attrs)[0].shape
    f = np.float32 if dtype != np.float64 else np.float64
    q, k, v = q.astype(f, copy=False), k.astype(f, copy=False), v.astype(f, copy=False)
    group = 1
    if q.ndim >= 3 and k.shape[-3] not in (q.shape[-3], 1) and q.shape[-3] != 1:
        group = q.shape[-3] // k.shape[-3]
    if group > 1:
        hk = k.shape[-3]
        q = q.reshape(*q.shape[:-3], hk, group, L, E)
        k = k[..., None, :, :]
        v = v[..., None, :, :]
        if mask is not None and mask.ndim >= 3:
            if mask.shape[-3] == 1:
                mask = mask[..., None, :, :]
            else:
                mask = mask.reshape(*mask.shape[:-3], hk, group, *mask.shape[-2:])
    scores = np.matmul(q, np.swapaxes(k, -1, -2))
    scores *= f(scale)
    allowed = None
    if attrs["is_causal"]:
        allowed = np.tril(np.ones((L, S), dtype=bool))
    if mask is not None:
        if mask.dtype == np.bool_:
            allowed = mask if allowed is None else (allowed & mask)
        else:
            scores = scores + mask.astype(f, copy=False)
    if allowed is not None:
        scores = np.where(allowed, scores, f(-np.inf))
    m = np.max(scores, axis=-1, keepdims=True)
    dead = ~np.isfinite(m)  # rows without any finite score attend nothing
    e = np.exp(scores - np.where(dead, f(0), m))
    s = np.sum(e, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(dead | (s == 0), f(0), e / s)
    out = np.matmul(p.astype(f, copy=False), v)
    return np.ascontiguousarray(out.reshape(out_shape), dtype=dtype)
