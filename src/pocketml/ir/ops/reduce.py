"""Reductions, arg-reductions and cumulative ops.

`axes`: a list of axes (negative counts from the end) or None for all axes; an empty list reduces
nothing. `keepdims` keeps reduced axes as size 1. Outputs keep the input dtype (the frontend casts
integer inputs to int64 first where torch accumulates in int64), except `argmax`/`argmin` (int64)
and `reduce_any`/`reduce_all` (bool). Float references accumulate in float64 and round once.
"""
from __future__ import annotations

import numpy as np

from ..registry import register
from ..types import DType, TensorType
from .elementwise import FLOATS, like, quiet, upcast


def norm_axes(axes, rank: int) -> tuple[int, ...]:
    """Sorted, non-negative, unique axes; None means all. A rank-0 input has nothing to reduce."""
    if axes is None:
        return tuple(range(rank))
    if isinstance(axes, int):
        axes = [axes]
    out = set()
    for a in axes:
        if not -max(rank, 1) <= a < max(rank, 1):
            raise ValueError(f"axis {a} out of range for rank {rank}")
        if rank:
            out.add(a % rank)
    return tuple(sorted(out))


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _reduce_infer(op: str, allowed=None, out: DType | None = None):
    def infer(types, attrs):
        (x,) = types
        if allowed is not None and x.dtype not in allowed:
            raise TypeError(f"{op}: dtype {x.dtype.value} is not supported")
        axes = norm_axes(attrs["axes"], x.rank)
        return [TensorType(out or x.dtype, _reduced_shape(x.shape, axes, bool(attrs["keepdims"])))]
    return infer


_AXES = {"axes": None, "keepdims": False}
_NUMERIC = tuple(d for d in DType if d != DType.bool)


def _args(a, attrs):
    x = a[0]
    return x, norm_axes(attrs["axes"], x.ndim), bool(attrs["keepdims"])


@register("reduce_sum", inputs=("x",), infer=_reduce_infer("reduce_sum", _NUMERIC), attrs=_AXES)
@quiet
def reduce_sum(a, attrs):
    """Sum over axes (integers wrap)."""
    x, axes, keep = _args(a, attrs)
    return like(np.sum(upcast(x), axis=axes, keepdims=keep), x.dtype)


@register("reduce_mean", inputs=("x",), infer=_reduce_infer("reduce_mean", FLOATS), attrs=_AXES)
@quiet
def reduce_mean(a, attrs):
    """Mean over axes (floats; an empty reduction gives NaN)."""
    x, axes, keep = _args(a, attrs)
    return like(np.mean(upcast(x), axis=axes, keepdims=keep), x.dtype)


@register("reduce_prod", inputs=("x",), infer=_reduce_infer("reduce_prod", _NUMERIC), attrs=_AXES)
@quiet
def reduce_prod(a, attrs):
    """Product over axes (integers wrap)."""
    x, axes, keep = _args(a, attrs)
    return like(np.prod(upcast(x), axis=axes, keepdims=keep), x.dtype)


@register("reduce_max", inputs=("x",), infer=_reduce_infer("reduce_max"), attrs=_AXES)
def reduce_max(a, attrs):
    """Max over axes; NaN propagates. The reduced size must not be 0."""
    x, axes, keep = _args(a, attrs)
    return np.asarray(np.max(x, axis=axes, keepdims=keep))


@register("reduce_min", inputs=("x",), infer=_reduce_infer("reduce_min"), attrs=_AXES)
def reduce_min(a, attrs):
    """Min over axes; NaN propagates. The reduced size must not be 0."""
    x, axes, keep = _args(a, attrs)
    return np.asarray(np.min(x, axis=axes, keepdims=keep))


@register("reduce_any", inputs=("x",), infer=_reduce_infer("reduce_any", out=DType.bool), attrs=_AXES)
def reduce_any(a, attrs):
    """Any nonzero over axes → bool."""
    x, axes, keep = _args(a, attrs)
    return np.asarray(np.any(x, axis=axes, keepdims=keep))


@register("reduce_all", inputs=("x",), infer=_reduce_infer("reduce_all", out=DType.bool), attrs=_AXES)
def reduce_all(a, attrs):
    """All nonzero over axes → bool."""
    x, axes, keep = _args(a, attrs)
    return np.asarray(np.all(x, axis=axes, keepdims=keep))


@register("reduce_var", inputs=("x",), infer=_reduce_infer("reduce_var", FLOATS),
          attrs={**_AXES, "correction": 1.0})
@quiet
def reduce_var(a, attrs):
    """Variance: sum((x - mean)^2) / max(0, N - correction) over axes (torch.var semantics)."""
    x, axes, keep = _args(a, attrs)
    x64 = upcast(x)
    n = int(np.prod([x.shape[i] for i in axes], dtype=np.int64))
    mean = np.mean(x64, axis=axes, keepdims=True)
    ss = np.sum(np.square(x64 - mean), axis=axes, keepdims=keep)
    return like(ss / max(0.0, n - float(attrs["correction"])), x.dtype)


