"""`resize`: nearest / linear / cubic resampling of the trailing spatial dims (torch's upsample_*).

Index arithmetic follows torch's CPU kernels in float32, so nearest indices match torch exactly.
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import register
from ..types import TensorType
from .conv import half_as_float

MODES = ("nearest", "nearest_exact", "linear", "cubic")


def _nd(attrs) -> int:
    sizes, scales = attrs["sizes"], attrs["scales"]
    if sizes is None and scales is None:
        raise ValueError("resize needs sizes or scales")
    n = len(sizes if sizes is not None else scales)
    if sizes is not None and scales is not None and len(scales) != n:
        raise ValueError(f"resize: sizes {sizes} and scales {scales} differ in length")
    if attrs["mode"] not in MODES:
        raise ValueError(f"resize mode must be one of {MODES}, got {attrs['mode']!r}")
    return n


def _out_size(size, i, attrs):
    if attrs["sizes"] is not None:
        return attrs["sizes"][i]
    s = attrs["scales"][i]
    if isinstance(size, str):
        return size if s == 1 else f"floor({size}*{s:g})"
    return int(math.floor(size * s))


def _infer(types, attrs):
    x = types[0]
    n = _nd(attrs)
    if n > x.rank:
        raise ValueError(f"resize of {n} dims of a rank-{x.rank} tensor")
    lead = x.shape[:x.rank - n]
    out = tuple(_out_size(x.shape[x.rank - n + i], i, attrs) for i in range(n))
    if any(isinstance(d, int) and d < 1 for d in out):
        raise ValueError(f"resize output size {out} must be positive")
    return [TensorType(x.dtype, lead + out)]


def _scale(L: int, O: int, scale, align_corners: bool) -> np.float32:
    """torch's area_pixel_compute_scale (float32)."""
    if align_corners:
        return np.float32((L - 1) / (O - 1)) if O > 1 else np.float32(0)
    if scale is not None and scale > 0:
        return np.float32(1.0 / scale)
    return np.float32(L) / np.float32(O)


def _axis_nearest(x, ax, O, scale, exact):
    L = x.shape[ax]
    if O == L and not exact:
        return x
    if O == 2 * L and not exact:  # torch special-cases x2 (whatever the scale)
        idx = np.arange(O) >> 1
    else:
        s = np.float32(1.0 / scale) if scale is not None and scale > 0 else np.float32(L) / np.float32(O)
        d = np.arange(O, dtype=np.float32)
        if exact:
            d = d + np.float32(0.5)
        idx = np.minimum(np.floor(d * s).astype(np.int64), L - 1)
    return np.take(x, idx, axis=ax)


def _shape_for(w, ndim, ax):
    shape = [1] * ndim
    shape[ax] = len(w)
    return w.reshape(shape)


def _axis_linear(x, ax, O, scale, align_corners):
    L = x.shape[ax]
    s = _scale(L, O, scale, align_corners)
    d = np.arange(O, dtype=np.float32)
    if align_corners:
        real = s * d
    else:
        real = np.maximum(s * (d + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    i0 = np.minimum(np.floor(real).astype(np.int64), L - 1)
    lam1 = np.clip(real - i0.astype(np.float32), 0, 1).astype(np.float32)
    lam0 = np.float32(1) - lam1
    i1 = i0 + (i0 < L - 1)
    dt = x.dtype
    return (np.take(x, i0, axis=ax) * _shape_for(lam0, x.ndim, ax).astype(dt)
            + np.take(x, i1, axis=ax) * _shape_for(lam1, x.ndim, ax).astype(dt))


def _cubic_coeffs(t, A=np.float32(-0.75)):
    def c1(v):
        return ((A + 2) * v - (A + 3)) * v * v + 1

    def c2(v):
        return ((A * v - 5 * A) * v + 8 * A) * v - 4 * A
    one = np.float32(1)
    return [c2(t + one), c1(t), c1(one - t), c2(one - t + one)]


def _axis_cubic(x, ax, O, scale, align_corners):
    L = x.shape[ax]
    s = _scale(L, O, scale, align_corners)
    d = np.arange(O, dtype=np.float32)
    real = s * d if align_corners else s * (d + np.float32(0.5)) - np.float32(0.5)
    i0 = np.minimum(np.floor(real).astype(np.int64), L - 1)
    t = np.clip(real - i0.astype(np.float32), 0, 1).astype(np.float32)
    out = None
    for j, c in enumerate(_cubic_coeffs(t)):
        term = np.take(x, np.clip(i0 - 1 + j, 0, L - 1), axis=ax) * _shape_for(c.astype(x.dtype), x.ndim, ax)
        out = term if out is None else out + term
    return out


@register("resize", inputs=("x",), infer=_infer,
          attrs={"mode": "nearest", "sizes": None, "scales": None, "align_corners": False})
@half_as_float
def resize(a, attrs):
    """Resample the trailing len(sizes or scales) dims of x.

    sizes: output lengths (else floor(length * scale)); scales: torch's scale factors, which (when
    given) define the index mapping as 1/scale, else input/output length is used. mode: nearest
    (torch "nearest"), nearest_exact, linear (bi/trilinear) or cubic (torch bicubic, A=-0.75);
    align_corners applies to linear and cubic.
    """
    x = a[0]
    n = _nd(attrs)
    mode, ac = attrs["mode"], bool(attrs["align_corners"])
    out = x
    # innermost dim first, which matches torch's order of accumulation for (bi)linear
    for i in reversed(range(n)):
        ax = x.ndim - n + i
        O = _out_size(x.shape[ax], i, attrs)
        scale = attrs["scales"][i] if attrs["scales"] is not None else None
        if mode in ("nearest", "nearest_exact"):
            out = _axis_nearest(out, ax, O, scale, mode == "nearest_exact")
        elif mode == "linear":
            out = _axis_linear(out, ax, O, scale, ac)
        else:
            out = _axis_cubic(out, ax, O, scale, ac)
    return np.ascontiguousarray(out, dtype=x.dtype)
