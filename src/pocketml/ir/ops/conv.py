"""Convolution ops: `conv` and `conv_transpose` over 1, 2 or 3 spatial dims (torch weight layouts).

Layouts are torch's: x (N, C_in, *spatial); `conv` weight (C_out, C_in/groups, *kernel);
`conv_transpose` weight (C_in, C_out/groups, *kernel); bias (C_out,). Attributes are lists with one
entry per spatial dim, except `pads`, which holds [begin, end] pairs: [b0, e0, b1, e1, ...].
"""
from __future__ import annotations

import functools
import itertools

import numpy as np

from ..registry import register
from ..types import Dim, TensorType


def half_as_float(fn):
    """Run a float16 computation in float32 (as torch's CPU kernels accumulate) and round back."""
    @functools.wraps(fn)
    def wrapped(a, attrs):
        if not any(isinstance(x, np.ndarray) and x.dtype == np.float16 for x in a):
            return fn(a, attrs)
        out = fn([x.astype(np.float32) if isinstance(x, np.ndarray) and x.dtype == np.float16 else x for x in a],
                 attrs)
        if isinstance(out, (list, tuple)):
            return [o.astype(np.float16) if o.dtype == np.float32 else o for o in out]
        return out.astype(np.float16) if out.dtype == np.float32 else out
    return wrapped


def spatial_attrs(attrs: dict, n: int) -> tuple[list, list, list]:
    """(strides, pads as [(begin, end), ...], dilations) for n spatial dims (defaults 1, 0, 1)."""
    strides = list(attrs.get("strides") or [1] * n)
    dilations = list(attrs.get("dilations") or [1] * n)
    pads = list(attrs.get("pads") or [0] * (2 * n))
    if len(strides) != n or len(dilations) != n or len(pads) != 2 * n:
        raise ValueError(f"strides/dilations need {n} entries and pads {2 * n} "
                         f"(got {strides}, {dilations}, {pads})")
    if any(s < 1 for s in strides) or any(d < 1 for d in dilations):
        raise ValueError(f"strides and dilations must be >= 1 (got {strides}, {dilations})")
    return strides, [(pads[2 * i], pads[2 * i + 1]) for i in range(n)], dilations


def window_out_dim(size: Dim, k: int, s: int, pb: int, pe: int, d: int = 1, ceil_mode: bool = False) -> Dim:
    """Output length of a sliding window (torch's formula, incl. ceil_mode's last-window rule)."""
    span = d * (k - 1) + 1
    if isinstance(size, str):
        if span == 1 and s == 1 and pb == 0 and pe == 0:
            return size
        num = f"{size}+{pb + pe - span}" if pb + pe != span else size
        return f"ceil(({num})/{s})+1" if ceil_mode else f"({num})//{s}+1"
    num = size + pb + pe - span
    if num < 0:
        raise ValueError(f"window of extent {span} does not fit in padded length {size + pb + pe}")
    if not ceil_mode:
        return num // s + 1
    out = -(-num // s) + 1
    if (out - 1) * s >= size + pb:  # the last window must start inside the input or left padding
        out -= 1
    return out


def _conv_infer(types, attrs):
    x, w, bias = types
    n = x.rank - 2
    if n < 1 or w.rank != x.rank:
        raise ValueError(f"conv needs x (N, C, *spatial) and weight of the same rank, got {x} and {w}")
    strides, pads, dilations = spatial_attrs(attrs, n)
    g = attrs["groups"]
    cin, cout = x.shape[1], w.shape[0]
    if isinstance(cin, int) and isinstance(w.shape[1], int) and cin != w.shape[1] * g:
        raise ValueError(f"conv: x has {cin} channels but weight {w} with groups={g} expects {w.shape[1] * g}")
    if isinstance(cout, int) and cout % g:
        raise ValueError(f"conv: {cout} output channels not divisible by groups={g}")
    if bias is not None and (bias.rank != 1 or isinstance(cout, int) and bias.shape[0] not in (cout,)
                             and isinstance(bias.shape[0], int)):
        raise ValueError(f"conv: bias {bias} does not match {cout} output channels")
    spatial = [window_out_dim(x.shape[2 + i], w.shape[2 + i], strides[i], *pads[i], dilations[i])
               for i in range(n)]
    return [TensorType(x.dtype, (x.shape[0], cout, *spatial))]


def _pad(x: np.ndarray, pads, value=0.0) -> np.ndarray:
    if not any(b or e for b, e in pads):
        return x
    lead = [(0, 0)] * (x.ndim - len(pads))
    neg = any(b < 0 or e < 0 for b, e in pads)
    if neg:  # negative pads crop
        sl = tuple(slice(max(-b, 0), x.shape[x.ndim - len(pads) + i] - max(-e, 0))
                   for i, (b, e) in enumerate(pads))
        x = x[(Ellipsis, *sl)]
        pads = [(max(b, 0), max(e, 0)) for b, e in pads]
    return np.pad(x, lead + list(pads), constant_values=value)


def windows(xp: np.ndarray, kernel, strides, dilations) -> np.ndarray:
    """View (..., *out, *kernel) of the windows of the trailing len(kernel) dims of padded xp."""
    n = len(kernel)
    axes = tuple(range(xp.ndim - n, xp.ndim))
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilations)]
    v = np.lib.stride_tricks.sliding_window_view(xp, span, axis=axes)
    lead = (slice(None),) * (xp.ndim - n)
    return v[lead + tuple(slice(None, None, s) for s in strides) + tuple(slice(None, None, d) for d in dilations)]


