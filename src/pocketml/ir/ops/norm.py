"""Normalization ops: layer_norm, rms_norm, group_norm, batch_norm.

Statistics are accumulated in float64 and the result returned in the input's dtype; variances are
biased (divide by the count), as torch's normalizations use.
"""
from __future__ import annotations

import numpy as np

from ..registry import register
from ..types import broadcast_shapes
from ._infer import norm_axis
from .conv import half_as_float


def _axes(attrs, rank) -> tuple[int, ...]:
    axes = sorted({norm_axis(a, rank) for a in attrs["axes"]})
    if not axes:
        raise ValueError("normalization needs at least one axis")
    return tuple(axes)


def _affine_infer(types, attrs):
    x, *params = types
    if not x.dtype.is_float:
        raise ValueError(f"normalization of a {x.dtype.value} tensor")
    _axes(attrs, x.rank)
    for p in params:
        if p is not None:
            if broadcast_shapes(x.shape, p.shape) != x.shape and x.is_static:
                raise ValueError(f"weight/bias {p} does not broadcast to {x}")
    return [x]


def _stats(x: np.ndarray, axes, eps: float):
    """(x - mean) in x's dtype and 1/sqrt(var + eps) as x's dtype, over `axes` (keepdims)."""
    mean = np.mean(x, axis=axes, keepdims=True, dtype=np.float64)
    d = np.subtract(x, mean.astype(x.dtype))
    var = np.mean(np.square(d, dtype=np.float64), axis=axes, keepdims=True)
    rstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    return d, rstd


def _affine(y: np.ndarray, weight, bias) -> np.ndarray:
    if weight is not None:
        y = y * weight.astype(y.dtype, copy=False)
    if bias is not None:
        y = y + bias.astype(y.dtype, copy=False)
    return y


@register("layer_norm", inputs=("x", "weight?", "bias?"), infer=_affine_infer, attrs={"axes": [-1], "eps": 1e-5})
@half_as_float
def layer_norm(a, attrs):
    """(x - mean) / sqrt(var + eps) over `axes`, then * weight + bias (both broadcast against x,
    e.g. of shape x.shape[-k:] for torch's normalized_shape).
    """
    x, weight, bias = a
    d, rstd = _stats(x, _axes(attrs, x.ndim), float(attrs["eps"]))
    return _affine(d * rstd, weight, bias)


@register("rms_norm", inputs=("x", "weight?"), infer=_affine_infer, attrs={"axes": [-1], "eps": 1e-6})
@half_as_float
def rms_norm(a, attrs):
    """x / sqrt(mean(x^2) + eps) over `axes`, then * weight (broadcast against x)."""
    x, weight = a
    ms = np.mean(np.square(x, dtype=np.float64), axis=_axes(attrs, x.ndim), keepdims=True)
    rstd = (1.0 / np.sqrt(ms + float(attrs["eps"]))).astype(x.dtype)
    return _affine(x * rstd, weight, None)


def _channel_params_infer(types, attrs, what):
    x, *params = types
    if x.rank < 2:
        raise ValueError(f"{what} needs x of shape (N, C, ...), got {x}")
    if not x.dtype.is_float:
        raise ValueError(f"{what} of a {x.dtype.value} tensor")
    c = x.shape[1]
    for p in params:
        if p is not None and (p.rank != 1 or isinstance(c, int) and isinstance(p.shape[0], int) and p.shape[0] != c):
            raise ValueError(f"{what}: per-channel parameter {p} does not match {c} channels")
    return [x]


def _per_channel(p, x):
    return None if p is None else p.reshape(-1, *[1] * (x.ndim - 2))


def _group_norm_infer(types, attrs):
    x = types[0]
    g = attrs["groups"]
    if g < 1 or x.rank >= 2 and isinstance(x.shape[1], int) and x.shape[1] % g:
        raise ValueError(f"group_norm: {x.shape[1] if x.rank >= 2 else '?'} channels not divisible into {g} groups")
    return _channel_params_infer(types, attrs, "group_norm")


@register("group_norm", inputs=("x", "weight?", "bias?"), infer=_group_norm_infer,
          attrs={"groups": 1, "eps": 1e-5})
@half_as_float
def group_norm(a, attrs):
    """x (N, C, *): normalize over each group of C/groups channels (and all spatial positions), then
    * weight + bias per channel (shape (C,)). groups=C is instance norm.
    """
    x, weight, bias = a
    n, c = x.shape[:2]
    g = attrs["groups"]
    xg = x.reshape(n, g, -1)
    d, rstd = _stats(xg, (2,), float(attrs["eps"]))
    y = (d * rstd).reshape(x.shape)
    return _affine(y, _per_channel(weight, x), _per_channel(bias, x))


@register("batch_norm", inputs=("x", "mean?", "var?", "weight?", "bias?"),
          infer=lambda t, a: _channel_params_infer(t, a, "batch_norm"), attrs={"eps": 1e-5})
@half_as_float
def batch_norm(a, attrs):
    """x (N, C, *): (x - mean) / sqrt(var + eps) * weight + bias, all per channel (shape (C,)).

    With mean and var given (inference; running statistics) this is an affine map per channel;
    without them the statistics of x itself (over N and spatial dims, biased variance) are used.
    """
    x, mean, var, weight, bias = a
    eps = float(attrs["eps"])
    if (mean is None) != (var is None):
        raise ValueError("batch_norm needs both mean and var, or neither")
    if mean is None:
        axes = (0, *range(2, x.ndim))
        d, rstd = _stats(x, axes, eps)
        return _affine(d * rstd, _per_channel(weight, x), _per_channel(bias, x))
    alpha = 1.0 / np.sqrt(var.astype(np.float64) + eps)
    if weight is not None:
        alpha = alpha * weight
    beta = -mean.astype(np.float64) * alpha
    if bias is not None:
        beta = beta + bias
    return x * _per_channel(alpha.astype(x.dtype), x) + _per_channel(beta.astype(x.dtype), x)
