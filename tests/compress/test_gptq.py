"""GPTQ (pocketml.compress.gptq) against the textbook sequential algorithm, and its gain."""
import numpy as np
import pytest

from pocketml.compress.calibration import Stats
from pocketml.compress.gptq import gptq, inverse_cholesky, quantize_gptq
from pocketml.compress.quantize import quantize
from pocketml.compress.search import fit_symmetric
from pocketml.formats.quant import dequantize


def correlated_inputs(rng, n, K):
    """n rows of one distribution per K: correlated inputs of unequal energy."""
    fixed = np.random.default_rng(K)
    mix = np.eye(K) + 0.8 * fixed.standard_normal((K, K)) / np.sqrt(K)
    return rng.standard_normal((n, K)) @ mix * fixed.uniform(0.2, 3.0, K)


def textbook(W, H, scale, half, damping):
    """GPTQ as first stated (OBQ's update with the explicit inverse, one column at a time, the
    inverse shrunk by each quantized column): codes."""
    W = W.astype(np.float64).copy()
    H = H + np.eye(len(H)) * damping * np.mean(np.diag(H))
    Hinv = np.linalg.inv(H)
    codes = np.zeros_like(W)
    for j in range(W.shape[1]):
        codes[:, j] = np.clip(np.rint(W[:, j] / scale), -half, half)
        err = (W[:, j] - codes[:, j] * scale) / Hinv[j, j]
        W[:, j + 1:] -= np.outer(err, Hinv[j, j + 1:])
        Hinv = Hinv - np.outer(Hinv[:, j], Hinv[j, :]) / Hinv[j, j]
    return codes


