"""softmax and log_softmax along one axis (max-subtracted, accumulated in float64)."""
from __future__ import annotations

import numpy as np

from ..registry import register
from ..types import TensorType
from ._infer import norm_axis
from .conv import half_as_float


def _infer(types, attrs):
    x = types[0]
    if not x.dtype.is_float:
        raise ValueError(f"softmax of a {x.dtype.value} tensor")
    norm_axis(attrs["axis"], x.rank)
    return [TensorType(x.dtype, x.shape)]


def _shifted(x, axis):
    if x.ndim == 0:
        x = x.reshape(1)
        axis = 0
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype)  # all -inf (or inf) rows: no shift
    return x - m, axis


@register("softmax", inputs=("x",), infer=_infer, attrs={"axis": -1})
@half_as_float
def softmax(a, attrs):
    """exp(x) / sum(exp(x)) along `axis` (a row of -inf gives NaN, as in torch)."""
    x = a[0]
    z, axis = _shifted(x, attrs["axis"])
    e = np.exp(z)
    s = np.sum(e, axis=axis, keepdims=True, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (e / s).astype(x.dtype).reshape(x.shape)


@register("log_softmax", inputs=("x",), infer=_infer, attrs={"axis": -1})
@half_as_float
def log_softmax(a, attrs):
    """x - log(sum(exp(x))) along `axis`."""
    x = a[0]
    z, axis = _shifted(x, attrs["axis"])
    s = np.sum(np.exp(z), axis=axis, keepdims=True, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (z - np.log(s)).astype(x.dtype).reshape(x.shape)
