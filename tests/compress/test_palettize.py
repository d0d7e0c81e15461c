"""Palettization (pocketml.compress.palettize) and its decoding (pocketml.formats.lut), against a
per-element definition."""
import numpy as np
import pytest

from pocketml.compress.kmeans import kmeans_1d
from pocketml.compress.palettize import palettize
from pocketml.formats.lut import depalettize


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
        p = palettize(w, nbits, mode=mode, granularity=granularity, group_size=group_size)
        G = (1 if granularity == "per_tensor" else 2, 1, 1)
        assert p.lut.shape == G + (2**nbits, 1) and p.lut.dtype == np.float32
        assert p.indices.shape == w.shape and p.indices.dtype == np.uint8
        assert p.indices.max() < 2**nbits and p.scale is None and p.vector_axis == 0
        dense = depalettize(p.indices, p.lut)
        assert dense.dtype == np.float32 and dense.shape == w.shape
        np.testing.assert_array_equal(dense, depalettize_loop(p.indices, p.lut, None, 0))
        errors.append(mse(w, dense))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-3


def test_palettize_kmeans_uses_the_optimal_1d_centers():
    w = np.random.default_rng(2).standard_normal((6, 10))
    p = palettize(w, 2, granularity="per_grouped_channel", group_size=3)
    for g in range(2):
        centers, labels = kmeans_1d(w[3 * g:3 * g + 3], 4)
        np.testing.assert_array_equal(p.lut[g, 0, :, 0], centers.astype(np.float32))
        np.testing.assert_array_equal(p.indices[3 * g:3 * g + 3], labels)


@pytest.mark.parametrize("nbits", [1, 2, 3, 4, 6, 8])
def test_palettize_unique_is_exact_and_pads_with_the_last_center(nbits):
    rng = np.random.default_rng(nbits)
    values = rng.standard_normal(max(2**nbits - 1, 1)).astype(np.float32)
    w = rng.choice(values, (4, 16, 2))
    p = palettize(w, nbits, mode="unique")
    np.testing.assert_array_equal(depalettize(p.indices, p.lut), w)
    n = np.unique(w).size
    assert np.all(p.lut[0, 0, 0, n:, 0] == p.lut[0, 0, 0, n - 1, 0])
    with pytest.raises(ValueError, match="do not fit"):
        palettize(np.arange(2**nbits + 1, dtype=np.float32).reshape(1, -1), nbits, mode="unique")


def test_palettize_uniform_levels_are_evenly_spaced():
    w = np.linspace(-1, 3, 40).reshape(4, 10)
    p = palettize(w, 2, mode="uniform")
    np.testing.assert_allclose(p.lut[0, 0, :, 0], [-1, 1 / 3, 5 / 3, 3], rtol=1e-6)
    constant = palettize(np.full((2, 3), 0.5), 3, mode="uniform")
    np.testing.assert_array_equal(depalettize(constant.indices, constant.lut), 0.5)


@pytest.mark.parametrize("granularity, group_size", [("per_tensor", 0), ("per_grouped_channel", 4)])
@pytest.mark.parametrize("axis", [0, 1])
def test_vector_palettization(granularity, group_size, axis):
    rng = np.random.default_rng(11)
    w = rng.standard_normal((8, 8, 3)).astype(np.float32)
    errs = []
    for nbits in (1, 2, 4):
        p = palettize(w, nbits, granularity=granularity, group_size=group_size, axis=axis,
                        cluster_dim=2)
        ishape = list(w.shape)
        ishape[axis] //= 2
        G = [1, 1, 1]
        G[axis] = 1 if granularity == "per_tensor" else 2
        assert p.indices.shape == tuple(ishape) and p.lut.shape == tuple(G) + (2**nbits, 2)
        assert p.vector_axis == axis
        dense = depalettize(p.indices, p.lut, vector_axis=axis)
        np.testing.assert_array_equal(dense, depalettize_loop(p.indices, p.lut, None, axis))
        errs.append(mse(w, dense))
    assert errs[0] > errs[1] > errs[2]
    # at most 2**nbits distinct vectors: exact, in kmeans and unique modes
    pairs = rng.standard_normal((4, 2)).astype(np.float32)
    v = pairs[rng.integers(0, 4, (3, 4))]  # (3, 4, 2) vectors
    wv = np.moveaxis(v, -1, 2).reshape(3, 8) if axis == 1 else np.moveaxis(v, -1, 1).reshape(6, 4)
    for mode in ("kmeans", "unique"):
        p = palettize(wv, 2, mode=mode, axis=axis, cluster_dim=2)
        np.testing.assert_array_equal(depalettize(p.indices, p.lut, vector_axis=axis), wv)


