"""Pruning: which elements of a weight to zero (keep-masks); the stored form, a bit mask and the
kept values, is `pocketml.formats.sparse`'s.

Magnitude pruning removes exactly floor(sparsity * n) of the smallest |w| (or whole blocks by L2
norm); threshold pruning every |w| <= threshold; n:m pruning follows Core ML's n_m_ratio: n of
every m consecutive elements along `axis` are ZERO (2:4 keeps the 2 largest |w| of every 4).
Ties remove the earlier position first.
"""
from __future__ import annotations

import math

import numpy as np

from ..formats.args import check_axis, check_int, real_array


def _sparsity(sparsity) -> float:
    try:
        s = float(sparsity)
    except (TypeError, ValueError):
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}") from None
    if not 0.0 <= s < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    return s


def _n_removed(sparsity: float, n: int) -> int:
    # floor(sparsity * n), robust to float error such as 0.29 * 100 = 28.999999999999996
    return min(n, math.floor(round(sparsity * n, 6)))


def _smallest(scores: np.ndarray, r: int) -> np.ndarray:
    """Keep-mask over flat `scores` removing the r smallest (ties: the earlier position first)."""
    keep = np.ones(scores.size, bool)
    keep[np.argsort(scores.reshape(-1), kind="stable")[:r]] = False
    return keep.reshape(scores.shape)


def prune_magnitude(w, sparsity, block_size=1, axis=1) -> np.ndarray:
    """Keep-mask (True = kept) removing exactly floor(sparsity * n) of the smallest |w|.

    block_size > 1: blocks of block_size consecutive elements along `axis` (which it must
    divide) are ranked by L2 norm and floor(sparsity * number of blocks) whole blocks removed.
    """
    w = real_array(w)
    s = _sparsity(sparsity)
    bs = check_int(block_size, "block_size", 1)
    a = np.abs(w.astype(np.float64))
    if bs == 1:
        return _smallest(a, _n_removed(s, a.size))
    ax = check_axis(axis, w.ndim)
    if w.shape[ax] % bs:
        raise ValueError(f"block_size {bs} does not divide the weight's dimension {w.shape[ax]} "
                         f"on axis {ax}")
    moved = np.moveaxis(a, ax, -1)
    blocks = moved.reshape(moved.shape[:-1] + (moved.shape[-1] // bs, bs))
    norm = np.sqrt((blocks * blocks).sum(axis=-1))
    keep = _smallest(norm, _n_removed(s, norm.size))
    mask = np.repeat(keep[..., None], bs, axis=-1).reshape(moved.shape)
    return np.ascontiguousarray(np.moveaxis(mask, -1, ax))


def prune_threshold(w, threshold) -> np.ndarray:
    """Keep-mask removing every element with |w| <= threshold (threshold >= 0)."""
    w = real_array(w)
    t = float(threshold)
    if not t >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold!r}")
    return np.abs(w) > t


def prune_nm(w, n, m, axis=1) -> np.ndarray:
    """n:m sparsity (Core ML's convention): in every m consecutive elements along `axis`, the n
    smallest |w| are ZERO (ties: the earlier position first), so 2:4 keeps 2 of every 4."""
    w = real_array(w)
    m = check_int(m, "m", 1)
    n = check_int(n, "n", 0)
    if n > m:
        raise ValueError(f"n:m sparsity needs n <= m, got {n}:{m}")
    ax = check_axis(axis, w.ndim)
    if w.shape[ax] % m:
        raise ValueError(f"m = {m} does not divide the weight's dimension {w.shape[ax]} on axis {ax}")
    moved = np.moveaxis(np.abs(w.astype(np.float64)), ax, -1)
    blocks = moved.reshape(moved.shape[:-1] + (moved.shape[-1] // m, m))
    keep = np.ones(blocks.shape, bool)
    np.put_along_axis(keep, np.argsort(blocks, axis=-1, kind="stable")[..., :n], False, axis=-1)
    return np.ascontiguousarray(np.moveaxis(keep.reshape(moved.shape), -1, ax))
