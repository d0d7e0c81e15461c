"""k-means for palettization: exact 1-D k-means (with its native twin) and vector k-means.

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
Vector k-means (`_kmeans_nd`, cluster_dim > 1)
    Deterministic LBG: start from the (weighted) mean, repeatedly split the clusters with the
    largest error along their per-coordinate spread, with Lloyd iterations after each split.
"""
from __future__ import annotations

import os

import numpy as np

from ..formats.args import check_finite, check_int, real_array

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
    k = check_int(k, "k", 1)
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
        # stable for float16: NumPy 2.4's default (AVX-512 quicksort) float16 sort leaves many-tie
        # arrays unsorted on some CPUs (seen on an AMD EPYC with AVX512_ICL); the values are the same
        xs = np.sort(x, kind="stable" if x.dtype == np.float16 else None)
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
    k = check_int(k, "k", 1)
    max_exact = check_int(max_exact, "max_exact", 2)
    checked = []
    for x, w in problems:
        x = real_array(x, "x").reshape(-1)
        if x.size == 0:
            raise ValueError("kmeans_1d needs at least one value")
        if x.dtype.kind != "f":
            x = x.astype(np.float64)
        if w is not None:
            w = np.asarray(w, dtype=np.float64).reshape(-1)
            if w.size != x.size:
                raise ValueError("weights must have one entry per value")
            check_finite(w, "weights")
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