@register("reduce_logsumexp", inputs=("x",), infer=_reduce_infer("reduce_logsumexp", FLOATS), attrs=_AXES)
@quiet
def reduce_logsumexp(a, attrs):
    """log(sum(exp(x))) over axes, computed stably (an all -inf slice gives -inf)."""
    x, axes, keep = _args(a, attrs)
    x64 = upcast(x)
    m = np.max(x64, axis=axes, keepdims=True) if x.size else np.zeros((1,) * x.ndim)
    m = np.where(np.isinf(m), 0.0, m)
    r = np.log(np.sum(np.exp(x64 - m), axis=axes, keepdims=True)) + m
    if not keep:
        r = np.squeeze(r, axis=axes)
    return like(r, x.dtype)


@register("reduce_norm", inputs=("x",), infer=_reduce_infer("reduce_norm", FLOATS),
          attrs={**_AXES, "ord": 2.0})
@quiet
def reduce_norm(a, attrs):
    """Vector p-norm over axes (torch.linalg.vector_norm): ord 2 → sqrt(sum x²), 1 → sum |x|,
    inf → max |x|, -inf → min |x|, 0 → count of nonzeros, p → (sum |x|^p)^(1/p).
    `ord` is a number or one of the strings "inf", "-inf" (JSON has no infinities)."""
    x, axes, keep = _args(a, attrs)
    ax = np.abs(upcast(x))
    p = float(attrs["ord"])
    if p == 2:
        r = np.sqrt(np.sum(ax * ax, axis=axes, keepdims=keep))
    elif p == 1:
        r = np.sum(ax, axis=axes, keepdims=keep)
    elif p == np.inf:
        r = np.max(ax, axis=axes, keepdims=keep)
    elif p == -np.inf:
        r = np.min(ax, axis=axes, keepdims=keep)
    elif p == 0:
        r = np.sum(ax != 0, axis=axes, keepdims=keep)
    else:
        r = np.power(np.sum(np.power(ax, p), axis=axes, keepdims=keep), 1.0 / p)
    return like(r, x.dtype)


def _arg_infer(op: str):
    def infer(types, attrs):
        (x,) = types
        if x.dtype == DType.bool:
            raise TypeError(f"{op}: bool input is not supported")
        axis = attrs["axis"]
        keep = bool(attrs["keepdims"])
        if axis is None:
            return [TensorType(DType.int64, (1,) * x.rank if keep else ())]
        axes = norm_axes([axis], x.rank)
        return [TensorType(DType.int64, _reduced_shape(x.shape, axes, keep))]
    return infer


def _arg(fn, a, attrs):
    x = a[0]
    axis, keep = attrs["axis"], bool(attrs["keepdims"])
    if axis is None:
        r = fn(x.reshape(-1))
        return np.asarray(r, dtype=np.int64).reshape((1,) * x.ndim if keep else ())
    if x.ndim == 0:
        norm_axes([axis], 0)
        return np.zeros((), np.int64)
    return np.asarray(fn(x, axis=axis, keepdims=keep), dtype=np.int64)


@register("argmax", inputs=("x",), infer=_arg_infer("argmax"), attrs={"axis": None, "keepdims": False})
def argmax(a, attrs):
    """Index (int64) of the first maximum along `axis` (None: of the flattened input); NaN counts as
    the maximum."""
    return _arg(np.argmax, a, attrs)


@register("argmin", inputs=("x",), infer=_arg_infer("argmin"), attrs={"axis": None, "keepdims": False})
def argmin(a, attrs):
    """Index (int64) of the first minimum along `axis` (None: of the flattened input); NaN counts as
    the minimum."""
    return _arg(np.argmin, a, attrs)


def _cum_infer(op: str):
    def infer(types, attrs):
        (x,) = types
        if x.dtype == DType.bool:
            raise TypeError(f"{op}: bool input is not supported (cast to int64 first)")
        norm_axes([attrs["axis"]], x.rank)
        return [x]
    return infer


def _cum(fn, a, attrs):
    x = a[0]
    if x.ndim == 0:
        norm_axes([attrs["axis"]], 0)
        return x.copy()
    r = fn(upcast(x), axis=attrs["axis"] % x.ndim)
    return like(r, x.dtype)


@register("cumsum", inputs=("x",), infer=_cum_infer("cumsum"), attrs={"axis": 0})
@quiet
def cumsum(a, attrs):
    """Running sum along `axis` (inclusive)."""
    return _cum(np.cumsum, a, attrs)


@register("cumprod", inputs=("x",), infer=_cum_infer("cumprod"), attrs={"axis": 0})
@quiet
def cumprod(a, attrs):
    """Running product along `axis` (inclusive)."""
    return _cum(np.cumprod, a, attrs)
