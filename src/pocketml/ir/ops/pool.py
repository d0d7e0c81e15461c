"""Pooling ops over the trailing spatial dims: max_pool, avg_pool, adaptive_avg_pool, adaptive_max_pool.

The pooled dims are the last len(kernel) (or len(output_size)) dims of x; leading dims (N, C, ...)
are kept. `pads` holds [begin, end] per pooled dim like `conv`.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..registry import REQUIRED, register
from ..types import TensorType
from .conv import _pad, half_as_float, spatial_attrs, window_out_dim, windows


def _pool_params(attrs, rank):
    kernel = list(attrs["kernel"])
    n = len(kernel)
    if not 1 <= n <= rank:
        raise ValueError(f"pooling {n} dims of a rank-{rank} tensor")
    if any(k < 1 for k in kernel):
        raise ValueError(f"kernel {kernel} must be positive")
    strides, pads, dilations = spatial_attrs({**attrs, "strides": attrs["strides"] or kernel}, n)
    for k, (b, e), d in zip(kernel, pads, dilations):
        if b < 0 or e < 0 or b > (d * (k - 1) + 1) // 2 or e > (d * (k - 1) + 1) // 2:
            raise ValueError(f"pads {attrs['pads']} must be >= 0 and at most half the window")
    return kernel, strides, pads, dilations


def _pool_shape(shape, attrs, dilated=True):
    kernel, strides, pads, dilations = _pool_params(attrs, len(shape))
    n = len(kernel)
    lead = shape[:len(shape) - n]
    return lead + tuple(window_out_dim(shape[len(lead) + i], kernel[i], strides[i], *pads[i],
                                       dilations[i] if dilated else 1, attrs["ceil_mode"]) for i in range(n))


def _pool_infer(types, attrs):
    return [TensorType(types[0].dtype, _pool_shape(types[0].shape, attrs))]


def _windows(x, attrs, fill, dilated=True):
    """(windows view (..., *O, *K), out spatial shape, kernel, pads) with the input padded by `fill`."""
    kernel, strides, pads, dilations = _pool_params(attrs, x.ndim)
    if not dilated:
        dilations = [1] * len(kernel)
    n = len(kernel)
    out = _pool_shape(x.shape, {**attrs, "dilations": dilations})[x.ndim - n:]
    # extra end padding so ceil_mode's last (partial) windows exist
    full = [(b, max(e, (o - 1) * s + d * (k - 1) + 1 - l - b))
            for (b, e), o, s, d, k, l in zip(pads, out, strides, dilations, kernel, x.shape[x.ndim - n:])]
    xp = _pad(x, full, fill)
    w = windows(xp, kernel, strides, dilations)
    lead = (slice(None),) * (x.ndim - n)
    w = w[lead + tuple(slice(0, o) for o in out)]
    return w, out, kernel, pads


def _taps(kernel):
    return itertools.product(*[range(k) for k in kernel])


@register("max_pool", inputs=("x",), infer=_pool_infer,
          attrs={"kernel": REQUIRED, "strides": None, "pads": None, "dilations": None, "ceil_mode": False})
def max_pool(a, attrs):
    """Max over windows of the trailing len(kernel) dims (padding never wins); strides default to kernel."""
    x = a[0]
    fill = -np.inf if x.dtype.kind == "f" else (np.iinfo(x.dtype).min if x.dtype.kind in "iu" else False)
    w, out, kernel, _ = _windows(x, attrs, fill)
    taps = _taps(kernel)
    res = np.array(w[(Ellipsis, *next(taps))], dtype=x.dtype)
    for t in taps:
        np.maximum(res, w[(Ellipsis, *t)], out=res)
    return res


def _avg_divisor(attrs, in_sp, out, kernel, strides, pads):
    """Per-output divisor array (broadcastable over the pooled dims), torch's rule."""
    if attrs["divisor_override"]:
        return np.float32(attrs["divisor_override"])
    div = np.ones((), dtype=np.float64)
    for i, (L, o, k, s, (pb, pe)) in enumerate(zip(in_sp, out, kernel, strides, pads)):
        start = np.arange(o) * s - pb
        end = np.minimum(start + k, L + pe)
        if attrs["count_include_pad"]:
            cnt = end - start
        else:
            cnt = np.minimum(end, L) - np.maximum(start, 0)
        div = div[..., None] * cnt.astype(np.float64)
    return div