def test_inverse_cholesky_factors_the_damped_inverse():
    rng = np.random.default_rng(0)
    x = correlated_inputs(rng, 200, 24)
    H = x.T @ x
    U = inverse_cholesky(H, 0.01)
    assert np.allclose(U, np.triu(U))
    want = np.linalg.inv(H + np.eye(24) * 0.01 * np.mean(np.diag(H)))
    np.testing.assert_allclose(U.T @ U, want, rtol=1e-8, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("K", [40, 300])  # one block of columns, and several (BLOCK = 128)
def test_gptq_equals_the_textbook_algorithm(K):
    rng = np.random.default_rng(K)
    W = rng.standard_normal((16, K))
    x = correlated_inputs(rng, 4 * K, K)
    H = x.T @ x
    codes, scale, _ = gptq(W, H, True, -7, 7, K, damping=0.01)  # per channel: grids up front
    s, _ = fit_symmetric(W.astype(np.float32), -7, 7, np.broadcast_to(np.diag(H).astype(np.float32), W.shape))
    np.testing.assert_allclose(scale[:, 0], s, rtol=1e-6)
    ref = textbook(W, H, scale[:, 0], 7, 0.01)
    assert (codes == ref).mean() > 0.998, (codes != ref).sum()


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_lowers_the_layer_output_error_against_rounding(symmetric, act_order):
    rng = np.random.default_rng(1)
    N, K = 48, 256
    W = rng.standard_normal((N, K))
    x = correlated_inputs(rng, 1024, K)
    H = x.T @ x
    qmin, qmax = (-7, 7) if symmetric else (-8, 7)
    codes, scale, offset = gptq(W, H, symmetric, qmin, qmax, 32, act_order=act_order)
    s = np.repeat(scale, 32, axis=1)
    deq = codes * s if symmetric else (codes - qmin) * s + np.repeat(offset, 32, axis=1)
    held = correlated_inputs(np.random.default_rng(2), 512, K)  # new inputs, same distribution
    rtn = quantize(W, "int4", symmetric, "per_block", block_size=32, algorithm="search",
                   importance=np.diag(H)[None, :])
    rtn_deq = dequantize(rtn.data, rtn.scale, rtn.zero_point)
    ours, theirs = (np.linalg.norm(held @ (d - W).T) for d in (deq, rtn_deq))
    assert ours < 0.9 * theirs, (ours, theirs)  # output error norms: 0.84-0.87 measured
    assert qmin <= codes.min() and codes.max() <= qmax


def test_quantize_gptq_keeps_the_stored_layouts():
    rng = np.random.default_rng(3)
    # linear (out, in)
    w = rng.standard_normal((24, 64)).astype(np.float32)
    x = correlated_inputs(rng, 256, 64)
    st = Stats(np.sum(x * x, 0)[None], (x.T @ x)[None], 256)
    for dtype, sym in (("int4", True), ("uint4", False), ("int8", True), ("uint8", True)):
        q = quantize_gptq(w, st, dtype, sym, "per_block", 16, 0, 1)
        ref = quantize(w, dtype, sym, "per_block", block_size=16)
        assert q.data.dtype == ref.data.dtype and q.scale.shape == ref.scale.shape == (24, 4)
        assert (q.zero_point is None) == (ref.zero_point is None)
        err = np.abs(dequantize(q.data, q.scale, q.zero_point) - w).max()
        assert err < 0.5 * np.abs(w).max()
    # matmul (in, out): the same numbers transposed
    q = quantize_gptq(np.ascontiguousarray(w.T), st, "int4", True, "per_block", 16, 1, 0)
    lin = quantize_gptq(w, st, "int4", True, "per_block", 16, 0, 1)
    np.testing.assert_array_equal(q.data, lin.data.T)
    np.testing.assert_array_equal(q.scale, lin.scale.T)
    # conv (out, in/groups, kh, kw), 2 groups: blocks of 4 input channels x 9 taps
    wc = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    xs = [correlated_inputs(rng, 300, 72) for _ in range(2)]
    st = Stats(np.stack([np.sum(a * a, 0) for a in xs]), np.stack([a.T @ a for a in xs]), 300)
    q = quantize_gptq(wc, st, "int4", True, "per_block", 4, 0, 1)
    assert q.scale.shape == (8, 2, 1, 1)
    with pytest.raises(ValueError, match="do not fit"):
        quantize_gptq(wc[:, :4], st, "int4", True, "per_channel", 4, 0, 1)
    with pytest.raises(ValueError, match="not per_tensor"):
        quantize_gptq(w, st, "int4", True, "per_tensor", 16, 0, 1)


@pytest.mark.parametrize("per_channel_scale", [False, True])
def test_palettization_indices_by_gptq_lower_the_output_error(per_channel_scale):
    from pocketml.compress import Palettize
    from pocketml.compress.gptq import palettize_gptq
    from pocketml.compress.palettize import palettize
    from pocketml.formats.lut import depalettize

    rng = np.random.default_rng(4)
    N, K = 32, 128
    w = rng.standard_normal((N, K)).astype(np.float32)
    x = correlated_inputs(rng, 1024, K)
    st = Stats(np.sum(x * x, 0)[None], (x.T @ x)[None], 1024)
    spec = Palettize(3, granularity="per_grouped_channel", group_size=8, per_channel_scale=per_channel_scale, gptq=True)
    imp = np.broadcast_to(st.diag[0] / 1024, w.shape)
    p = palettize_gptq(w, st, spec, 0, imp)
    near = palettize(w, 3, granularity="per_grouped_channel", group_size=8, axis=0,
                     per_channel_scale=per_channel_scale, weights=imp)
    np.testing.assert_array_equal(p.lut, near.lut)  # the same tables, other indices
    assert p.indices.dtype == np.uint8 and p.indices.shape == w.shape and p.indices.max() < 8

    def dense(q):
        return depalettize(q.indices, q.lut.astype(np.float16).astype(np.float32), q.scale, q.vector_axis)

    held = correlated_inputs(np.random.default_rng(5), 512, K)
    ours, theirs = (np.linalg.norm(held @ (dense(q) - w).T) for q in (p, near))
    assert ours < 0.9 * theirs, (ours, theirs)


@pytest.mark.parametrize("n_m, sparsity", [((2, 4), 0.5), (None, 0.5), ((1, 4), 0.25)])
def test_sparsegpt_masks_are_valid_and_beat_magnitude_pruning(n_m, sparsity):
    from pocketml.compress.gptq import sparsegpt
    from pocketml.compress.prune import prune_magnitude, prune_nm

    rng = np.random.default_rng(8)
    N, K = 40, 192
    w = rng.standard_normal((N, K)).astype(np.float32)
    x = correlated_inputs(rng, 1024, K)
    st = Stats(np.sum(x * x, 0)[None], (x.T @ x)[None], 1024)
    pruned, keep = sparsegpt(w, st, n_m, sparsity, 0)
    assert keep.shape == w.shape and np.all(pruned[~keep] == 0)
    if n_m is not None:
        n, m = n_m
        assert np.all((~keep).reshape(N, K // m, m).sum(axis=2) == n)
        mag = prune_nm(w, n, m, axis=1)
    else:
        assert abs((~keep).mean() - sparsity) < 0.01
        mag = prune_magnitude(w, sparsity)
    assert not np.allclose(pruned[keep], w[keep])  # the kept weights absorbed the pruned ones' loss
    held = correlated_inputs(np.random.default_rng(9), 512, K)
    ours = np.linalg.norm(held @ (pruned - w).T)
    theirs = np.linalg.norm(held @ (np.where(mag, w, 0) - w).T)
    assert ours < 0.8 * theirs, (ours, theirs)
    # a matmul's (in, out) weight: the same, transposed
    t, tk = sparsegpt(np.ascontiguousarray(w.T), st, n_m, sparsity, 1)
    np.testing.assert_array_equal(tk, keep.T)
    np.testing.assert_allclose(t, pruned.T, rtol=1e-6)
