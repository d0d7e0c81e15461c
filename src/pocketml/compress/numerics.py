"""Every compress/decompress formula of weight compression, in NumPy only (no torch).

The compressor, the runtime's compressed-weight ops (`pocketml.ir.ops.compressed`) and
decompression all call these functions, so there is one definition of each encoding.

Conventions
-----------
Bit packing
    `pack_bits` stores unsigned values of `nbits` bits densely, LSB-first: value i occupies bits
    [i*nbits, (i+1)*nbits) of the little-endian bit stream (bit b of the stream is bit b % 8 of
    byte b // 8). The last byte is zero-padded.
1-D k-means (`kmeans_1d`)
    Optimal (minimum weighted sum of squares) clustering of the sorted distinct values (equal
    values merged, their weights summed, -0.0 counted as +0.0) by dynamic programming over prefix
    sums, D[r][i] = min_j D[r-1][j] + SSE(j, i). Each row is solved by divide and conquer over
    the monotone (leftmost) argmin, also bounded below by the previous row's argmin (O(k m log m)
    for m points), vectorised one recursion level at a time; several problems (the groups of a
    grouped palettization) are solved in one batch. Sums are taken about the weighted median
    (the first distinct value at which the cumulative weight reaches half the total; it lies
    within one standard deviation of the mean, which keeps the prefix sums of squares well
    conditioned). With at most `max_exact` (default 4096) distinct values the result is EXACT
    (and verified against brute force in the tests). Above that:
      1. the exact DP runs over at most 4096 bins of consecutive distinct values: a bin starts
         at each of the 2048 widest gaps (isolating outliers and sparse tails; among equal gaps
         the first ones) and wherever the rank crosses a multiple of n/2048. A bin's inner
         spread is counted exactly, so this is the optimum among partitions that do not split a
         bin;
      2. up to 3 times, the DP is solved again with the 2 bins on each side of every boundary
         split: into their values when those number at most max(bins, 2048), else into
         sub-bins of ceil(values / max(bins, 2048)) consecutive values, split further by the
         next round;
      3. Lloyd iterations over all distinct values move the boundaries to the midpoints of the
         cluster means until they stop moving (or 200 rounds), never raising the cost.
    Measured excess cost over the exact optimum (float32 data; Gaussian, Student-t(3), Laplace,
    uniform, bimodal mixture, Cauchy): 4.2M values, k=16: 0 to 1.7e-8 relative (18 runs), 1.1e-6
    at worst seen (Laplace); 32768 values: 0 in 98% of problems, at most 8e-6 for k=16 and 3e-5
    for k=64 (64 problems per distribution). The tests assert <= 1e-3 (0.1%).
    Native core: `_kmeans_1d_many` dispatches to the C++ kernel of `pocketml._native`
    (src/native/kmeans.cpp) when the extension is built, else to the NumPy reference here
    (`_kmeans_1d_many_reference`). The C++ repeats every floating-point operation in the
    reference's order (np.cumsum is sequential; np.add.reduceat adds the first value to NumPy's
    pairwise sum of the rest; no FMA), so both return identical centers and labels
    (tests/native compare them bit for bit). It is 8x (one problem of 4.2M values) to 20x (128
    groups of 32768) faster on 2 cores: radix sort, vectorised DP, threads across problems or
    inside one big problem (benchmarks/bench_kmeans.py).
Vector k-means (cluster_dim > 1)
    Deterministic LBG: start from the (weighted) mean, repeatedly split the clusters with the
    largest error along their per-coordinate spread, with Lloyd iterations after each split.
Linear quantization ranges (Core ML's)
    symmetric: int8 [-127, 127], int4 [-7, 7] (zero_point None); uint8 [0, 254] with zero point
    127, uint4 [0, 14] with zero point 7. scale = max|w| / 127 (or / 7), so both signs use the
    same range and the largest magnitude is exact.
    affine: the full range, int8 [-128, 127], uint8 [0, 255], int4 [-8, 7], uint4 [0, 15];
    [lo, hi] = [min(w, 0), max(w, 0)] so 0 is exactly representable, scale = (hi - lo) /
    (qmax - qmin), zero_point = clip(rint(qmin - lo / scale)) stored as an integer of the data's
    dtype (int8 for int8/int4, uint8 for uint8/uint4).
    Rounding is half to even (np.rint). A slice of all zeros gets scale 1. The error of every
    element is at most scale / 2 (plus float32 rounding).
    4-bit data are held one value per int8/uint8 element; `pack_quantized` packs them as nibbles.
n:m pruning
    `prune_nm(w, n, m)` follows Core ML's n_m_ratio: n of every m consecutive elements along
    `axis` are ZERO (2:4 keeps the 2 largest |w| of every 4).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

try:  # the native core; a source checkout without a build runs the NumPy references instead
    from .. import _native
except ImportError:  # pragma: no cover - depends on the build
    _native = None

MAX_EXACT = 4096  # kmeans_1d: exact DP up to this many distinct values, binned DP + Lloyd above
_LLOYD_1D_ITERS = 200
_REFINE_ROUNDS = 3  # binned k-means: DP re-solves with the bins around the boundaries split
_REFINE_BINS = 2  # bins split on each side of a boundary
_NBINS = 4096  # binned k-means: at most this many bins (but at most max_exact) in the first DP
_LLOYD_ND_ITERS = 20

# ------------------------------------------------------------------------------------------
# argument checks


def _int(value, name: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be {rng}, got {value}")
    return value


def _nbits(nbits) -> int:
    return _int(nbits, "nbits", 1, 8)


def _axis(axis, rank: int, name: str = "axis") -> int:
    axis = _int(axis, name)
    if not -rank <= axis < rank:
        raise ValueError(f"{name} {axis} out of range for a rank-{rank} weight")
    return axis % rank


def _finite(a: np.ndarray, what: str) -> None:
    if a.dtype.kind in "fc" and a.size and not np.isfinite(a).all():
        raise ValueError(f"{what} contains NaN or infinity")


def _float_weight(w, what: str = "weight") -> np.ndarray:
    a = np.asarray(w)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be a real array, got dtype {a.dtype}")
    _finite(a, what)
    return a


# ------------------------------------------------------------------------------------------
# bit packing


def packed_size(count: int, nbits: int) -> int:
    """Bytes holding `count` values of `nbits` bits packed densely."""
    return (_int(count, "count", 0) * _nbits(nbits) + 7) // 8


def pack_bits(values: np.ndarray, nbits: int) -> np.ndarray:
    """Unsigned ints < 2**nbits (any shape, read row-major) packed densely LSB-first into uint8."""
    nbits = _nbits(nbits)
    v = np.asarray(values)
    if v.dtype == np.bool_:
        v = v.view(np.uint8)
    elif v.dtype.kind not in "iu":
        raise ValueError(f"pack_bits packs unsigned integers, got dtype {v.dtype}")
    flat = v.reshape(-1)
    n = flat.size
    if n and (flat.min() < 0 or flat.max() >= (1 << nbits)):
        raise ValueError(f"pack_bits: values must lie in [0, {(1 << nbits) - 1}] for nbits={nbits}, "
                         f"got [{flat.min()}, {flat.max()}]")
    if nbits == 8:
        return flat.astype(np.uint8)
    if nbits == 1:
        return np.packbits(flat.astype(np.uint8, copy=False), bitorder="little")
    # 8 values of nbits bits fill exactly nbits bytes: build one little-endian 64-bit word per 8
    groups = -(-n // 8)
    buf = np.zeros(groups * 8, np.uint64)
    buf[:n] = flat
    buf = buf.reshape(groups, 8)
    words = buf[:, 0].copy()
    for j in range(1, 8):
        words |= buf[:, j] << np.uint64(j * nbits)
    out = words.astype("<u8").view(np.uint8).reshape(groups, 8)[:, :nbits].reshape(-1)
    return out[:packed_size(n, nbits)].copy()


def unpack_bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """The first `count` values of a `pack_bits` stream, as uint8 1-D (extra bytes are ignored)."""
    nbits = _nbits(nbits)
    count = _int(count, "count", 0)
    p = np.asarray(packed)
    if p.dtype != np.uint8:
        raise ValueError(f"packed bits must be uint8, got dtype {p.dtype}")
    p = p.reshape(-1)
    need = packed_size(count, nbits)
    if p.size < need:
        raise ValueError(f"packed stream of {p.size} bytes is too short for {count} values of "
                         f"{nbits} bits ({need} bytes needed)")
    if nbits == 8:
        return p[:count].copy()
    if nbits == 1:
        return np.unpackbits(p[:need], count=count, bitorder="little")
    groups = -(-count // 8)
    raw = np.zeros(groups * nbits, np.uint8)
    raw[:need] = p[:need]
    buf = np.zeros((groups, 8), np.uint8)
    buf[:, :nbits] = raw.reshape(groups, nbits)
    words = buf.view("<u8").reshape(groups)
    out = np.empty((groups, 8), np.uint8)
    mask = np.uint64((1 << nbits) - 1)
    for j in range(8):
        out[:, j] = (words >> np.uint64(j * nbits)) & mask
    return out.reshape(-1)[:count]


# ------------------------------------------------------------------------------------------
# 1-D k-means


def kmeans_1d(x: np.ndarray, k: int, weights: np.ndarray | None = None, *,
              max_exact: int = MAX_EXACT) -> tuple[np.ndarray, np.ndarray]:
    """Optimal 1-D k-means: minimises sum(weights * (x - centers[labels])**2).

    Returns (centers, labels): centers float64 ascending, at most k of them (fewer when x has
    fewer distinct values of positive weight), each the weighted mean of its cluster, and labels
    (int64, x's shape). Exact when x has at most `max_exact` distinct values; see the module
    docstring for larger inputs (binned DP, refinement and Lloyd polish: within 1e-6 measured).
    Points of weight 0 do not move the centers and are labelled with their nearest center.
    """
    x = np.asarray(x)
    k = _int(k, "k", 1)
    w = None
    if weights is not None:
        w = np.asarray(weights)
        if w.shape != x.shape:
            raise ValueError(f"weights shape {w.shape} differs from x shape {x.shape}")
        w = w.reshape(-1)
    (centers, labels), = _kmeans_1d_many([(x.reshape(-1), w)], k, max_exact)
    return centers, labels.reshape(x.shape)


def _unique_weighted(x: np.ndarray, w: np.ndarray | None):
    """Sorted distinct values of x (float64, -0.0 as +0.0) with their summed weights (in x's
    stable order), zero-weight ones dropped; the counts when there are no positive weights."""
    n = x.size
    if w is None:
        xs = np.sort(x)
    else:
        order = np.argsort(x, kind="stable")
        xs = x[order]
    new = np.empty(n, bool)
    new[0] = True
    np.not_equal(xs[1:], xs[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    u = xs[starts].astype(np.float64) + 0.0  # + 0.0: whichever zero sorted first, +0.0
    if w is not None:
        ws = np.add.reduceat(w[order], starts)
        if (ws > 0).any():
            keep = ws > 0
            return u[keep], ws[keep]
    return u, np.diff(np.append(starts, n)).astype(np.float64)


def _checked_problems(problems, k, max_exact):
    """Validated (x 1-D float, weights 1-D float64 or None) problems, k and max_exact."""
    k = _int(k, "k", 1)
    max_exact = _int(max_exact, "max_exact", 2)
    checked = []
    for x, w in problems:
        x = _float_weight(x, "x").reshape(-1)
        if x.size == 0:
            raise ValueError("kmeans_1d needs at least one value")
        if x.dtype.kind != "f":
            x = x.astype(np.float64)
        if w is not None:
            w = np.asarray(w, dtype=np.float64).reshape(-1)
            if w.size != x.size:
                raise ValueError("weights must have one entry per value")
            _finite(w, "weights")
            if (w < 0).any():
                raise ValueError("weights must be non-negative")
        checked.append((x, w))
    return checked, k, max_exact


def _kmeans_1d_many(problems, k: int, max_exact: int = MAX_EXACT, *, uint8_labels=False):
    """kmeans_1d for several independent (x 1-D, weights 1-D or None) problems, batched:
    [(centers, labels)], labels int64 (uint8 with uint8_labels, for k <= 256).

    The one dispatch between the native kernel (pocketml._native, when built) and the NumPy
    reference; both return identical centers and labels."""
    impl = _kmeans_1d_many_reference if _native is None else _kmeans_1d_many_native
    return impl(problems, k, max_exact, uint8_labels=uint8_labels)


def _uint8_labels(uint8_labels, k: int) -> bool:
    if uint8_labels and k > 256:
        raise ValueError(f"uint8 labels need k <= 256, got k = {k}")
    return bool(uint8_labels)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _kmeans_1d_many_native(problems, k: int, max_exact: int = MAX_EXACT, *, uint8_labels=False):
    """_kmeans_1d_many_reference in C++ (src/native/kmeans.cpp), threads across the problems."""
    checked, k, max_exact = _checked_problems(problems, k, max_exact)
    uint8_labels = _uint8_labels(uint8_labels, k)
    xs = []
    for x, _ in checked:
        if x.dtype == np.float16:
            x = x.astype(np.float32)  # exact, and the same order and ties
        elif x.dtype not in (np.float32, np.float64):  # longdouble: the reference keeps it
            return _kmeans_1d_many_reference(checked, k, max_exact, uint8_labels=uint8_labels)
        xs.append(np.ascontiguousarray(x))
    ws = [None if w is None else np.ascontiguousarray(w) for _, w in checked]
    return _native.kmeans_1d_many(xs, ws, k, min(max_exact, 1 << 62), _cpu_count(), uint8_labels)


def _kmeans_1d_many_reference(problems, k: int, max_exact: int = MAX_EXACT, *,
                              uint8_labels=False):
    """The NumPy definition of _kmeans_1d_many (see the module docstring)."""
    checked, k, max_exact = _checked_problems(problems, k, max_exact)
    label_dtype = np.uint8 if _uint8_labels(uint8_labels, k) else np.int64
    prepared = [(x, w, *_unique_weighted(x, w)) for x, w in checked]
    bounds: list[np.ndarray | None] = [None] * len(prepared)
    dp: list[int] = []  # indices of problems solved by the DP
    for p, (x, w, u, ws) in enumerate(prepared):
        m = u.size
        if m <= k:
            bounds[p] = np.arange(m + 1)
        elif k == 1:
            bounds[p] = np.array([0, m])
        else:
            dp.append(p)
    if dp:
        _solve_dp(prepared, dp, k, max_exact, bounds)
    out = []
    for p, (x, w, u, ws) in enumerate(prepared):
        b = bounds[p]
        centers = np.add.reduceat(ws * u, b[:-1]) / np.add.reduceat(ws, b[:-1])
        # the partition's own labels: a value belongs to the cluster whose range holds it
        labels = np.searchsorted(u[b[1:-1] - 1], x, side="left")
        if w is not None and (w == 0).any():
            near = np.searchsorted((centers[:-1] + centers[1:]) / 2, x[w == 0], side="left")
            labels[w == 0] = near
        out.append((centers, labels.astype(label_dtype)))
    return out


def _solve_dp(prepared, dp: list[int], k: int, max_exact: int, bounds: list) -> None:
    """Fill bounds[p] (k+1 boundaries into the distinct values) for every problem p in dp."""
    shifted, coarse = [], []
    for p in dp:
        x, w, u, ws = prepared[p]
        # centring on the weighted median (within one standard deviation of the mean) keeps the
        # prefix sums of squares well conditioned; np.cumsum's order is one the C++ can repeat
        cw = np.cumsum(ws)
        shift = u[np.searchsorted(cw, cw[-1] / 2)]
        shifted.append((u - shift, ws))
        nbins = max(min(max_exact, _NBINS), 2 * k + 2)  # >= k+1 bins, as the DP needs
        coarse.append(_bin_edges(u, nbins) if u.size > max(max_exact, nbins) else None)
    B = _dp_on_edges(shifted, coarse, k)
    binned = [i for i, e in enumerate(coarse) if e is not None]
    for _ in range(_REFINE_ROUNDS):
        # re-solve with the bins around each boundary split: into their values where that is
        # cheap, else into sub-bins of `step` consecutive values, which the next round splits
        refine, edges = [], []
        for i in binned:
            e = coarse[i]
            nb = e.size - 1
            cb = np.searchsorted(e, B[i, 1:-1], side="right") - 1
            win = np.unique(np.clip(cb[:, None] + np.arange(-_REFINE_BINS, _REFINE_BINS)[None, :],
                                    0, nb - 1))
            starts, lens = e[win], e[win + 1] - e[win]
            if lens.max() == 1:  # already split into values
                continue
            step = -(-int(lens.sum()) // max(nb, 2048))  # values per sub-bin
            sub = -(-lens // step)  # sub-bins per split bin
            first = np.cumsum(sub) - sub
            mark = np.zeros(e[-1] + 1, bool)
            mark[e] = True
            mark[np.repeat(starts, sub) + step * (np.arange(sub.sum()) - np.repeat(first, sub))] = True
            coarse[i] = np.flatnonzero(mark)
            refine.append(i)
            edges.append(coarse[i])
        if not refine:
            break
        B[refine] = _dp_on_edges([shifted[i] for i in refine], edges, k)
    if binned:
        B[binned] = _lloyd_1d_polish([shifted[i] for i in binned], B[binned])
    for i, p in enumerate(dp):
        bounds[p] = B[i]


def _dp_on_edges(shifted, edges_of, k: int) -> np.ndarray:
    """Exact DP over the points (or the bins given by edges into them) of each problem; returns
    boundaries into the points, (P, k+1)."""
    pts = []
    for (uc, ws), edges in zip(shifted, edges_of):
        a, b = ws, ws * uc
        c = b * uc
        if edges is not None:
            a, b, c = (np.add.reduceat(v, edges[:-1]) for v in (a, b, c))
        pts.append((a, b, c))
    B = _dp_batch(pts, k)
    for i, edges in enumerate(edges_of):
        if edges is not None:
            B[i] = edges[B[i]]
    return B


def _bin_edges(u: np.ndarray, nbins: int) -> np.ndarray:
    """Edges (into sorted distinct values u) of at most `nbins` bins: a bin starts at each of the
    nbins/2 widest gaps between consecutive values (isolating sparse tails and outliers; among
    equal gaps the first ones) and wherever the rank crosses a multiple of 2 * len(u) / nbins
    (bounding the values per bin)."""
    n = u.size
    half = max(nbins // 2, 1)
    new = np.zeros(n, bool)
    new[0] = True
    q = (np.arange(n, dtype=np.int64) * half) // n
    new[1:] = q[1:] != q[:-1]
    gaps = np.diff(u)
    if half < gaps.size:
        t = np.partition(gaps, gaps.size - half)[gaps.size - half]  # the half-th widest gap
        wide = np.flatnonzero(gaps > t)
        new[1 + wide] = True
        new[1 + np.flatnonzero(gaps == t)[:half - wide.size]] = True
    else:
        new[:] = True
    return np.append(np.flatnonzero(new), n)


def _prefix_layout(arrays_per_problem):
    """Concatenate per-problem prefix sums (each with a leading 0); returns (arrays, bases, sizes)."""
    sizes = np.array([len(a[0]) for a in arrays_per_problem], dtype=np.int64)
    bases = np.concatenate([[0], np.cumsum(sizes + 1)[:-1]]).astype(np.int64)
    out = []
    for q in range(len(arrays_per_problem[0])):
        parts = []
        for arrs in arrays_per_problem:
            parts.append(np.concatenate([[0.0], np.cumsum(arrs[q])]))
        out.append(np.concatenate(parts))
    return out, bases, sizes


def _dp_batch(pts, k: int) -> np.ndarray:
    """Exact k-segment DP for each problem (weights, w*x, w*x^2 per point; every size > k >= 2).

    Returns boundaries (P, k+1) into each problem's points. Row r is solved for all problems at
    once by divide and conquer over the monotone (leftmost) argmin, one recursion level at a time.
    """
    (PW, P1, P2), bases, m = _prefix_layout(pts)
    P = len(pts)
    with np.errstate(divide="ignore", invalid="ignore"):
        D = P2 - P1 * P1 / PW  # row 1: cost of one cluster over points [0, i)
    D[bases] = np.inf
    big = np.int64(PW.size)
    opts = []
    prev = np.zeros(PW.size, np.int64)
    for r in range(2, k + 1):
        # D[r][i] = P2[i] + min_j E[j] - (P1[i] - P1[j])^2 / (PW[i] - PW[j]), E = D[r-1] - P2
        E = D - P2
        a_lo = np.full(P, r, np.int64)
        a_hi = m - k + r
        j_lo = np.full(P, r - 1, np.int64)
        j_hi = a_hi - 1
        base = bases.copy()
        Dn = np.full(PW.size, np.inf)
        opt = np.zeros(PW.size, np.int64)
        while a_lo.size:
            mid = (a_lo + a_hi) >> 1
            gi = base + mid
            jh = np.minimum(j_hi, mid - 1)
            # opt[r-1][i] <= opt[r][i] (the last cluster starts no earlier with more clusters)
            jl = np.minimum(np.maximum(j_lo, prev[gi]), jh)
            L = jh - jl + 1  # >= 1 by the D&C invariant
            starts = np.cumsum(L)
            starts -= L
            gj = np.repeat(base + jl - starts, L)
            gj += np.arange(gj.size, dtype=np.int64)
            dW = np.repeat(PW[gi], L)
            dW -= PW[gj]
            d1 = np.repeat(P1[gi], L)
            d1 -= P1[gj]
            d1 *= d1
            d1 /= dW
            val = E[gj]
            val -= d1
            mins = np.minimum.reduceat(val, starts)
            jstar = np.minimum.reduceat(np.where(val == np.repeat(mins, L), gj, big), starts) - base
            Dn[gi] = mins + P2[gi]
            opt[gi] = jstar
            left = a_lo <= mid - 1
            right = mid + 1 <= a_hi
            a_lo, a_hi, j_lo, j_hi, base = (
                np.concatenate([a_lo[left], (mid + 1)[right]]),
                np.concatenate([(mid - 1)[left], a_hi[right]]),
                np.concatenate([j_lo[left], jstar[right]]),
                np.concatenate([jstar[left], j_hi[right]]),
                np.concatenate([base[left], base[right]]))
        D = Dn
        opts.append(opt)
        prev = opt
    B = np.zeros((P, k + 1), np.int64)
    B[:, k] = m
    for r in range(k, 1, -1):
        B[:, r - 1] = opts[r - 2][bases + B[:, r]]
    return B


def _lloyd_1d_polish(problems, B: np.ndarray, iters: int = _LLOYD_1D_ITERS) -> np.ndarray:
    """Lloyd iterations on sorted distinct values (batched); boundaries B (P, k+1) move to the
    midpoints between cluster means until they stop moving. The cost never increases."""
    (PW, P1), pbases, m = _prefix_layout([(ws, ws * uc) for uc, ws in problems])
    X = np.concatenate([uc for uc, _ in problems])
    vbases = np.concatenate([[0], np.cumsum(m)[:-1]]).astype(np.int64)
    B = B.copy()
    active = np.ones(len(problems), bool)
    steps = int(np.ceil(np.log2(m.max() + 1))) + 1
    for _ in range(iters):
        idx = np.flatnonzero(active)
        b = B[idx]
        g = pbases[idx, None] + b
        c = (P1[g[:, 1:]] - P1[g[:, :-1]]) / (PW[g[:, 1:]] - PW[g[:, :-1]])
        t = (c[:, :-1] + c[:, 1:]) / 2
        # count the values <= t within each problem (a batched binary search)
        lo = np.broadcast_to(vbases[idx, None], t.shape).copy()
        hi = lo + m[idx, None]
        for _ in range(steps):
            act = lo < hi
            mid = np.minimum((lo + hi) >> 1, X.size - 1)
            go = act & (X[mid] <= t)
            lo = np.where(go, mid + 1, lo)
            hi = np.where(act & ~go, mid, hi)
        nb = b.copy()
        nb[:, 1:-1] = lo - vbases[idx, None]
        moved = (nb != b).any(axis=1) & (np.diff(nb, axis=1) > 0).all(axis=1)
        B[idx[moved]] = nb[moved]
        active[idx[~moved]] = False
        if not active.any():
            break
    return B


# ------------------------------------------------------------------------------------------
# vector k-means (cluster_dim > 1)


def _kmeans_nd(X: np.ndarray, K: int, W: np.ndarray | None = None,
               iters: int = _LLOYD_ND_ITERS) -> tuple[np.ndarray, np.ndarray]:
    """Weighted k-means of the rows of X (N, d); W (N, d) per-coordinate weights or None.

    Distinct rows that fit in K are returned exactly; otherwise deterministic LBG splitting.
    Returns centers (n <= K, d) and labels (N,).
    """
    N, d = X.shape
    if max(np.unique(X[:, j]).size for j in range(d)) <= K:  # cheap guard before a row unique
        U, inv = np.unique(X, axis=0, return_inverse=True)
        if len(U) <= K:
            return U, inv.reshape(-1)
    Wt = np.ones_like(X) if W is None else W
    tot = Wt.sum(axis=0)
    tot[tot == 0] = 1
    C = ((Wt * X).sum(axis=0) / tot)[None, :]
    labels = np.zeros(N, np.int64)
    while len(C) < K:
        n = len(C)
        err = (Wt * (X - C[labels]) ** 2).sum(axis=1)
        sse = np.bincount(labels, weights=err, minlength=n)
        split = np.argsort(-sse, kind="stable")[:min(n, K - n)]
        spread = np.empty_like(C)
        for j in range(d):
            den = np.bincount(labels, weights=Wt[:, j], minlength=n)
            var = np.bincount(labels, weights=Wt[:, j] * (X[:, j] - C[labels, j]) ** 2, minlength=n)
            spread[:, j] = np.sqrt(np.where(den > 0, var / np.where(den > 0, den, 1), 0))
        delta = 0.5 * spread[split]
        C = np.concatenate([C, C[split] + delta])
        C[split] -= delta
        labels, C = _lloyd_nd(X, Wt, C, iters)
    labels, C = _lloyd_nd(X, Wt, C, iters)
    return C, labels


def _assign(X, Wt, C, weighted: bool) -> np.ndarray:
    out = np.empty(len(X), np.int64)
    chunk = max(1, (1 << 22) // max(len(C), 1))
    c2 = C * C
    for s in range(0, len(X), chunk):
        x = X[s:s + chunk]
        if weighted:
            wt = Wt[s:s + chunk]
            dist = wt @ c2.T - 2 * (wt * x) @ C.T
        else:
            dist = c2.sum(axis=1)[None, :] - 2 * x @ C.T
        out[s:s + chunk] = np.argmin(dist, axis=1)
    return out


def _lloyd_nd(X, Wt, C, iters):
    weighted = not np.all(Wt == 1)
    labels = None
    for _ in range(iters):
        new = _assign(X, Wt, C, weighted)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        C = C.copy()
        for j in range(X.shape[1]):
            den = np.bincount(labels, weights=Wt[:, j], minlength=len(C))
            num = np.bincount(labels, weights=Wt[:, j] * X[:, j], minlength=len(C))
            C[:, j] = np.where(den > 0, num / np.where(den > 0, den, 1), C[:, j])  # empty: kept
    return labels, C


# ------------------------------------------------------------------------------------------
# palettization

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
    w = _float_weight(w)
    if w.ndim == 0 or w.size == 0:
        raise ValueError(f"palettize needs a non-empty weight of rank >= 1, got shape {w.shape}")
    nbits = _nbits(nbits)
    K = 1 << nbits
    axis = _axis(axis, w.ndim)
    d = _int(cluster_dim, "cluster_dim", 1)
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
        gs = _int(group_size, "group_size", 1)
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
        _finite(wt, "weights")
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
    _finite(lut, "custom lut")
    if idx.size != count or idx.dtype.kind not in "iu":
        raise ValueError(f"custom indices must be {count} integers, got {idx.size} of dtype {idx.dtype}")
    idx = idx.reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= lut.shape[0]):
        raise ValueError(f"custom indices must lie in [0, {lut.shape[0]})")
    return lut.astype(np.float64), idx


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
    va = _axis(vector_axis, r, "vector_axis")
    K, d = lut.shape[-2:]
    if K < 1 or d < 1:
        raise ValueError(f"lut has an empty table: shape {lut.shape}")
    dense = idx.shape[:va] + (idx.shape[va] * d,) + idx.shape[va + 1:]
    G = lut.shape[:r]
    for i, (n, g) in enumerate(zip(dense, G)):
        if g < 1 or n % g or (i == va and (n // g) % d):
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


# ------------------------------------------------------------------------------------------
# linear quantization

QUANT_DTYPES = {"int8": (8, True), "uint8": (8, False), "int4": (4, True), "uint4": (4, False)}
QUANT_GRANULARITIES = ("per_tensor", "per_channel", "per_block")


def quant_range(dtype: str, symmetric: bool) -> tuple[int, int]:
    """(qmin, qmax) of `dtype` (see the module docstring)."""
    if dtype not in QUANT_DTYPES:
        raise ValueError(f"dtype must be one of {list(QUANT_DTYPES)}, got {dtype!r}")
    nbits, signed = QUANT_DTYPES[dtype]
    if signed:
        lo, hi = -(1 << (nbits - 1)), (1 << (nbits - 1)) - 1
        return (lo + 1 if symmetric else lo), hi
    return 0, (1 << nbits) - 1 - (1 if symmetric else 0)


def storage_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype holding one quantized value: int8 for int8/int4, uint8 for uint8/uint4."""
    if dtype not in QUANT_DTYPES:
        raise ValueError(f"dtype must be one of {list(QUANT_DTYPES)}, got {dtype!r}")
    return np.dtype(np.int8 if QUANT_DTYPES[dtype][1] else np.uint8)


@dataclass
class Quantized:
    """w ≈ (data - zero_point) * scale, scale/zero_point broadcast per block (see `dequantize`)."""
    data: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray | None
    dtype: str


def _scale_shape(shape, granularity, axis, block_size, input_axis) -> tuple[int, ...]:
    rank = len(shape)
    if granularity == "per_tensor":
        return (1,) * rank
    if granularity not in QUANT_GRANULARITIES:
        raise ValueError(f"granularity must be one of {QUANT_GRANULARITIES}, got {granularity!r}")
    axis = _axis(axis, rank)
    out = [1] * rank
    out[axis] = shape[axis]
    if granularity == "per_block":
        ia = _axis(input_axis, rank, "input_axis")
        if ia == axis:
            raise ValueError("input_axis must differ from axis")
        bs = _int(block_size, "block_size", 1)
        if shape[ia] % bs:
            raise ValueError(f"block_size {bs} does not divide the weight's dimension {shape[ia]} "
                             f"on input_axis {ia}")
        out[ia] = shape[ia] // bs
    return tuple(out)


def _blocked(shape, sshape):
    """Shapes that view an array of `shape` as blocks of `sshape`: (full, small)."""
    full, small = [], []
    for n, s in zip(shape, sshape):
        full += [s, n // s if s else 0]
        small += [s, 1]
    return tuple(full), tuple(small)


def quantize(w, dtype="int8", symmetric=True, granularity="per_channel", axis=0, block_size=0,
             input_axis=1) -> Quantized:
    """Linear quantization (see the module docstring for ranges and zero points).

    granularity: "per_tensor"; "per_channel" (one scale per slice along `axis`); "per_block"
    (blocks of `block_size` along `input_axis` within each slice along `axis`).
    """
    w = _float_weight(w)
    qmin, qmax = quant_range(dtype, symmetric)
    sshape = _scale_shape(w.shape, granularity, axis, block_size, input_axis)
    full, small = _blocked(w.shape, sshape)
    wb = w.astype(np.float64).reshape(full)
    red = tuple(range(1, 2 * w.ndim, 2))
    if symmetric:
        half = (qmax - qmin) // 2
        s = np.max(np.abs(wb), axis=red, initial=0.0) / half
        zp = (qmin + qmax + 1) // 2
    else:
        lo = np.min(wb, axis=red, initial=0.0)
        hi = np.max(wb, axis=red, initial=0.0)
        s = (hi - lo) / (qmax - qmin)
    s[s == 0] = 1.0
    scale = s.reshape(sshape).astype(np.float32)
    s32 = scale.astype(np.float64)
    if symmetric:
        zp_arr = np.full(sshape, zp, np.float64)
    else:
        zp_arr = np.clip(np.rint(qmin - lo.reshape(sshape) / s32), qmin, qmax)
    q = np.clip(np.rint(wb / s32.reshape(small)) + zp_arr.reshape(small), qmin, qmax)
    sd = storage_dtype(dtype)
    data = q.reshape(w.shape).astype(sd)
    zero_point = None if symmetric and qmin < 0 else zp_arr.astype(sd)
    return Quantized(data, scale, zero_point, dtype)


def dequantize(data, scale, zero_point=None) -> np.ndarray:
    """(data - zero_point) * scale, scale/zero_point of rank data.ndim broadcast per block (the
    block along dim i is data.shape[i] // scale.shape[i] long). Computed in float32; output
    dtype is scale's when float16/float32, float32 otherwise."""
    data = np.asarray(data)
    scale = np.asarray(scale)
    if data.dtype.kind not in "iuf":
        raise ValueError(f"quantized data must be numeric, got dtype {data.dtype}")
    if scale.ndim != data.ndim or any(s < 1 or n % s for n, s in zip(data.shape, scale.shape)):
        raise ValueError(f"scale shape {scale.shape} does not divide the data shape {data.shape}")
    out_dtype = scale.dtype if scale.dtype in (np.float16, np.float32) else np.dtype(np.float32)
    full, small = _blocked(data.shape, scale.shape)
    q = data.astype(np.float32).reshape(full)
    if zero_point is not None:
        zp = np.asarray(zero_point)
        if zp.shape != scale.shape:
            raise ValueError(f"zero_point shape {zp.shape} differs from the scale's {scale.shape}")
        q = q - zp.astype(np.float32).reshape(small)
    out = q * scale.astype(np.float32).reshape(small)
    return out.reshape(data.shape).astype(out_dtype, copy=False)


def pack_quantized(data, dtype: str) -> np.ndarray:
    """The stored form of quantized data for the `dequantize` op: 8-bit data as they are, 4-bit
    data as LSB-first nibbles in a uint8 1-D stream (int4 as two's complement nibbles)."""
    data = np.asarray(data)
    nbits, signed = QUANT_DTYPES[dtype] if dtype in QUANT_DTYPES else (None, None)
    if nbits is None:
        raise ValueError(f"dtype must be one of {list(QUANT_DTYPES)}, got {dtype!r}")
    lo, hi = (-(1 << (nbits - 1)), (1 << (nbits - 1)) - 1) if signed else (0, (1 << nbits) - 1)
    if data.dtype.kind not in "iu" or (data.size and (data.min() < lo or data.max() > hi)):
        raise ValueError(f"{dtype} data must be integers in [{lo}, {hi}]")
    if nbits == 8:
        return data.astype(storage_dtype(dtype))
    return pack_bits(data.astype(np.int16) & 0xF, 4)


def unpack_quantized(packed, dtype: str, shape) -> np.ndarray:
    """Inverse of `pack_quantized`: int8 (int8/int4) or uint8 (uint8/uint4) data of `shape`."""
    shape = tuple(int(n) for n in shape)
    sd = storage_dtype(dtype)
    packed = np.asarray(packed)
    count = int(np.prod(shape, dtype=np.int64))
    if QUANT_DTYPES[dtype][0] == 8:
        if packed.dtype != sd or packed.size != count:
            raise ValueError(f"{dtype} data must be {count} {sd} values")
        return packed.reshape(shape)
    nib = unpack_bits(packed, 4, count)
    if sd == np.int8:
        return ((nib.astype(np.int16) ^ 8) - 8).astype(np.int8).reshape(shape)
    return nib.reshape(shape)


# ------------------------------------------------------------------------------------------
# pruning and sparse storage


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
    w = _float_weight(w)
    s = _sparsity(sparsity)
    bs = _int(block_size, "block_size", 1)
    a = np.abs(w.astype(np.float64))
    if bs == 1:
        return _smallest(a, _n_removed(s, a.size))
    ax = _axis(axis, w.ndim)
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
    w = _float_weight(w)
    t = float(threshold)
    if not t >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold!r}")
    return np.abs(w) > t


def prune_nm(w, n, m, axis=1) -> np.ndarray:
    """n:m sparsity (Core ML's convention): in every m consecutive elements along `axis`, the n
    smallest |w| are ZERO (ties: the earlier position first), so 2:4 keeps 2 of every 4."""
    w = _float_weight(w)
    m = _int(m, "m", 1)
    n = _int(n, "n", 0)
    if n > m:
        raise ValueError(f"n:m sparsity needs n <= m, got {n}:{m}")
    ax = _axis(axis, w.ndim)
    if w.shape[ax] % m:
        raise ValueError(f"m = {m} does not divide the weight's dimension {w.shape[ax]} on axis {ax}")
    moved = np.moveaxis(np.abs(w.astype(np.float64)), ax, -1)
    blocks = moved.reshape(moved.shape[:-1] + (moved.shape[-1] // m, m))
    keep = np.ones(blocks.shape, bool)
    np.put_along_axis(keep, np.argsort(blocks, axis=-1, kind="stable")[..., :n], False, axis=-1)
    return np.ascontiguousarray(np.moveaxis(keep.reshape(moved.shape), -1, ax))


@dataclass
class Sparse:
    """A sparse weight: mask_packed = pack_bits(mask, 1), values = w[mask] (row-major)."""
    mask_packed: np.ndarray
    values: np.ndarray
    shape: tuple[int, ...]


def sparsify(w, mask) -> Sparse:
    w = np.asarray(w)
    mask = np.asarray(mask)
    if mask.shape != w.shape:
        raise ValueError(f"mask shape {mask.shape} differs from the weight's {w.shape}")
    if mask.dtype != np.bool_:
        if mask.dtype.kind not in "iu" or (mask.size and (mask.min() < 0 or mask.max() > 1)):
            raise ValueError("mask must be boolean (or 0/1)")
        mask = mask.astype(bool)
    return Sparse(pack_bits(mask, 1), np.ascontiguousarray(w[mask]), tuple(int(n) for n in w.shape))


def densify(mask_packed, values, shape) -> np.ndarray:
    """Zeros of `shape` with `values` at the mask's positions (row-major); values' dtype."""
    shape = tuple(int(n) for n in shape)
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {values.shape}")
    count = int(np.prod(shape, dtype=np.int64))
    bits = unpack_bits(mask_packed, 1, count).view(np.bool_)
    nnz = int(np.count_nonzero(bits))
    if nnz != values.size:
        raise ValueError(f"mask has {nnz} set bits but {values.size} values were given")
    out = np.zeros(count, values.dtype)
    out[bits] = values
    return out.reshape(shape)