def test_vector_kmeans_is_deterministic_and_uses_weights():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((16, 32))
    a = palettize(w, 3, cluster_dim=2)
    b = palettize(w, 3, cluster_dim=2)
    np.testing.assert_array_equal(a.lut, b.lut)
    imp = np.ones_like(w)
    imp[:, :4] = 1000.0
    weighted = palettize(w, 3, cluster_dim=2, weights=imp)
    d0 = depalettize(a.indices, a.lut)
    d1 = depalettize(weighted.indices, weighted.lut)
    assert mse(w[:, :4], d1[:, :4]) < mse(w[:, :4], d0[:, :4])


def test_weighted_kmeans_palettization_favours_important_elements():
    rng = np.random.default_rng(8)
    w = rng.standard_normal((4, 256))
    imp = np.ones_like(w)
    imp[:, :16] = 1e4
    plain = palettize(w, 2)
    weighted = palettize(w, 2, weights=imp)
    dp = depalettize(plain.indices, plain.lut)
    dw = depalettize(weighted.indices, weighted.lut)
    assert mse(w[:, :16], dw[:, :16]) < mse(w[:, :16], dp[:, :16])
    assert (imp * (w - dw) ** 2).sum() < (imp * (w - dp) ** 2).sum()
    centers, _ = kmeans_1d(w, 4, imp)
    np.testing.assert_array_equal(weighted.lut[0, 0, :, 0], centers.astype(np.float32))


def test_per_channel_scale():
    rng = np.random.default_rng(9)
    w = rng.standard_normal((6, 20)) * np.array([1e-3, 1, 10, 100, 0.1, 1])[:, None]
    w[4] = 0.0  # an all-zero channel keeps scale 1
    p = palettize(w, 4, per_channel_scale=True)
    assert p.scale.shape == (6, 1) and p.scale.dtype == np.float32
    np.testing.assert_allclose(p.scale[:, 0], [*np.abs(w).max(axis=1)[:4], 1.0, np.abs(w[5]).max()],
                               rtol=1e-6)
    dense = depalettize(p.indices, p.lut, p.scale)
    np.testing.assert_array_equal(dense, depalettize_loop(p.indices, p.lut, p.scale, 0))
    rel = np.abs(dense - w).max(axis=1) / np.where(w.any(axis=1), np.abs(w).max(axis=1), 1)
    assert rel.max() < 0.1  # every channel, whatever its magnitude
    p3 = palettize(np.moveaxis(w, 0, 1), 4, per_channel_scale=True, axis=1)
    assert p3.scale.shape == (1, 6)


def test_custom_mode():
    calls = []

    def sign_lut(wg):
        calls.append(wg.shape)
        return np.array([-1.0, 1.0]), (wg > 0).astype(np.int64)

    w = np.random.default_rng(1).standard_normal((4, 6))
    p = palettize(w, 1, mode="custom", custom=sign_lut, granularity="per_grouped_channel", group_size=2)
    assert calls == [(2, 6), (2, 6)]
    np.testing.assert_array_equal(depalettize(p.indices, p.lut), np.sign(w))
    with pytest.raises(ValueError):
        palettize(w, 1, mode="custom", custom=lambda wg: (np.zeros(3), np.zeros(wg.shape, int)))
    with pytest.raises(ValueError):
        palettize(w, 1, mode="custom")


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
        palettize(np.ones((8, 4)), 2, **kwargs)


def test_palettize_rejects_bad_weights():
    with pytest.raises(ValueError):
        palettize(np.array([[1.0, np.inf]]), 2)
    with pytest.raises(ValueError):
        palettize(np.ones((2, 2)), 9)
    with pytest.raises(ValueError):
        palettize(np.ones((2, 2)), 2, weights=np.ones((2, 3)))


def test_depalettize_validates():
    lut = np.zeros((2, 1, 4, 1), np.float32)
    with pytest.raises(ValueError):
        depalettize(np.zeros((3, 2), np.uint8), lut)  # 2 groups do not divide 3
    with pytest.raises(ValueError):
        depalettize(np.full((2, 2), 4, np.uint8), lut)  # index past the table
    with pytest.raises(ValueError):
        depalettize(np.zeros((2, 2), np.uint8), lut[0])  # wrong rank
    half = depalettize(np.zeros((2, 2), np.uint8), lut.astype(np.float16))
    assert half.dtype == np.float16
