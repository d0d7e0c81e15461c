"""Searched quantization grids: the scale (and offset) of each block chosen to minimise its
(importance-weighted) squared error, instead of min/max.

Min/max spends levels on a block's extremes; a slightly smaller scale that clips one outlier
usually lowers the error of the other values more than it raises that one's. As llama.cpp's
K-quants do, each block tries a few grids around min/max, rounds to each, refits the scale (and
offset) to the rounded codes by least squares, and keeps the best. Weights `h` (the input
activations' second moments from calibration, or ones) make the error the one the layer's
output sees: sum h * (w - w_hat)**2.

Blocks are rows of a 2-D array (blocks, values); the work is vectorised over blocks.
"""
from __future__ import annotations

import numpy as np

try:  # the native twins of the searches; a source checkout without a build runs the references
    from .. import _native
    if not hasattr(_native, "fit_affine"):  # an older build
        _native = None
except ImportError:
    _native = None

# Candidate scales of the symmetric search: max|w| / qmax times these (1.0 = min/max; below
# clips the largest magnitudes, above spaces the levels wider), each refitted to its rounded
# codes. Over random blocks of 32 at 4 bits the result is within 0.2 % of a brute-force search
# over 4,000 scales (total error; 5 % for the worst block).
SYMMETRIC_FACTORS = np.linspace(0.45, 1.3, 18)
# Rounds of re-rounding to the best scale and refitting it (each lowers the error or keeps it).
REFINE_ROUNDS = 3
# Candidate spans of the affine search, in levels: (qmax - qmin) + these over the block's range.
AFFINE_SPANS = np.linspace(-1.0, 1.0, 21)


def _weights(w: np.ndarray, h: np.ndarray | None) -> np.ndarray:
    """Per-value weights; a block whose weights are all zero (never seen by the data) counts
    every value alike."""
    if h is None:
        return np.ones_like(w)
    h = np.array(np.broadcast_to(np.asarray(h, np.float32), w.shape))
    h[~(h.sum(axis=1) > 0)] = 1.0
    return h


def fit_symmetric(w: np.ndarray, qmin: int, qmax: int, h: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(scale (B,), codes (B, L)) for w ≈ codes * scale, codes in [qmin, qmax] (qmin <= -1,
    qmax >= 1), minimising sum(h * (w - codes * scale)**2) per block. Runs on the native twin
    (src/native/compress/search.cpp, bit for bit this reference) where the extension is built."""
    w = np.asarray(w, np.float32)
    hw = _weights(w, h)
    if _native is not None and w.ndim == 2 and w.size:
        return _native.fit_symmetric(np.ascontiguousarray(w), np.ascontiguousarray(hw, np.float32), qmin, qmax,
                                     SYMMETRIC_FACTORS, REFINE_ROUNDS)
    return _fit_symmetric_reference(w, hw, qmin, qmax)


def _fit_symmetric_reference(w: np.ndarray, hw: np.ndarray, qmin: int, qmax: int) -> tuple[np.ndarray, np.ndarray]:
    half = min(-qmin, qmax)
    amax = np.abs(w).max(axis=1, initial=0.0).astype(np.float64)
    best_err = np.full(len(w), np.inf)
    best_s = np.where(amax > 0, amax / half, 1.0)
    best_q = np.zeros(w.shape, np.float32)
    total = (hw * w * w).sum(axis=1, dtype=np.float64)
    for k in range(len(SYMMETRIC_FACTORS) + REFINE_ROUNDS):  # the candidates, then re-rounding to the best
        s0 = np.where(amax > 0, amax * SYMMETRIC_FACTORS[k] / half, 1.0) if k < len(SYMMETRIC_FACTORS) else best_s
        q = np.clip(np.rint(w / s0[:, None].astype(np.float32)), qmin, qmax)
        s, err = _refit_scale(w, hw, q, total, s0)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_s = np.where(better, s, best_s)
        best_q[better] = q[better]
    return best_s.astype(np.float32), best_q


def _refit_scale(w, hw, q, total, fallback):
    """The least-squares scale for fixed codes q and its error: s = sum(h w q) / sum(h q^2)."""
    hq = hw * q
    sqq = (hq * q).sum(axis=1, dtype=np.float64)
    swq = (hq * w).sum(axis=1, dtype=np.float64)
    ok = sqq > 0
    s = np.where(ok, swq / np.where(ok, sqq, 1.0), fallback)
    s = np.where(s > 0, s, fallback)
    err = np.where(ok, total - swq * swq / np.where(ok, sqq, 1.0), total)
    return s, np.maximum(err, 0.0)


def fit_affine(w: np.ndarray, qmin: int, qmax: int, h: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scale (B,), offset (B,), codes (B, L)) for w ≈ (codes - qmin) * scale + offset, codes in
    [qmin, qmax], minimising sum(h * (w - w_hat)**2) per block. The offset is a float (a block's
    minimum need not sit on the grid), as in llama.cpp's Q4_1/K-quants and HQQ. Runs on the
    native twin (bit for bit this reference) where the extension is built."""
    w = np.asarray(w, np.float32)
    hw = _weights(w, h)
    if _native is not None and w.ndim == 2 and w.size:
        s, m, q = _native.fit_affine(np.ascontiguousarray(w), np.ascontiguousarray(hw, np.float32), qmax - qmin,
                                     AFFINE_SPANS)
        return s, m, q + qmin
    return _fit_affine_reference(w, hw, qmin, qmax)


def _fit_affine_reference(w: np.ndarray, hw: np.ndarray, qmin: int, qmax: int
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    levels = qmax - qmin
    lo = w.min(axis=1, initial=np.inf).astype(np.float64)
    hi = w.max(axis=1, initial=-np.inf).astype(np.float64)
    rng = hi - lo
    flat = rng <= 0
    sh = hw.sum(axis=1, dtype=np.float64)
    shw = (hw * w).sum(axis=1, dtype=np.float64)
    # a constant block: codes 0, offset = its value
    best_s = np.where(flat, 1.0, rng / levels)
    best_m = np.where(flat, lo, lo)
    best_q = np.zeros(w.shape, np.float32)
    best_err = np.where(flat, 0.0, np.inf)
    lo32 = lo.astype(np.float32)[:, None]
    for d in AFFINE_SPANS:
        iscale = np.where(flat, 0.0, (levels + d) / np.where(flat, 1.0, rng)).astype(np.float32)
        q = np.clip(np.rint((w - lo32) * iscale[:, None]), 0, levels)
        hq = hw * q
        sq = hq.sum(axis=1, dtype=np.float64)
        sqq = (hq * q).sum(axis=1, dtype=np.float64)
        sqw = (hq * w).sum(axis=1, dtype=np.float64)
        det = sh * sqq - sq * sq
        ok = (det > 0) & ~flat
        det1 = np.where(ok, det, 1.0)
        s = np.where(ok, (sh * sqw - sq * shw) / det1, best_s)
        m = np.where(ok, (sqq * shw - sq * sqw) / det1, best_m)
        good = ok & (s > 0)
        r = w - (q * s[:, None].astype(np.float32) + m[:, None].astype(np.float32))
        err = np.where(good, (hw * r * r).sum(axis=1, dtype=np.float64), np.inf)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_s = np.where(better, s, best_s)
        best_m = np.where(better, m, best_m)
        best_q[better] = q[better]
    return best_s.astype(np.float32), best_m.astype(np.float32), best_q + qmin