@register("conv", inputs=("x", "weight", "bias?"), infer=_conv_infer,
          attrs={"strides": None, "pads": None, "dilations": None, "groups": 1},
          weight=(1, 0, 1))  # (out, in/groups, *kernel)
@half_as_float
def conv(a, attrs):
    """Cross-correlation as torch's convNd: x (N, C_in, *S), weight (C_out, C_in/groups, *K), bias (C_out,).

    strides/dilations: one per spatial dim (default 1); pads: [begin, end] per spatial dim, zero padding.
    """
    x, w, bias = a
    n = x.ndim - 2
    strides, pads, dilations = spatial_attrs(attrs, n)
    g = attrs["groups"]
    dtype = np.result_type(x.dtype, w.dtype)
    N, C = x.shape[:2]
    cout, cg = w.shape[:2]
    kernel = w.shape[2:]
    og = cout // g
    xp = _pad(x, pads)
    win = windows(xp, kernel, strides, dilations)  # (N, C, *O, *K)
    out_sp = win.shape[2:2 + n]
    P = int(np.prod(out_sp, dtype=np.int64))
    K = int(np.prod(kernel, dtype=np.int64))
    if cg == 1 and g > 1:
        # depthwise (possibly with a channel multiplier): accumulate over kernel taps, no im2col copy
        xw = win.reshape(N, g, 1, *out_sp, *kernel)
        wk = w.reshape(g, og, *[1] * n, K)
        out = np.zeros((N, g, og, *out_sp), dtype=dtype)
        for t, idx in enumerate(itertools.product(*[range(k) for k in kernel])):
            out += xw[(Ellipsis, *idx)] * wk[..., t]
        out = out.reshape(N, cout, *out_sp)
    elif K == 1 and all(s == 1 for s in strides):
        # pointwise: a plain matmul over channels
        xr = xp.reshape(N, g, cg, P)
        out = np.matmul(w.reshape(g, og, cg), xr).reshape(N, cout, *out_sp)
    else:
        # im2col: (N, G, Cg*K, P) columns, one batched matmul per group
        perm = (0, 1, *range(2 + n, 2 + 2 * n), *range(2, 2 + n))
        cols = np.ascontiguousarray(win.transpose(perm)).reshape(N, g, cg * K, P)
        out = np.matmul(w.reshape(g, og, cg * K), cols).reshape(N, cout, *out_sp)
    if bias is not None:
        out += bias.reshape(cout, *[1] * n)
    return out.astype(dtype, copy=False)


