"""GPTQ (Frantar et al., 2022): quantize a weight column by column, each column's rounding error
spread over the columns not yet quantized so that the layer's output on the calibration inputs
moves least. The same solver assigns palettization indices (the nearest entry of each row's
table, the table from sensitivity-weighted k-means).

For W (N, K) and H = X^T X of its inputs, the loss of a quantized W' is tr((W - W') H (W - W')^T).
With U the upper Cholesky factor of H^-1, quantizing column j with error e = (w_j - q_j) / U[j, j]
and updating W[:, j:] -= e U[j, j:] is the optimal (OBS) correction of the remaining columns;
columns go in blocks so that the update of the columns beyond the block is one matrix product.
The grid of each group of columns (per block: `group` columns; per channel: all K) is fitted to
the columns' current values when the group starts (`search.py`, weighted by diag H), or, with
`act_order` (columns in decreasing diag H), to the original weight up front ("static groups").
"""
from __future__ import annotations

import numpy as np

from .search import fit_affine, fit_symmetric

BLOCK = 128  # columns whose updates are applied together
# Added to H's diagonal, relative to its mean. The papers' 0.01 assumes ~250 k calibration tokens;
# with a few thousand (4,096 tokens of SmolLM2, 256 MiniLM sentences) 0.1 generalises better on
# held-out data: MiniLM int4 cosine min 0.978 -> 0.981, SmolLM2 int4 perplexity +15.5 -> +11.1 %.
DAMPING = 0.1


def rows_of(w: np.ndarray, out_axis: int) -> np.ndarray:
    """w as (output channels, inputs): a matmul's (in, out) weight transposed, a convolution's
    (out, in/groups, *kernel) flattened; a linear's as it is."""
    return w.T if w.ndim == 2 and out_axis == 1 else w.reshape(w.shape[0], -1)


def _per_group(rows: np.ndarray, stats, w: np.ndarray) -> int:
    """Rows per group of `stats` (one H per convolution group), checked against the weight."""
    groups = stats.gram.shape[0]
    if rows.shape[0] % groups or stats.gram.shape[1:] != (rows.shape[1],) * 2:
        raise ValueError(f"calibration statistics {stats.gram.shape} do not fit the weight {w.shape}")
    return rows.shape[0] // groups


def inverse_cholesky(H: np.ndarray, damping: float) -> np.ndarray:
    """U, upper triangular, with U^T U = (H + damping * mean(diag H) * I)^-1: with J the reversal
    and J H J = R R^T (Cholesky), U = J R^-1 J (one factorisation and one triangular inverse, not
    the inverse's own Cholesky too)."""
    K = len(H)
    H = H + np.eye(K) * damping * max(float(np.mean(np.diag(H))), 1e-12)
    R = np.linalg.cholesky(H[::-1, ::-1])
    return np.ascontiguousarray(np.linalg.inv(R)[::-1, ::-1])


class _Grid:
    """The quantization grid of each group of columns: fitted per row, then applied per column."""
    fixed = False  # fitted as the columns come (per block), unless the caller fits all up front

    def __init__(self, symmetric: bool, qmin: int, qmax: int, ngroups: int, N: int):
        self.symmetric, self.qmin, self.qmax = symmetric, qmin, qmax
        self.scale = np.ones((N, ngroups))
        self.offset = np.zeros((N, ngroups))

    def fit(self, g: int, cols: np.ndarray, h: np.ndarray) -> None:
        hb = np.broadcast_to(h.astype(np.float32)[None, :], cols.shape)
        if self.symmetric:
            half = (self.qmax - self.qmin) // 2
            s, _ = fit_symmetric(cols.astype(np.float32), -half, half, hb)
            self.scale[:, g] = s
        else:
            s, m, _ = fit_affine(cols.astype(np.float32), self.qmin, self.qmax, hb)
            self.scale[:, g], self.offset[:, g] = s, m

    def round(self, g: int, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes, dequantized values) of one column with group g's grid."""
        s, m = self.scale[:, g], self.offset[:, g]
        if self.symmetric:
            half = (self.qmax - self.qmin) // 2
            codes = np.clip(np.rint(col / s), -half, half)
            return codes, codes * s
        codes = np.clip(np.rint((col - m) / s), 0, self.qmax - self.qmin)
        return codes + self.qmin, codes * s + m