@register("avg_pool", inputs=("x",), infer=lambda t, a: [TensorType(t[0].dtype, _pool_shape(t[0].shape, a, False))],
          attrs={"kernel": REQUIRED, "strides": None, "pads": None, "ceil_mode": False,
                 "count_include_pad": True, "divisor_override": None})
@half_as_float
def avg_pool(a, attrs):
    """Mean over windows of the trailing len(kernel) dims; zero padding counted iff count_include_pad
    (windows running past the padding in ceil_mode are never counted); divisor_override replaces the count.
    """
    x = a[0]
    kernel, strides, pads, _ = _pool_params(attrs, x.ndim)
    w, out, kernel, pads = _windows(x, attrs, 0, dilated=False)
    acc = np.zeros(w.shape[:x.ndim], dtype=np.float32 if x.dtype != np.float64 else np.float64)
    for t in _taps(kernel):
        acc += w[(Ellipsis, *t)]
    div = _avg_divisor(attrs, x.shape[x.ndim - len(kernel):], out, kernel, strides, pads)
    return (acc / np.asarray(div, dtype=acc.dtype)).astype(x.dtype, copy=False)


def _adaptive_infer(types, attrs):
    x = types[0]
    size = list(attrs["output_size"])
    if not 1 <= len(size) <= x.rank:
        raise ValueError(f"output_size {size} for a rank-{x.rank} tensor")
    lead = x.shape[:x.rank - len(size)]
    out = tuple(x.shape[len(lead) + i] if s is None else s for i, s in enumerate(size))
    return [TensorType(x.dtype, lead + out)]


def _bins(L: int, o: int):
    """torch's adaptive windows: [floor(i*L/o), ceil((i+1)*L/o))."""
    return [(i * L // o, -(-(i + 1) * L // o)) for i in range(o)]


@register("adaptive_avg_pool", inputs=("x",), infer=_adaptive_infer, attrs={"output_size": REQUIRED})
@half_as_float
def adaptive_avg_pool(a, attrs):
    """Mean over torch's adaptive windows of the trailing len(output_size) dims (None keeps a dim)."""
    x = a[0]
    size = list(attrs["output_size"])
    n = len(size)
    out = x
    for i, o in enumerate(size):
        ax = x.ndim - n + i
        L = x.shape[ax]
        if o is None or o == L:
            continue
        if o == 1:
            out = np.mean(out, axis=ax, keepdims=True, dtype=np.float64)
            continue
        m = np.zeros((o, L), dtype=np.float64)
        for j, (s, e) in enumerate(_bins(L, o)):
            m[j, s:e] = 1.0 / (e - s)
        out = np.moveaxis(np.tensordot(out, m, axes=([ax], [1])), -1, ax)
    return np.ascontiguousarray(out, dtype=x.dtype)


@register("adaptive_max_pool", inputs=("x",), infer=_adaptive_infer, attrs={"output_size": REQUIRED})
def adaptive_max_pool(a, attrs):
    """Max over torch's adaptive windows of the trailing len(output_size) dims (None keeps a dim)."""
    x = a[0]
    size = list(attrs["output_size"])
    n = len(size)
    out = x
    for i, o in enumerate(size):
        ax = x.ndim - n + i
        L = x.shape[ax]
        if o is None or o == L:
            continue
        idx = (slice(None),) * ax
        out = np.stack([np.max(out[idx + (slice(s, e),)], axis=ax) for s, e in _bins(L, o)], axis=ax)
    return np.ascontiguousarray(out, dtype=x.dtype)
