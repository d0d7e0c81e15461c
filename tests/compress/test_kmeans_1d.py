"""The optimal 1-D k-means (pocketml.compress.kmeans): against brute force, exact and binned paths."""
import numpy as np
import pytest

from pocketml.compress.kmeans import _kmeans_1d_many, kmeans_1d

from helpers import kmeans_brute_force as brute_force


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
    centers, labels = kmeans_1d(x, k, w)
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
        centers, labels = kmeans_1d(x, k)
        np.testing.assert_array_equal(centers, [1.0, 2.0, 2.5, 3.0])
        np.testing.assert_array_equal(centers[labels], x)
    centers, labels = kmeans_1d(np.full(9, 0.25, np.float32), 4)
    np.testing.assert_array_equal(centers, [0.25])
    np.testing.assert_array_equal(labels, 0)


def test_kmeans_1d_duplicates_count_as_weight():
    x = np.array([0.0, 0.0, 0.0, 1.0, 10.0])
    same = kmeans_1d(np.array([0.0, 1.0, 10.0]), 2, np.array([3.0, 1.0, 1.0]))
    centers, labels = kmeans_1d(x, 2)
    np.testing.assert_allclose(centers, same[0])
    np.testing.assert_allclose(centers, [0.25, 10.0])


def test_kmeans_1d_zero_weights_follow_the_nearest_center():
    x = np.array([0.0, 0.1, 5.0, 5.1, 2.4, 2.6, 100.0])
    w = np.array([1, 1, 1, 1, 0, 0, 0], float)
    centers, labels = kmeans_1d(x, 2, w)
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
    exact = weighted_cost(x.astype(np.float64), None, *kmeans_1d(x, 16, max_exact=10**9))
    binned = weighted_cost(x.astype(np.float64), None, *kmeans_1d(x, 16, max_exact=1024))
    assert exact <= binned * (1 + 1e-9)
    assert binned <= exact * (1 + 1e-3)  # the documented bound: within 0.1% (measured ~1e-7)


@pytest.mark.parametrize("max_exact", [2, 10, 40])
def test_kmeans_1d_with_tiny_bin_budgets(max_exact):
    x = np.random.default_rng(max_exact).laplace(size=500)
    exact = weighted_cost(x, None, *kmeans_1d(x, 16))
    centers, labels = kmeans_1d(x, 16, max_exact=max_exact)
    assert len(centers) == 16 and np.all(np.diff(centers) > 0)
    assert exact <= weighted_cost(x, None, centers, labels) <= exact * 1.05


def test_kmeans_1d_batched_matches_single_and_is_deterministic():
    rng = np.random.default_rng(3)
    probs = [(rng.standard_normal(n), rng.random(n) if n % 2 else None) for n in (5, 300, 6000, 17)]
    many = _kmeans_1d_many(probs, 8)
    for (x, w), (c, lab) in zip(probs, many):
        c1, l1 = kmeans_1d(x, 8, w)
        np.testing.assert_array_equal(c, c1)
        np.testing.assert_array_equal(lab, l1)
    again = _kmeans_1d_many(probs, 8)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(many, again))


def test_kmeans_1d_rejects_bad_input():
    with pytest.raises(ValueError):
        kmeans_1d(np.array([1.0, np.nan]), 2)
    with pytest.raises(ValueError):
        kmeans_1d(np.array([]), 2)
    with pytest.raises(ValueError):
        kmeans_1d(np.array([1.0, 2.0]), 0)
    with pytest.raises(ValueError):
        kmeans_1d(np.array([1.0, 2.0]), 2, np.array([1.0, -1.0]))
    with pytest.raises(ValueError):
        kmeans_1d(np.array([1.0, 2.0]), 2, np.array([1.0]))
