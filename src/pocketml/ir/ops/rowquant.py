"""Activations stored as int8 rows: each row of the last axis with its own float32 scale.

What an int8 KV cache holds (`pocketml.compress.kv_cache`): a token's key or value for one head is
a row, quantized when it is written (`quantize_rows`) and read back as floats where it is used
(`dequantize_rows`, which the native attention reads without materialising). A row of its own
scale follows a token's range exactly, as llama.cpp's q8_0 cache blocks do.
"""
from __future__ import annotations

import numpy as np

from ..registry import register
from ..types import DType, TensorType


def scale_type(x: TensorType) -> TensorType:
    """The scales of x's rows: float32 of x's shape with a last dimension of 1."""
    return TensorType(DType.float32, (*x.shape[:-1], 1))


def _quantize_infer(types, attrs):
    (x,) = types
    if x.dtype != DType.float32 or x.rank < 1:
        raise ValueError(f"quantize_rows: x must be float32 of rank >= 1, got {x}")
    return [TensorType(DType.int8, x.shape), scale_type(x)]


@register("quantize_rows", inputs=("x",), infer=_quantize_infer)
def quantize_rows(a, attrs):
    """(q, scale): per row of the last axis, scale = max |x| / 127 (float32) and q = clip(round(x /
    scale), -127, 127) as int8, round half to even; q = 0 where x / scale is not finite (an all-zero
    row, whose scale is 0; NaN or infinity, whose scale is then NaN or infinite)."""
    x = a[0]
    scale = (np.max(np.abs(x), axis=-1, keepdims=True) if x.shape[-1] else
             np.zeros((*x.shape[:-1], 1), np.float32)) / np.float32(127)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.round(x / scale)
    q = np.where(np.isfinite(r), np.clip(r, -127, 127), 0).astype(np.int8)
    return [q, scale.astype(np.float32, copy=False)]


def _dequantize_infer(types, attrs):
    q, scale = types
    if q.dtype != DType.int8 or q.rank < 1:
        raise ValueError(f"dequantize_rows: q must be int8 of rank >= 1, got {q}")
    if scale.dtype != DType.float32 or scale.shape != scale_type(q).shape:
        raise ValueError(f"dequantize_rows: scale must be float32{list(scale_type(q).shape)} "
                         f"(one per row of q {q}), got {scale}")
    return [TensorType(DType.float32, q.shape)]


@register("dequantize_rows", inputs=("q", "scale"), infer=_dequantize_infer)
def dequantize_rows(a, attrs):
    """q * scale in float32, each row of the last axis times its scale."""
    q, scale = a
    return q.astype(np.float32) * scale
