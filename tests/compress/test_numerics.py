"""Compression numerics: bit packing, optimal 1-D k-means, palettization, linear quantization,
pruning and sparse storage, each against an independent reference."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pocketml.compress import numerics as N

from helpers import kmeans_brute_force as brute_force

RNG = np.random.default_rng(1234)


# ---------------------------------------------------------------------------------------------
# bit packing


def ref_pack_bitmatrix(values, nbits):
    """Reference 1: a (count, nbits) bit matrix, LSB first, then np.packbits little-endian."""
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    bits = ((v[:, None] >> np.arange(nbits)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(bits, bitorder="little")


def ref_pack_bigint(values, nbits):
    """Reference 2: one Python integer holding the whole little-endian bit stream."""
    v = [int(a) for a in np.asarray(values).reshape(-1)]
    acc = 0
    for i, a in enumerate(v):
        acc |= a << (i * nbits)
    return np.frombuffer(acc.to_bytes(math.ceil(len(v) * nbits / 8), "little"), np.uint8)


@pytest.mark.parametrize("nbits", range(1, 9))
@pytest.mark.parametrize("count", [0, 1, 2, 3, 7, 8, 9, 13, 64, 101, 1001])
def test_pack_matches_two_references_and_round_trips(nbits, count):
    values = RNG.integers(0, 1 << nbits, count).astype(np.uint8)
    packed = N.pack_bits(values, nbits)
    assert packed.dtype == np.uint8 and packed.ndim == 1
    assert packed.size == N.packed_size(count, nbits) == math.ceil(count * nbits / 8)
    np.testing.assert_array_equal(packed, ref_pack_bitmatrix(values, nbits))
    np.testing.assert_array_equal(packed, ref_pack_bigint(values, nbits))
    back = N.unpack_bits(packed, nbits, count)
    assert back.dtype == np.uint8 and back.shape == (count,)
    np.testing.assert_array_equal(back, values)


@pytest.mark.parametrize("nbits", range(1, 9))
def test_unpack_rejects_short_streams_and_ignores_extra_bytes(nbits):
    values = RNG.integers(0, 1 << nbits, 37)
    packed = N.pack_bits(values, nbits)
    with pytest.raises(ValueError, match="too short"):
        N.unpack_bits(packed[:-1], nbits, 37)
    np.testing.assert_array_equal(N.unpack_bits(np.append(packed, [255, 255]).astype(np.uint8), nbits, 37),
                                  values)


def test_pack_reads_any_shape_row_major_and_checks_its_input():
    v = RNG.integers(0, 8, (3, 5, 2))
    np.testing.assert_array_equal(N.pack_bits(v, 3), N.pack_bits(v.reshape(-1), 3))
    np.testing.assert_array_equal(N.pack_bits(np.array([True, False, True]), 1), [0b101])
    # bit 0 of the stream is the LSB of byte 0: values 1, 2 at 2 bits -> 0b1001
    np.testing.assert_array_equal(N.pack_bits(np.array([1, 2]), 2), [0b1001])
    for bad in ([4], [-1]):
        with pytest.raises(ValueError):
            N.pack_bits(np.array(bad), 2)
    for nbits in (0, 9, 2.0, True):
        with pytest.raises(ValueError):
            N.pack_bits(np.array([0]), nbits)
    with pytest.raises(ValueError):
        N.pack_bits(np.array([0.5]), 2)
    with pytest.raises(ValueError):
        N.unpack_bits(np.zeros(4, np.int8), 2, 3)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8).flatmap(lambda b: st.tuples(st.just(b), st.lists(st.integers(0, (1 << b) - 1),
                                                                          max_size=70))))
def test_pack_round_trip_property(case):
    nbits, values = case
    packed = N.pack_bits(np.array(values, dtype=np.int64), nbits)
    np.testing.assert_array_equal(packed, ref_pack_bigint(values, nbits))
    assert N.unpack_bits(packed, nbits, len(values)).tolist() == values


# ---------------------------------------------------------------------------------------------
# 1-D k-means


def weighted_cost(x, w, centers, labels):
    w = np.ones_like(x) if w is None else w
    return float((w * (x - centers[labels]) ** 2).sum())


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", range(40))
def test_kmeans_1d_is_optimal_against_brute_force(seed, weighted):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 11))
    k = int(rng.integers(1, 5))
    x = rng.integers(-3, 4, n).astype(float) if seed % 3 == 0 else rng.standard_normal(n) ** 3
    w = rng.random(n) + 0.05 if weighted else None
    centers, labels = N.kmeans_1d(x, k, w)
    assert centers.dtype == np.float64 and labels.shape == x.shape
    assert len(centers) <= k and np.all(np.diff(centers) > 0)
    cost = weighted_cost(x, w, centers, labels)
    assert cost == pytest.approx(brute_force(x, k, w), rel=1e-9, abs=1e-12)
    ww = np.ones(n) if w is None else w
    for j, c in enumerate(centers):  # each center is the weighted mean of its cluster
        sel = labels == j
        assert sel.any() and c == pytest.approx((ww[sel] * x[sel]).sum() / ww[sel].sum())


def test_kmeans_1d_with_few_distinct_values_is_exact():
    x = np.array([3.0, 1.0, 3.0, 2.0, 1.0, 1.0, 2.5])
    for k in (4, 5, 16):
        centers, labels = N.kmeans_1d(x, k)
        np.testing.assert_array_equal(centers, [1.0, 2.0, 2.5, 3.0])
        np.testing.assert_array_equal(centers[labels], x)
    centers, labels = N.kmeans_1d(np.full(9, 0.25, np.float32), 4)
    np.testing.assert_array_equal(centers, [0.25])
    np.testing.assert_array_equal(labels, 0)


def test_kmeans_1d_duplicates_count_as_weight():
    x = np.array([0.0, 0.0, 0.0, 1.0, 10.0])
    same = N.kmeans_1d(np.array([0.0, 1.0, 10.0]), 2, np.array([3.0, 1.0, 1.0]))
    centers, labels = N.kmeans_1d(x, 2)
    np.testing.assert_allclose(centers, same[0])
    np.testing.assert_allclose(centers, [0.25, 10.0])


def test_kmeans_1d_zero_weights_follow_the_nearest_center():
    x = np.array([0.0, 0.1, 5.0, 5.1, 2.4, 2.6, 100.0])
    w = np.array([1, 1, 1, 1, 0, 0, 0], float)
    centers, labels = N.kmeans_1d(x, 2, w)
    np.testing.assert_allclose(centers, [0.05, 5.05])
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 0, 1, 1])


@pytest.mark.parametrize("dist", ["gauss", "t3", "cauchy", "mixture"])
def test_kmeans_1d_binned_path_matches_exact(dist):
    rng = np.random.default_rng(7)
    n = 20000
    x = {"gauss": lambda: rng.standard_normal(n), "t3": lambda: rng.standard_t(3, n),
         "cauchy": lambda: rng.standard_cauchy(n),
         "mixture": lambda: np.r_[0.05 * rng.standard_normal(n // 2), 3 + rng.standard_normal(n // 2)],
         }[dist]().astype(np.float32)
    exact = weighted_cost(x.astype(np.float64), None, *N.kmeans_1d(x, 16, max_exact=10**9))
    binned = weighted_cost(x.astype(np.float64), None, *N.kmeans_1d(x, 16, max_exact=1024))
    assert exact <= binned * (1 + 1e-9)
    assert binned <= exact * (1 + 1e-3)  # the documented bound: within 0.1% (measured ~1e-7)


@pytest.mark.parametrize("max_exact", [2, 10, 40])
def test_kmeans_1d_with_tiny_bin_budgets(max_exact):
    x = np.random.default_rng(max_exact).laplace(size=500)
    exact = weighted_cost(x, None, *N.kmeans_1d(x, 16))
    centers, labels = N.kmeans_1d(x, 16, max_exact=max_exact)
    assert len(centers) == 16 and np.all(np.diff(centers) > 0)
    assert exact <= weighted_cost(x, None, centers, labels) <= exact * 1.05


def test_kmeans_1d_batched_matches_single_and_is_deterministic():
    rng = np.random.default_rng(3)
    probs = [(rng.standard_normal(n), rng.random(n) if n % 2 else None) for n in (5, 300, 6000, 17)]
    many = N._kmeans_1d_many(probs, 8)
    for (x, w), (c, lab) in zip(probs, many):
        c1, l1 = N.kmeans_1d(x, 8, w)
        np.testing.assert_array_equal(c, c1)
        np.testing.assert_array_equal(lab, l1)
    again = N._kmeans_1d_many(probs, 8)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(many, again))


def test_kmeans_1d_rejects_bad_input():
    with pytest.raises(ValueError):
        N.kmeans_1d(np.array([1.0, np.nan]), 2)
    with pytest.raises(ValueError):
        N.kmeans_1d(np.array([]), 2)
    with pytest.raises(ValueError):
        N.kmeans_1d(np.array([1.0, 2.0]), 0)
    with pytest.raises(ValueError):
        N.kmeans_1d(np.array([1.0, 2.0]), 2, np.array([1.0, -1.0]))
    with pytest.raises(ValueError):
        N.kmeans_1d(np.array([1.0, 2.0]), 2, np.array([1.0]))


# ---------------------------------------------------------------------------------------------
# palettization


def depalettize_loop(indices, lut, scale, vector_axis):
    """The definition, one element at a time."""
    d = lut.shape[-1]
    shape = list(indices.shape)
    shape[vector_axis] *= d
    G = lut.shape[:indices.ndim]
    out = np.empty(shape, np.float32)
    for idx in np.ndindex(*shape):
        g = tuple(i // (n // gi) for i, n, gi in zip(idx, shape, G))
        ii = list(idx)
        ii[vector_axis] //= d
        out[idx] = lut[g + (indices[tuple(ii)], idx[vector_axis] % d)]
    if scale is not None:
        out = out * scale
    return out


def mse(a, b):
    return float(np.mean((np.asarray(a, np.float64) - b) ** 2))


@pytest.mark.parametrize("mode", ["kmeans", "uniform"])
@pytest.mark.parametrize("granularity, group_size", [("per_tensor", 0), ("per_grouped_channel", 4)])
def test_palettize_round_trip_and_error_falls_with_nbits(mode, granularity, group_size):
    w = np.random.default_rng(5).standard_normal((8, 12, 3)).astype(np.float32)
    errors = []
    for nbits in (1, 2, 3, 4, 6, 8):
        p = N.palettize(w, nbits, mode=mode, granularity=granularity, group_size=group_size)
        G = (1 if granularity == "per_tensor" else 2, 1, 1)
        assert p.lut.shape == G + (2**nbits, 1) and p.lut.dtype == np.float32
        assert p.indices.shape == w.shape and p.indices.dtype == np.uint8
        assert p.indices.max() < 2**nbits and p.scale is None and p.vector_axis == 0
        dense = N.depalettize(p.indices, p.lut)
        assert dense.dtype == np.float32 and dense.shape == w.shape
        np.testing.assert_array_equal(dense, depalettize_loop(p.indices, p.lut, None, 0))
        errors.append(mse(w, dense))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-3


def test_palettize_kmeans_uses_the_optimal_1d_centers():
    w = np.random.default_rng(2).standard_normal((6, 10))
    p = N.palettize(w, 2, granularity="per_grouped_channel", group_size=3)
    for g in range(2):
        centers, labels = N.kmeans_1d(w[3 * g:3 * g + 3], 4)
        np.testing.assert_array_equal(p.lut[g, 0, :, 0], centers.astype(np.float32))
        np.testing.assert_array_equal(p.indices[3 * g:3 * g + 3], labels)


@pytest.mark.parametrize("nbits", [1, 2, 3, 4, 6, 8])
def test_palettize_unique_is_exact_and_pads_with_the_last_center(nbits):
    rng = np.random.default_rng(nbits)
    values = rng.standard_normal(max(2**nbits - 1, 1)).astype(np.float32)
    w = rng.choice(values, (4, 16, 2))
    p = N.palettize(w, nbits, mode="unique")
    np.testing.assert_array_equal(N.depalettize(p.indices, p.lut), w)
    n = np.unique(w).size
    assert np.all(p.lut[0, 0, 0, n:, 0] == p.lut[0, 0, 0, n - 1, 0])
    with pytest.raises(ValueError, match="do not fit"):
        N.palettize(np.arange(2**nbits + 1, dtype=np.float32).reshape(1, -1), nbits, mode="unique")


def test_palettize_uniform_levels_are_evenly_spaced():
    w = np.linspace(-1, 3, 40).reshape(4, 10)
    p = N.palettize(w, 2, mode="uniform")
    np.testing.assert_allclose(p.lut[0, 0, :, 0], [-1, 1 / 3, 5 / 3, 3], rtol=1e-6)
    constant = N.palettize(np.full((2, 3), 0.5), 3, mode="uniform")
    np.testing.assert_array_equal(N.depalettize(constant.indices, constant.lut), 0.5)


@pytest.mark.parametrize("granularity, group_size", [("per_tensor", 0), ("per_grouped_channel", 4)])
@pytest.mark.parametrize("axis", [0, 1])
def test_vector_palettization(granularity, group_size, axis):
    rng = np.random.default_rng(11)
    w = rng.standard_normal((8, 8, 3)).astype(np.float32)
    errs = []
    for nbits in (1, 2, 4):
        p = N.palettize(w, nbits, granularity=granularity, group_size=group_size, axis=axis,
                        cluster_dim=2)
        ishape = list(w.shape)
        ishape[axis] //= 2
        G = [1, 1, 1]
        G[axis] = 1 if granularity == "per_tensor" else 2
        assert p.indices.shape == tuple(ishape) and p.lut.shape == tuple(G) + (2**nbits, 2)
        assert p.vector_axis == axis
        dense = N.depalettize(p.indices, p.lut, vector_axis=axis)
        np.testing.assert_array_equal(dense, depalettize_loop(p.indices, p.lut, None, axis))
        errs.append(mse(w, dense))
    assert errs[0] > errs[1] > errs[2]
    # at most 2**nbits distinct vectors: exact, in kmeans and unique modes
    pairs = rng.standard_normal((4, 2)).astype(np.float32)
    v = pairs[rng.integers(0, 4, (3, 4))]  # (3, 4, 2) vectors
    wv = np.moveaxis(v, -1, 2).reshape(3, 8) if axis == 1 else np.moveaxis(v, -1, 1).reshape(6, 4)
    for mode in ("kmeans", "unique"):
        p = N.palettize(wv, 2, mode=mode, axis=axis, cluster_dim=2)
        np.testing.assert_array_equal(N.depalettize(p.indices, p.lut, vector_axis=axis), wv)


def test_vector_kmeans_is_deterministic_and_uses_weights():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((16, 32))
    a = N.palettize(w, 3, cluster_dim=2)
    b = N.palettize(w, 3, cluster_dim=2)
    np.testing.assert_array_equal(a.lut, b.lut)
    imp = np.ones_like(w)
    imp[:, :4] = 1000.0
    weighted = N.palettize(w, 3, cluster_dim=2, weights=imp)
    d0 = N.depalettize(a.indices, a.lut)
    d1 = N.depalettize(weighted.indices, weighted.lut)
    assert mse(w[:, :4], d1[:, :4]) < mse(w[:, :4], d0[:, :4])


def test_weighted_kmeans_palettization_favours_important_elements():
    rng = np.random.default_rng(8)
    w = rng.standard_normal((4, 256))
    imp = np.ones_like(w)
    imp[:, :16] = 1e4
    plain = N.palettize(w, 2)
    weighted = N.palettize(w, 2, weights=imp)
    dp = N.depalettize(plain.indices, plain.lut)
    dw = N.depalettize(weighted.indices, weighted.lut)
    assert mse(w[:, :16], dw[:, :16]) < mse(w[:, :16], dp[:, :16])
    assert (imp * (w - dw) ** 2).sum() < (imp * (w - dp) ** 2).sum()
    centers, _ = N.kmeans_1d(w, 4, imp)
    np.testing.assert_array_equal(weighted.lut[0, 0, :, 0], centers.astype(np.float32))


def test_per_channel_scale():
    rng = np.random.default_rng(9)
    w = rng.standard_normal((6, 20)) * np.array([1e-3, 1, 10, 100, 0.1, 1])[:, None]
    w[4] = 0.0  # an all-zero channel keeps scale 1
    p = N.palettize(w, 4, per_channel_scale=True)
    assert p.scale.shape == (6, 1) and p.scale.dtype == np.float32
    np.testing.assert_allclose(p.scale[:, 0], [*np.abs(w).max(axis=1)[:4], 1.0, np.abs(w[5]).max()],
                               rtol=1e-6)
    dense = N.depalettize(p.indices, p.lut, p.scale)
    np.testing.assert_array_equal(dense, depalettize_loop(p.indices, p.lut, p.scale, 0))
    rel = np.abs(dense - w).max(axis=1) / np.where(w.any(axis=1), np.abs(w).max(axis=1), 1)
    assert rel.max() < 0.1  # every channel, whatever its magnitude
    p3 = N.palettize(np.moveaxis(w, 0, 1), 4, per_channel_scale=True, axis=1)
    assert p3.scale.shape == (1, 6)


def test_custom_mode():
    calls = []

    def sign_lut(wg):
        calls.append(wg.shape)
        return np.array([-1.0, 1.0]), (wg > 0).astype(np.int64)

    w = np.random.default_rng(1).standard_normal((4, 6))
    p = N.palettize(w, 1, mode="custom", custom=sign_lut, granularity="per_grouped_channel", group_size=2)
    assert calls == [(2, 6), (2, 6)]
    np.testing.assert_array_equal(N.depalettize(p.indices, p.lut), np.sign(w))
    with pytest.raises(ValueError):
        N.palettize(w, 1, mode="custom", custom=lambda wg: (np.zeros(3), np.zeros(wg.shape, int)))
    with pytest.raises(ValueError):
        N.palettize(w, 1, mode="custom")


@pytest.mark.parametrize("kwargs", [
    dict(granularity="per_grouped_channel", group_size=3),   # does not divide 8
    dict(granularity="per_grouped_channel", group_size=0),
    dict(granularity="per_grouped_channel", group_size=2, cluster_dim=4),  # group not whole vectors
    dict(cluster_dim=3),
    dict(granularity="per_block"),
    dict(mode="nearest"),
    dict(mode="uniform", cluster_dim=2),
    dict(axis=2),
])
def test_palettize_rejects_bad_configs(kwargs):
    with pytest.raises(ValueError):
        N.palettize(np.ones((8, 4)), 2, **kwargs)


def test_palettize_rejects_bad_weights():
    with pytest.raises(ValueError):
        N.palettize(np.array([[1.0, np.inf]]), 2)
    with pytest.raises(ValueError):
        N.palettize(np.ones((2, 2)), 9)
    with pytest.raises(ValueError):
        N.palettize(np.ones((2, 2)), 2, weights=np.ones((2, 3)))


def test_depalettize_validates():
    lut = np.zeros((2, 1, 4, 1), np.float32)
    with pytest.raises(ValueError):
        N.depalettize(np.zeros((3, 2), np.uint8), lut)  # 2 groups do not divide 3
    with pytest.raises(ValueError):
        N.depalettize(np.full((2, 2), 4, np.uint8), lut)  # index past the table
    with pytest.raises(ValueError):
        N.depalettize(np.zeros((2, 2), np.uint8), lut[0])  # wrong rank
    half = N.depalettize(np.zeros((2, 2), np.uint8), lut.astype(np.float16))
    assert half.dtype == np.float16


# ---------------------------------------------------------------------------------------------
# linear quantization


def expand(a, shape):
    for i, n in enumerate(shape):
        a = np.repeat(a, n // a.shape[i], axis=i)
    return a


QUANT_CASES = [(dt, sym, gran) for dt in ("int8", "uint8", "int4", "uint4") for sym in (True, False)
               for gran in ("per_tensor", "per_channel", "per_block")]


@pytest.mark.parametrize("dtype, symmetric, granularity", QUANT_CASES)
def test_quantize_error_is_at_most_half_a_step(dtype, symmetric, granularity):
    rng = np.random.default_rng(21)
    w = (rng.standard_normal((6, 8, 3)) * rng.random((6, 1, 1)) * 4 + 0.3).astype(np.float32)
    w[2] = 0.0  # an all-zero channel
    w[3] = np.abs(w[3])  # a one-signed channel
    q = N.quantize(w, dtype, symmetric, granularity, axis=0, block_size=4, input_axis=1)
    qmin, qmax = N.quant_range(dtype, symmetric)
    assert q.dtype == dtype
    assert q.data.dtype == (np.int8 if dtype.startswith("int") else np.uint8)
    assert q.data.shape == w.shape and qmin <= q.data.min() and q.data.max() <= qmax
    want_shape = {"per_tensor": (1, 1, 1), "per_channel": (6, 1, 1), "per_block": (6, 2, 1)}[granularity]
    assert q.scale.shape == want_shape and q.scale.dtype == np.float32
    assert np.all(np.isfinite(q.scale)) and np.all(q.scale > 0)
    if symmetric and dtype.startswith("int"):
        assert q.zero_point is None
    else:
        assert q.zero_point.shape == want_shape and q.zero_point.dtype == q.data.dtype
        if symmetric:
            assert np.all(q.zero_point == (qmin + qmax + 1) // 2)
    dense = N.dequantize(q.data, q.scale, q.zero_point)
    assert dense.dtype == np.float32 and dense.shape == w.shape
    step = expand(q.scale, w.shape).astype(np.float64)
    err = np.abs(dense.astype(np.float64) - w)
    assert np.all(err <= step / 2 * (1 + 1e-5) + 1e-6 * np.abs(w)), (err / step).max()
    np.testing.assert_array_equal(dense[2], 0.0)  # zeros stay exactly zero
    if granularity != "per_tensor":
        ref = (q.data.astype(np.float64) - (0 if q.zero_point is None else expand(q.zero_point, w.shape))) * step
        np.testing.assert_allclose(dense, ref, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int4", "uint4"])
def test_symmetric_ranges_use_both_signs_equally(dtype):
    w = np.array([[-2.0, 0.0, 2.0]], np.float32)
    q = N.quantize(w, dtype, True, "per_tensor")
    half = {"int8": 127, "uint8": 127, "int4": 7, "uint4": 7}[dtype]
    zp = 0 if q.zero_point is None else int(q.zero_point.reshape(-1)[0])
    assert q.data.astype(int).tolist() == [[zp - half, zp, zp + half]]
    np.testing.assert_allclose(N.dequantize(q.data, q.scale, q.zero_point)[0, [0, 2]], [-2, 2])


def test_affine_includes_zero_and_uses_the_full_range():
    w = np.array([[0.5, 1.0, 3.0]], np.float32)  # all positive: the range still starts at 0
    q = N.quantize(w, "uint8", False, "per_tensor")
    assert q.zero_point.item() == 0 and q.data.max() == 255
    q = N.quantize(np.array([[-1.0, -0.25]]), "int8", False, "per_tensor")
    assert q.zero_point.item() == 127 and q.data.min() == -128


def test_rounding_is_half_to_even():
    q = N.quantize(np.array([[7.0, 0.5, 1.5, 2.5]]), "int8", True, "per_tensor")
    assert q.scale.item() == np.float32(7 / 127)
    q = N.quantize(np.array([[127.0, 0.5, 1.5, 2.5]]), "int8", True, "per_tensor")
    assert q.scale.item() == 1.0 and q.data.tolist() == [[127, 0, 2, 2]]


@pytest.mark.parametrize("kwargs", [
    dict(granularity="per_block", block_size=3),  # does not divide 8
    dict(granularity="per_block", block_size=0),
    dict(granularity="per_block", block_size=2, input_axis=0),  # same axis as the channels
    dict(granularity="per_group"),
    dict(dtype="int2"),
    dict(axis=3),
])
def test_quantize_rejects_bad_configs(kwargs):
    with pytest.raises(ValueError):
        N.quantize(np.ones((4, 8)), **{"dtype": "int8", **kwargs})


def test_dequantize_validates_and_keeps_a_half_scale_dtype():
    with pytest.raises(ValueError):
        N.dequantize(np.zeros((4, 6), np.int8), np.ones((3, 1), np.float32))
    with pytest.raises(ValueError):
        N.dequantize(np.zeros((4, 6), np.int8), np.ones((4, 1), np.float32), np.zeros((4, 2), np.int8))
    out = N.dequantize(np.array([[1, -2]], np.int8), np.array([[0.5]], np.float16))
    assert out.dtype == np.float16 and out.tolist() == [[0.5, -1.0]]


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int4", "uint4"])
def test_pack_quantized_round_trip(dtype):
    lo, hi = {"int8": (-128, 127), "uint8": (0, 255), "int4": (-8, 7), "uint4": (0, 15)}[dtype]
    data = np.random.default_rng(0).integers(lo, hi + 1, (5, 7)).astype(N.storage_dtype(dtype))
    packed = N.pack_quantized(data, dtype)
    if dtype.endswith("4"):
        assert packed.dtype == np.uint8 and packed.shape == (N.packed_size(35, 4),)
        np.testing.assert_array_equal(packed, N.pack_bits(data.astype(np.int16) & 15, 4))
    back = N.unpack_quantized(packed, dtype, data.shape)
    assert back.dtype == data.dtype
    np.testing.assert_array_equal(back, data)
    with pytest.raises(ValueError):
        N.pack_quantized(np.array([hi + 1]), dtype)


# ---------------------------------------------------------------------------------------------
# pruning and sparse storage


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.29, 0.5, 0.75, 0.999])
def test_prune_magnitude_removes_exactly_the_smallest(sparsity):
    w = np.random.default_rng(0).standard_normal((10, 10))
    mask = N.prune_magnitude(w, sparsity)
    assert mask.dtype == bool and mask.shape == w.shape
    assert (~mask).sum() == math.floor(round(sparsity * 100, 6))
    if 0 < sparsity:
        assert np.abs(w[~mask]).max() <= np.abs(w[mask]).min()


def test_prune_magnitude_ties_remove_the_earlier_first():
    mask = N.prune_magnitude(np.array([[1.0, -1.0, 1.0, 1.0]]), 0.5)
    np.testing.assert_array_equal(mask, [[False, False, True, True]])


@pytest.mark.parametrize("axis", [0, 1])
def test_block_pruning_removes_whole_blocks(axis):
    w = np.random.default_rng(1).standard_normal((8, 12))
    mask = N.prune_magnitude(w, 0.5, block_size=4, axis=axis)
    blocks = np.moveaxis(mask, axis, -1).reshape(-1, 4)
    assert np.all(blocks.all(axis=1) | ~blocks.any(axis=1))  # each block all kept or all removed
    assert (~blocks.any(axis=1)).sum() == 12
    norms = np.sqrt((np.moveaxis(w, axis, -1).reshape(-1, 4) ** 2).sum(axis=1))
    kept = blocks.all(axis=1)
    assert norms[~kept].max() <= norms[kept].min()
    with pytest.raises(ValueError):
        N.prune_magnitude(w, 0.5, block_size=5, axis=axis)


def test_prune_threshold():
    w = np.array([[-0.5, 0.1, 0.2, -0.2, 3.0]])
    np.testing.assert_array_equal(N.prune_threshold(w, 0.2), [[True, False, False, False, True]])
    np.testing.assert_array_equal(N.prune_threshold(w, 0), True)
    with pytest.raises(ValueError):
        N.prune_threshold(w, -1)


@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (3, 4), (0, 2), (1, 2), (4, 8), (2, 2)])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_prune_nm_zeroes_n_of_every_m(n, m, axis):
    w = np.random.default_rng(n * 10 + m).standard_normal((8, 16, 8))
    mask = N.prune_nm(w, n, m, axis=axis)
    groups = np.moveaxis(mask, axis, -1).reshape(-1, m)
    vals = np.abs(np.moveaxis(w, axis, -1)).reshape(-1, m)
    assert np.all((~groups).sum(axis=1) == n)  # exactly n zeros in every m
    for g, v in zip(groups, vals):
        if 0 < n < m:
            assert v[~g].max() <= v[g].min()


def test_prune_errors():
    w = np.ones((4, 6))
    for s in (-0.1, 1.0, 1.5, float("nan")):
        with pytest.raises(ValueError):
            N.prune_magnitude(w, s)
    with pytest.raises(ValueError):
        N.prune_nm(w, 3, 2)
    with pytest.raises(ValueError):
        N.prune_nm(w, 2, 4)  # 4 does not divide 6
    with pytest.raises(ValueError):
        N.prune_nm(w, 2, 4, axis=2)


def test_sparsify_densify_round_trip():
    w = np.random.default_rng(2).standard_normal((5, 7)).astype(np.float32)
    mask = N.prune_magnitude(w, 0.6)
    s = N.sparsify(w, mask)
    assert s.shape == (5, 7) and s.values.dtype == np.float32
    np.testing.assert_array_equal(s.mask_packed, N.pack_bits(mask, 1))
    np.testing.assert_array_equal(s.values, w[mask])
    dense = N.densify(s.mask_packed, s.values, s.shape)
    np.testing.assert_array_equal(dense, np.where(mask, w, 0))
    assert dense.dtype == np.float32
    with pytest.raises(ValueError):
        N.densify(s.mask_packed, s.values[:-1], s.shape)
    with pytest.raises(ValueError):
        N.densify(s.mask_packed[:-1], s.values, s.shape)
    with pytest.raises(ValueError):
        N.sparsify(w, mask[:, :3])