class _Tables:
    """Palettization: each row's table (N, n); a column's values go to their nearest entries."""
    fixed = True

    def __init__(self, tables: np.ndarray):
        self.tables = tables

    def round(self, g: int, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.abs(col[:, None] - self.tables).argmin(axis=1)
        return idx, self.tables[np.arange(len(col)), idx]


class _Pruner:
    """SparseGPT's masks (Frantar & Alistarh, 2023), chosen as the columns come: in each group of
    m columns the n of each row with the least saliency w^2 / U[j, j]^2 (n:m), or in each group
    of columns the `sparsity` share of all its weights with the least (unstructured); a pruned
    weight's loss is then corrected in the columns left, as GPTQ corrects rounding."""
    fixed = False
    saliency = True

    def __init__(self, N: int, K: int, n_m: tuple[int, int] | None, sparsity: float):
        self.n_m, self.sparsity = n_m, sparsity
        self.keep = np.ones((N, K), bool)
        self.col = 0  # the next column round() sees (columns come in order)

    def fit(self, g: int, cols: np.ndarray, u: np.ndarray) -> None:
        sal = cols ** 2 / (u[None, :] ** 2)
        keep = np.ones(cols.shape, bool)
        if self.n_m is not None:
            n = self.n_m[0]
            drop = np.argsort(sal, axis=1, kind="stable")[:, :n]
            np.put_along_axis(keep, drop, False, axis=1)
        else:
            k = int(self.sparsity * sal.size)
            if k:
                flat = np.argsort(sal, axis=None, kind="stable")[:k]
                keep.reshape(-1)[flat] = False
        self.keep[:, self.col:self.col + cols.shape[1]] = keep

    def round(self, g: int, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.where(self.keep[:, self.col], col, 0.0)
        self.col += 1
        return q, q


def sparsegpt(w: np.ndarray, stats, n_m: tuple[int, int] | None, sparsity: float, out_axis: int,
              damping: float = DAMPING) -> tuple[np.ndarray, np.ndarray]:
    """(pruned weight, keep-mask), both of w's shape (a 2-D linear (out, in) or matmul (in, out)
    weight): n:m along the input axis or unstructured at `sparsity`, the kept weights updated."""
    rows = rows_of(w, out_axis).astype(np.float64)
    N, K = rows.shape
    if _per_group(rows, stats, w) != N:
        raise ValueError(f"calibration statistics {stats.gram.shape} do not fit the weight {w.shape}")
    if n_m is not None:
        group = n_m[1]
    else:  # masks per group of columns (SparseGPT's blocks of 128): the largest that divides K
        group = max(d for d in range(1, BLOCK + 1) if K % d == 0)
    pruner = _Pruner(N, K, n_m, sparsity)
    out = solve(rows, stats.gram[0], pruner, group, damping, False)
    keep = pruner.keep
    if out_axis == 1:
        out, keep = out.T, keep.T
    return out.astype(np.float32), keep


def gptq(w: np.ndarray, H: np.ndarray, symmetric: bool, qmin: int, qmax: int, group: int,
         damping: float = DAMPING, act_order: bool = False):
    """Quantize w (N, K) against H (K, K): (codes (N, K), scale (N, K // group), offset (N, K //
    group)); w ≈ codes * scale (symmetric) or (codes - qmin) * scale + offset, per group of
    `group` consecutive columns (group = K: per channel). An input never seen (H[j, j] = 0)
    counts as seen once in the fit."""
    N, K = w.shape
    if K % group:
        raise ValueError(f"group {group} does not divide {K} columns")
    ngroups = K // group
    grid = _Grid(symmetric, qmin, qmax, ngroups, N)
    if act_order or group > BLOCK:  # every group's grid from the original weight ("static groups")
        grid.fixed = True
        hdiag = np.where(np.diag(H) > 0, np.diag(H), 1.0)
        for g in range(ngroups):
            cols = slice(g * group, (g + 1) * group)
            grid.fit(g, w[:, cols].astype(np.float64), hdiag[cols])
    codes = solve(w, H, grid, group, damping, act_order)
    return codes, grid.scale, grid.offset


def solve(w: np.ndarray, H: np.ndarray, grid, group: int, damping: float, act_order: bool) -> np.ndarray:
    """The GPTQ loop: codes (N, K) of w (N, K) on `grid` (fitted per `group` columns as they come
    unless grid.fixed), columns in order, or in decreasing diag H with act_order."""
    N, K = w.shape
    W = w.astype(np.float64).copy()
    H = np.array(H, np.float64)
    dead = np.diag(H) <= 0
    H[dead, dead] = 1.0
    hdiag = np.diag(H).copy()
    order = np.argsort(-hdiag, kind="stable") if act_order else np.arange(K)
    static = grid.fixed
    W, H = W[:, order], H[np.ix_(order, order)]
    U = inverse_cholesky(H, damping)
    codes = np.zeros((N, K))
    block = group * max(1, BLOCK // group) if not static else BLOCK
    for i1 in range(0, K, block):
        i2 = min(i1 + block, K)
        W1 = W[:, i1:i2].copy()
        E1 = np.zeros_like(W1)
        U1 = U[i1:i2, i1:i2]
        for i in range(i2 - i1):
            j = order[i1 + i]  # the column's original index
            g = j // group
            if not static and j % group == 0:  # columns j..j+group are this block's i..i+group
                # a pruner ranks by OBS saliency w^2 / U[j, j]^2; grids weigh by diag H
                h = np.diag(U1)[i:i + group] if getattr(grid, "saliency", False) else hdiag[j:j + group]
                grid.fit(g, W1[:, i:i + group], h)
            c, q = grid.round(g, W1[:, i])
            codes[:, j] = c
            e = (W1[:, i] - q) / U1[i, i]
            W1[:, i:] -= np.outer(e, U1[i, i:])
            E1[:, i] = e
        W[:, i2:] -= E1 @ U[i1:i2, i2:]
    return codes


def quantize_gptq(w: np.ndarray, stats, dtype: str, symmetric: bool, granularity: str, block_size: int,
                  out_axis: int, in_axis: int, damping: float = DAMPING, act_order: bool = False):
    """`quantize.quantize`'s result for weight w (linear (out, in), matmul (in, out) or conv
    (out, in/groups, *kernel)) by GPTQ against `stats` (calibration.Stats with the full H per
    group)."""
    from ..formats.quant import storage_dtype
    from .quantize import Quantized, _scale_shape, quant_range

    if granularity == "per_tensor":
        raise ValueError("GPTQ takes per_channel or per_block quantization, not per_tensor")
    qmin, qmax = quant_range(dtype, symmetric)
    sshape = _scale_shape(w.shape, granularity, out_axis, block_size, in_axis)
    rows = rows_of(w, out_axis)
    N, K = rows.shape
    per = _per_group(rows, stats, w)
    span = int(np.prod(w.shape[2:])) if w.ndim > 2 else 1  # kernel positions per input channel
    group = block_size * span if granularity == "per_block" else K
    codes = np.empty((N, K))
    scale = np.empty((N, K // group))
    offset = np.empty((N, K // group))
    for g in range(N // per):
        r = slice(g * per, (g + 1) * per)
        codes[r], scale[r], offset[r] = gptq(rows[r], stats.gram[g], symmetric, qmin, qmax, group,
                                             damping, act_order)
    if w.ndim == 2 and out_axis == 1:
        codes, scale, offset = codes.T, scale.T, offset.T
    sd = storage_dtype(dtype)
    data = codes.reshape(w.shape)
    if symmetric:
        zp = (qmin + qmax + 1) // 2
        zero_point = None if qmin < 0 else np.full(sshape, zp, sd)
        return Quantized((data + zp).astype(sd), scale.reshape(sshape).astype(np.float32), zero_point, dtype)
    s32 = scale.astype(np.float32)
    zero_point = (qmin - offset / s32.astype(np.float64)).astype(np.float32)
    return Quantized(data.astype(sd), s32.reshape(sshape), zero_point.reshape(sshape), dtype)


def palettize_gptq(w: np.ndarray, stats, spec, out_axis: int, importance: np.ndarray | None,
                   damping: float = DAMPING):
    """`palettize.palettize`'s result for w (as in `quantize_gptq`) with the tables of
    sensitivity-weighted k-means (as stored: rounded to spec.lut_dtype) and the indices from
    GPTQ against `stats`."""
    from .palettize import Palettized, palettize

    weights = None if importance is None else np.broadcast_to(importance, w.shape)
    p = palettize(w, spec.nbits, mode="kmeans", granularity=spec.granularity, group_size=spec.group_size,
                  axis=out_axis, per_channel_scale=spec.per_channel_scale, weights=weights)
    stored = p.lut.astype(spec.lut_dtype).astype(np.float64)
    rows = rows_of(w, out_axis).astype(np.float64)
    N = rows.shape[0]
    per = _per_group(rows, stats, w)
    if p.scale is not None:
        rows = rows / p.scale.astype(np.float64).reshape(N, 1)
    G = stored.shape[out_axis]
    tables = np.repeat(stored.reshape(G, -1), N // G, axis=0)  # (N, 2**nbits)
    codes = np.empty(rows.shape, np.int64)
    for g in range(N // per):
        r = slice(g * per, (g + 1) * per)
        codes[r] = solve(rows[r], stats.gram[g], _Tables(tables[r]), rows.shape[1], damping, False)
    codes = codes.T if w.ndim == 2 and out_axis == 1 else codes.reshape(w.shape)
    return Palettized(p.lut, codes.astype(np.uint8), p.scale, p.vector_axis)