def _convt_out_dim(size: Dim, k: int, s: int, pb: int, pe: int, d: int, op: int) -> Dim:
    if isinstance(size, str):
        return f"({size}-1)*{s}+{d * (k - 1) + 1 + op - pb - pe}"
    out = (size - 1) * s + d * (k - 1) + 1 + op - pb - pe
    if out < 1:
        raise ValueError(f"conv_transpose output length {out} < 1")
    return out


def _convt_attrs(attrs, n):
    strides, pads, dilations = spatial_attrs(attrs, n)
    op = list(attrs.get("output_padding") or [0] * n)
    if len(op) != n:
        raise ValueError(f"output_padding needs {n} entries, got {op}")
    return strides, pads, dilations, op


def _convt_infer(types, attrs):
    x, w, bias = types
    n = x.rank - 2
    if n < 1 or w.rank != x.rank:
        raise ValueError(f"conv_transpose needs x (N, C, *spatial) and weight of the same rank, got {x} and {w}")
    strides, pads, dilations, op = _convt_attrs(attrs, n)
    g = attrs["groups"]
    if isinstance(x.shape[1], int) and isinstance(w.shape[0], int) and x.shape[1] != w.shape[0]:
        raise ValueError(f"conv_transpose: x has {x.shape[1]} channels, weight {w} expects {w.shape[0]}")
    cout = w.shape[1] * g if isinstance(w.shape[1], int) else w.shape[1]
    spatial = [_convt_out_dim(x.shape[2 + i], w.shape[2 + i], strides[i], *pads[i], dilations[i], op[i])
               for i in range(n)]
    return [TensorType(x.dtype, (x.shape[0], cout, *spatial))]


@register("conv_transpose", inputs=("x", "weight", "bias?"), infer=_convt_infer,
          attrs={"strides": None, "pads": None, "dilations": None, "groups": 1, "output_padding": None},
          weight=(1, 1, 0))  # (in, out/groups, *kernel)
@half_as_float
def conv_transpose(a, attrs):
    """Transposed convolution as torch's conv_transposeNd: weight (C_in, C_out/groups, *K), bias (C_out,).

    Output length per dim: (L-1)*stride + dilation*(K-1) + 1 + output_padding - pad_begin - pad_end.
    """
    x, w, bias = a
    n = x.ndim - 2
    strides, pads, dilations, opad = _convt_attrs(attrs, n)
    g = attrs["groups"]
    dtype = np.result_type(x.dtype, w.dtype)
    N, C = x.shape[:2]
    in_sp = x.shape[2:]
    kernel = w.shape[2:]
    og = w.shape[1]
    cg = C // g
    cout = og * g
    P = int(np.prod(in_sp, dtype=np.int64))
    # columns: (N, G, Og, *K, P) = W^T @ x per group
    wt = w.reshape(g, cg, og * int(np.prod(kernel, dtype=np.int64))).transpose(0, 2, 1)
    cols = np.matmul(wt, x.reshape(N, g, cg, P)).reshape(N, g * og, *kernel, *in_sp)
    full = [(l - 1) * s + d * (k - 1) + 1 + o for l, s, d, k, o in zip(in_sp, strides, dilations, kernel, opad)]
    out = np.zeros((N, cout, *full), dtype=dtype)
    for idx in itertools.product(*[range(k) for k in kernel]):
        sl = tuple(slice(i * d, i * d + (l - 1) * s + 1, s)
                   for i, d, l, s in zip(idx, dilations, in_sp, strides))
        out[(slice(None), slice(None), *sl)] += cols[(slice(None), slice(None), *idx)]
    out = out[(slice(None), slice(None), *(slice(b, f - e) for (b, e), f in zip(pads, full)))]
    if bias is not None:
        out = out + bias.reshape(cout, *[1] * n)
    return np.ascontiguousarray(out, dtype=dtype)
