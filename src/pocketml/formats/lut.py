"""Look-up-table (palettized) weights: a dense weight of `shape` rebuilt as lut[group, index, v].

Layout (the `lut_to_dense` op; docs/FORMAT.md):
- lut: float [*G, K, d], rank = rank(shape) + 2. G[i] divides shape[i]: element idx belongs to
  group g(idx)[i] = idx[i] // (shape[i] // G[i]) (G is 1 except along the grouped axis, where it
  is the number of groups of consecutive channels sharing one table). K = 2**nbits entries;
  d = cluster_dim, the length of the vectors an entry holds (1 for scalar palettization).
- indices: unsigned ints < K of the index shape, which is `shape` with shape[vector_axis] // d;
  stored bit-packed (`bits.pack_bits`, nbits each, row-major over the index shape).
- vectors: entry v of a vector fills d consecutive elements along `vector_axis`:
  dense[..., i*d + v, ...] = lut[g, indices[..., i, ...], v] on that axis.
- an optional scale (per output channel, broadcast to `shape`) multiplies the result; in a
  package it is a separate `mul`.
"""
from __future__ import annotations

import numpy as np

from .args import check_axis


def index_shape(shape, cluster_dim: int, vector_axis: int) -> tuple[int, ...]:
    """The shape of the indices of a weight of `shape`: shape[vector_axis] // cluster_dim
    (vector_axis already in range)."""
    shape = tuple(shape)
    va = vector_axis
    return shape[:va] + (shape[va] // cluster_dim,) + shape[va + 1:]


def groups_fit(shape, groups, cluster_dim: int, vector_axis: int) -> bool:
    """Whether a lut with group dims `groups` and vectors of `cluster_dim` tiles `shape`: every
    G[i] divides shape[i], and cluster_dim divides the group size along `vector_axis`."""
    return cluster_dim >= 1 and all(
        g >= 1 and not n % g and not (i == vector_axis and (n // g) % cluster_dim)
        for i, (n, g) in enumerate(zip(shape, groups)))


def depalettize(indices, lut, scale=None, vector_axis=0) -> np.ndarray:
    """The dense weight: out[idx] = lut[g(idx), indices[...], v], g(idx)[i] = idx[i] // (shape[i]
    // G[i]); the vector axis of `indices` is cluster_dim times shorter than the output's.

    Output dtype: the lut's (float16/float32), float32 otherwise; multiplied by `scale` if given.
    """
    idx = np.asarray(indices)
    lut = np.asarray(lut)
    if idx.dtype.kind not in "iu":
        raise ValueError(f"indices must be integers, got dtype {idx.dtype}")
    r = idx.ndim
    if r == 0 or lut.ndim != r + 2:
        raise ValueError(f"lut of rank {lut.ndim} does not fit rank-{r} indices (needs rank {r + 2})")
    va = check_axis(vector_axis, r, "vector_axis")
    K, d = lut.shape[-2:]
    if K < 1 or d < 1:
        raise ValueError(f"lut has an empty table: shape {lut.shape}")
    dense = idx.shape[:va] + (idx.shape[va] * d,) + idx.shape[va + 1:]
    G = lut.shape[:r]
    if not groups_fit(dense, G, d, va):
        raise ValueError(f"lut groups {G} do not divide the weight shape {dense} "
                         f"(cluster_dim {d} on axis {va})")
    if idx.size and (idx.min() < 0 or idx.max() >= K):
        raise ValueError(f"indices must lie in [0, {K})")
    out_dtype = lut.dtype if lut.dtype in (np.float16, np.float32) else np.dtype(np.float32)
    table = lut.astype(out_dtype, copy=False).reshape(-1, d)
    ng = int(np.prod(G))
    if ng == 1:
        vals = table[idx]
    else:
        split, gshape = [], []
        for n, g in zip(idx.shape, G):
            split += [g, n // g]
            gshape += [g, 1]
        goff = (np.arange(ng, dtype=np.intp) * K).reshape(gshape)
        vals = table[(idx.reshape(split).astype(np.intp) + goff).reshape(idx.shape)]
    out = vals[..., 0] if d == 1 else np.moveaxis(vals, -1, va + 1).reshape(dense)
    if scale is not None:
        out = out * np.asarray(scale).astype(out_dtype)
        if out.shape != dense:
            raise ValueError(f"scale does not broadcast to the weight shape {dense}")
    return np.ascontiguousarray(out)
