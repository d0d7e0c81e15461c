"""Creation ops: tensors made from a shape and scalars (arange, full, full_like), and the
triangular masks triu/tril.

Fill values are attributes: numbers, bools, or the strings "inf", "-inf", "nan" (JSON has no
non-finite floats). With static shapes these ops are folded into constants at conversion; they
exist as ops so that programs with symbolic shapes can build them at run time.
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import REQUIRED, register
from ..types import DType, TensorType
from .shape import scalar_value


def arange_length(start, end, step) -> int:
    """torch.arange's element count: ceil((end - start) / step), never negative."""
    if step == 0:
        raise ValueError("arange: step must not be 0")
    if (step > 0 and end < start) or (step < 0 and end > start):
        raise ValueError(f"arange: bounds {start}, {end} are inconsistent with the sign of step {step}")
    if all(isinstance(v, int) for v in (start, end, step)):
        n = -((start - end) // step)
    else:
        n = math.ceil((float(end) - float(start)) / float(step))
    return max(int(n), 0)


def _arange_infer(types, attrs):
    start, end, step = attrs["start"], attrs["end"], attrs["step"]
    if any(isinstance(v, str) for v in (start, end)):  # a symbolic bound, integer step
        if not isinstance(step, int) or step <= 0:
            raise ValueError("arange with a symbolic bound needs a positive integer step")
        span = f"{end}" if start == 0 else f"({end})-({start})"
        n = span if step == 1 else f"({span}+{step - 1})//{step}"
        return [TensorType(DType(attrs["dtype"]), (n,))]
    n = arange_length(start, end, step)
    return [TensorType(DType(attrs["dtype"]), (n,))]


@register("arange", inputs=(), infer=_arange_infer,
          attrs={"start": 0, "end": REQUIRED, "step": 1, "dtype": "int64"})
def arange(a, attrs):
    """[start, start + step, ...] up to (excluding) end, as `dtype`.

    Float values are start + i * step computed in float64, then rounded once to `dtype` (torch's
    vectorised CPU kernel rounds partial sums too, so it can differ by an ulp).
    """
    start, end, step = attrs["start"], attrs["end"], attrs["step"]
    n = arange_length(start, end, step)
    dtype = DType(attrs["dtype"]).np
    if all(isinstance(v, int) for v in (start, end, step)):
        return (start + step * np.arange(n, dtype=np.int64)).astype(dtype)
    return (float(start) + float(step) * np.arange(n, dtype=np.float64)).astype(dtype)


def _full_infer(types, attrs):
    shape = tuple(attrs["shape"])
    if any(isinstance(d, int) and d < 0 for d in shape):
        raise ValueError(f"full: negative dimension in shape {list(shape)}")
    return [TensorType(DType(attrs["dtype"]), shape)]


@register("full", inputs=(), infer=_full_infer,
          attrs={"shape": REQUIRED, "value": REQUIRED, "dtype": "float32"})
def full(a, attrs):
    """A tensor of `shape` and `dtype` filled with `value`."""
    dtype = DType(attrs["dtype"]).np
    return np.full(attrs["shape"], scalar_value(attrs["value"], dtype), dtype=dtype)


def _full_like_infer(types, attrs):
    x = types[0]
    return [TensorType(DType(attrs["dtype"]) if attrs["dtype"] else x.dtype, x.shape)]


@register("full_like", inputs=("x",), infer=_full_like_infer, attrs={"value": REQUIRED, "dtype": None})
def full_like(a, attrs):
    """A tensor of x's shape filled with `value`, of `dtype` (default: x's dtype); x's values unused."""
    x = a[0]
    dtype = DType(attrs["dtype"]).np if attrs["dtype"] else x.dtype
    return np.full(x.shape, scalar_value(attrs["value"], dtype), dtype=dtype)


def _tri_infer(types, attrs):
    x = types[0]
    if x.rank < 2:
        raise ValueError(f"triu/tril need rank >= 2, got shape {x.shape}")
    return [x]


@register("triu", inputs=("x",), infer=_tri_infer, attrs={"diagonal": 0})
def triu(a, attrs):
    """x with the elements below the `diagonal`-th diagonal of the last two axes set to zero."""
    return np.triu(a[0], attrs["diagonal"])


@register("tril", inputs=("x",), infer=_tri_infer, attrs={"diagonal": 0})
def tril(a, attrs):
    """x with the elements above the `diagonal`-th diagonal of the last two axes set to zero."""
    return np.tril(a[0], attrs["diagonal"])
