"""Palettization: a weight as 2**nbits-entry look-up tables and per-element indices.

The stored layout (tables [*G, 2**nbits, cluster_dim], packed indices, groups of consecutive
channels, vectors along an axis) is `pocketml.formats.lut`'s; this module chooses the tables:
optimal 1-D k-means (`kmeans.py`, the default), vector k-means for cluster_dim > 1, evenly spaced
levels ("uniform"), the distinct values ("unique") or a caller's function ("custom"). Unused
table entries repeat the last center.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..formats.args import check_axis, check_finite, check_int, check_nbits, real_array
from .kmeans import _kmeans_1d_many, _kmeans_nd

PALETTIZE_MODES = ("kmeans", "uniform", "unique", "custom")
PALETTIZE_GRANULARITIES = ("per_tensor", "per_grouped_channel")


@dataclass
class Palettized:
    """A palettized weight: dense[idx] = lut[group(idx), indices[...], v] (* scale).

    lut: float32 [*G, 2**nbits, cluster_dim], G[i] dividing w.shape[i] (G[axis] = number of
    groups, other G dims 1); unused entries repeat the last center.
    indices: uint8, w.shape with shape[vector_axis] //= cluster_dim.
    scale: float32 per output channel (w.ndim dims, w.shape[axis] on axis, 1 elsewhere) or None.
    """
    lut: np.ndarray
    indices: np.ndarray
    scale: np.ndarray | None
    vector_axis: int


def _to_vectors(a: np.ndarray, axis: int, d: int) -> np.ndarray:
    """a with `axis` split into (n/d, d) and the d part moved last: index shape + (d,)."""
    s = a.shape
    v = a.reshape(s[:axis] + (s[axis] // d, d) + s[axis + 1:])
    return np.moveaxis(v, axis + 1, -1)


def palettize(w, nbits, mode="kmeans", granularity="per_tensor", group_size=0, axis=0,
              cluster_dim=1, per_channel_scale=False, weights=None,
              custom: Callable | None = None) -> Palettized:
    """Palettize `w` to 2**nbits entries per look-up table; see `Palettized`.

    mode: "kmeans" (optimal 1-D, or vector k-means when cluster_dim > 1; `weights` = per-element
    importance), "uniform" (2**nbits evenly spaced levels from min to max; cluster_dim 1),
    "unique" (the distinct values/vectors, ValueError when more than 2**nbits), "custom"
    (`custom(w_group) -> (lut, indices)`: w_group is the group's float64 slice of the (scaled)
    weight, shape[axis] = group size; lut (n,) or (n, cluster_dim) with n <= 2**nbits; indices
    integers < n, w_group's shape with shape[axis] //= cluster_dim, or that many row-major).
    granularity: "per_tensor" or "per_grouped_channel" (groups of `group_size` consecutive slices
    along `axis` share one table; group_size must divide w.shape[axis] and be a multiple of
    cluster_dim). cluster_dim > 1: vectors of that many consecutive elements along `axis`.
    per_channel_scale: each slice along `axis` is divided by its max |w| before clustering.
    """
    w = real_array(w)
    if w.ndim == 0 or w.size == 0:
        raise ValueError(f"palettize needs a non-empty weight of rank >= 1, got shape {w.shape}")
    nbits = check_nbits(nbits)
    K = 1 << nbits
    axis = check_axis(axis, w.ndim)
    d = check_int(cluster_dim, "cluster_dim", 1)
    C = w.shape[axis]
    if mode not in PALETTIZE_MODES:
        raise ValueError(f"mode must be one of {PALETTIZE_MODES}, got {mode!r}")
    if mode == "custom" and not callable(custom):
        raise ValueError("mode 'custom' needs a callable `custom(w_group) -> (lut, indices)`")
    if mode == "uniform" and d > 1:
        raise ValueError("mode 'uniform' supports cluster_dim 1 only")
    if C % d:
        raise ValueError(f"cluster_dim {d} does not divide the weight's dimension {C} on axis {axis}")
    if granularity == "per_tensor":
        gs = C
    elif granularity == "per_grouped_channel":
        gs = check_int(group_size, "group_size", 1)
        if C % gs:
            raise ValueError(f"group_size {gs} does not divide the weight's dimension {C} on axis {axis}")
        if gs % d:
            raise ValueError(f"group_size {gs} is not a multiple of cluster_dim {d}")
    else:
        raise ValueError(f"granularity must be one of {PALETTIZE_GRANULARITIES}, got {granularity!r}")
    ngroups = C // gs
    scale = None
    if per_channel_scale:
        w64 = w.astype(np.float64)
        red = tuple(i for i in range(w.ndim) if i != axis)
        s = np.max(np.abs(w64), axis=red, keepdims=True, initial=0.0)
        s[s == 0] = 1.0
        scale = s.astype(np.float32)
        src = w64 / scale.astype(np.float64)
    elif w.dtype.kind == "f" and mode == "kmeans" and d == 1:
        src = w  # the 1-D k-means sorts the weight's own floats (float32 sorts faster)
    else:
        src = w.astype(np.float64)
    wt = None
    if weights is not None:
        wt = np.asarray(weights, dtype=np.float64)
        if wt.shape != w.shape:
            raise ValueError(f"weights shape {wt.shape} differs from the weight's {w.shape}")
        check_finite(wt, "weights")
        if (wt < 0).any():
            raise ValueError("weights must be non-negative")

    index_shape = w.shape[:axis] + (C // d,) + w.shape[axis + 1:]
    indices = np.zeros(index_shape, np.uint8)
    G = tuple(ngroups if i == axis else 1 for i in range(w.ndim))
    lut = np.zeros(G + (K, d), np.float32)

    def gslice(g, size):
        return (slice(None),) * axis + (slice(g * size, (g + 1) * size),)

    groups = []
    for g in range(ngroups):
        sl = gslice(g, gs)
        wg = src[sl]
        X = _to_vectors(wg, axis, d).reshape(-1, d)
        Wg = None if wt is None else _to_vectors(wt[sl], axis, d).reshape(-1, d)
        groups.append((wg, X, Wg))

    results: list[tuple[np.ndarray, np.ndarray]] = []
    if mode == "kmeans" and d == 1:
        results = [(c[:, None], lab) for c, lab in
                   _kmeans_1d_many([(X[:, 0], None if Wg is None else Wg[:, 0])
                                    for _, X, Wg in groups], K, uint8_labels=True)]
    else:
        for wg, X, Wg in groups:
            if mode == "kmeans":
                results.append(_kmeans_nd(X, K, Wg))
            elif mode == "uniform":
                results.append(_uniform_levels(X[:, 0], K))
            elif mode == "unique":
                U, inv = np.unique(X, axis=0, return_inverse=True)
                if len(U) > K:
                    raise ValueError(f"mode 'unique': {len(U)} distinct "
                                     f"{'values' if d == 1 else 'vectors'} do not fit in "
                                     f"2**{nbits} = {K} entries")
                results.append((U, inv.reshape(-1)))
            else:
                results.append(_custom(custom, wg, K, d, X.shape[0]))
    for g, (centers, labels) in enumerate(results):
        gi = tuple(g if i == axis else 0 for i in range(w.ndim))
        table = np.asarray(centers, dtype=np.float64).reshape(-1, d)
        lut[gi][:len(table)] = table
        lut[gi][len(table):] = table[-1]
        indices[gslice(g, gs // d)] = np.asarray(labels).reshape(indices[gslice(g, gs // d)].shape)
    return Palettized(lut, indices, scale, axis)


def _uniform_levels(x: np.ndarray, K: int):
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return np.full((K, 1), lo), np.zeros(x.size, np.int64)
    levels = np.linspace(lo, hi, K)
    idx = np.clip(np.rint((x - lo) / ((hi - lo) / (K - 1))), 0, K - 1).astype(np.int64)
    return levels[:, None], idx


def _custom(fn, wg: np.ndarray, K: int, d: int, count: int):
    out = fn(wg)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ValueError("custom(w_group) must return (lut, indices)")
    lut, idx = (np.asarray(a) for a in out)
    if lut.ndim == 1 and d == 1:
        lut = lut[:, None]
    if lut.ndim != 2 or lut.shape[1] != d or not 1 <= lut.shape[0] <= K:
        raise ValueError(f"custom lut must have shape (n,) or (n, {d}) with 1 <= n <= {K}, "
                         f"got {lut.shape}")
    check_finite(lut, "custom lut")
    if idx.size != count or idx.dtype.kind not in "iu":
        raise ValueError(f"custom indices must be {count} integers, got {idx.size} of dtype {idx.dtype}")
    idx = idx.reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= lut.shape[0]):
        raise ValueError(f"custom indices must lie in [0, {lut.shape[0]})")
    return lut.astype(np.float64), idx
