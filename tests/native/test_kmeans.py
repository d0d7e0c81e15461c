"""The native 1-D k-means (src/native/kmeans.cpp) against its NumPy reference: identical centers
and labels, bit for bit, on every kind of input; optimal against brute force on small ones."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocketml import _native
from pocketml.compress import numerics as N

from helpers import kmeans_brute_force as brute_force

native, reference = N._kmeans_1d_many_native, N._kmeans_1d_many_reference


def assert_same(problems, k, max_exact=N.MAX_EXACT, **kw):
    got, want = native(problems, k, max_exact, **kw), reference(problems, k, max_exact, **kw)
    assert len(got) == len(want) == len(problems)
    for (c, lab), (c0, lab0), (x, _) in zip(got, want, problems):
        assert c.dtype == np.float64 and lab.dtype == lab0.dtype and lab.shape == (np.size(x),)
        np.testing.assert_array_equal(c, c0)
        np.testing.assert_array_equal(lab, lab0)
    return got


def sample(rng, kind, n):
    return {"gauss": lambda: rng.standard_normal(n), "t3": lambda: rng.standard_t(3, n),
            "laplace": lambda: rng.laplace(size=n), "uniform": lambda: rng.random(n),
            "bimodal": lambda: np.r_[0.05 * rng.standard_normal(n // 2),
                                     3 + rng.standard_normal(n - n // 2)],
            "cauchy": lambda: rng.standard_cauchy(n),
            "ties": lambda: rng.integers(-6, 7, n).astype(float),
            "float16": lambda: rng.standard_normal(n).astype(np.float16),
            }[kind]()


KINDS = ["gauss", "t3", "laplace", "uniform", "bimodal", "cauchy", "ties", "float16"]


def test_the_native_core_is_built_and_dispatched_to():
    assert N._native is _native
    x = np.arange(10.0)
    c, lab = N.kmeans_1d(x, 3)
    np.testing.assert_array_equal(c, native([(x, None)], 3)[0][0])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(KINDS),
       dtype=st.sampled_from([np.float16, np.float32, np.float64]),
       n=st.sampled_from([1, 2, 3, 7, 40, 300, 5000, 12000]),
       k=st.sampled_from([1, 2, 3, 4, 7, 16, 33, 64, 256]),
       weights=st.sampled_from([None, "random", "zeros", "all-zero"]),
       max_exact=st.sampled_from([2, 10, 100, 1024, N.MAX_EXACT, 10**9]))
def test_native_equals_reference(seed, kind, dtype, n, k, weights, max_exact):
    rng = np.random.default_rng(seed)
    x = np.clip(sample(rng, kind, n), -6e4, 6e4).astype(dtype)  # finite in float16
    w = None
    if weights is not None:
        w = rng.random(n) + 0.01
        if weights == "zeros":
            w[rng.random(n) < 0.3] = 0
        elif weights == "all-zero":
            w[:] = 0
    assert_same([(x, w)], k, max_exact)


@pytest.mark.parametrize("kind", ["gauss", "t3", "laplace", "uniform", "bimodal"])
@pytest.mark.parametrize("weighted", [False, True])
def test_native_equals_reference_on_big_problems(kind, weighted):
    rng = np.random.default_rng(len(kind))
    n = 400_000
    x = sample(rng, kind, n).astype(np.float32)
    assert_same([(x, rng.random(n) if weighted else None)], 16, uint8_labels=True)


def test_mixed_batches_equal_the_problems_alone():
    rng = np.random.default_rng(1)
    problems = [(sample(rng, KINDS[i % len(KINDS)], n).astype([np.float32, np.float64][i % 2]),
                 rng.random(n) if i % 3 == 0 else None)
                for i, n in enumerate([1, 5, 17, 300, 4000, 9000, 70_000, 3, 6000, 100_000])]
    batch = assert_same(problems, 8)
    for (c, lab), p in zip(batch, problems):
        (c1, lab1), = native([p], 8)
        np.testing.assert_array_equal(c, c1)
        np.testing.assert_array_equal(lab, lab1)


@pytest.mark.parametrize("n", [2000, 300_000])
def test_results_do_not_depend_on_the_thread_count(n):
    rng = np.random.default_rng(n)
    xs = [rng.standard_normal(n).astype(np.float32) for _ in range(3)]
    ws = [None, rng.random(n), None]
    runs = [_native.kmeans_1d_many(xs, ws, 16, N.MAX_EXACT, t) for t in (1, 2, 3, 8)]
    for run in runs[1:]:
        for (c, lab), (c0, lab0) in zip(run, runs[0]):
            np.testing.assert_array_equal(c, c0)
            np.testing.assert_array_equal(lab, lab0)
    runs = [_native.kmeans_1d_many(xs[:1], ws[:1], 16, N.MAX_EXACT, t) for t in (1, 2, 3)]
    for (c, lab), in runs[1:]:  # one problem: the threads work inside it
        np.testing.assert_array_equal(c, runs[0][0][0])
        np.testing.assert_array_equal(lab, runs[0][0][1])


@pytest.mark.parametrize("seed", range(60))
def test_native_is_optimal_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 12)), int(rng.integers(1, 6))
    x = rng.integers(-3, 4, n).astype(float) if seed % 3 == 0 else rng.standard_normal(n) ** 3
    w = rng.random(n) + 0.05 if seed % 2 else np.ones(n)
    (centers, labels), = native([(x, None if seed % 2 == 0 else w)], k)
    assert len(centers) <= k and np.all(np.diff(centers) > 0)
    cost = float((w * (x - centers[labels]) ** 2).sum())
    assert cost == pytest.approx(brute_force(x, k, w), rel=1e-9, abs=1e-12)


def test_fewer_distinct_values_than_k_and_zero_weights():
    x = np.array([3.0, 1.0, 3.0, 2.0, 1.0, 1.0, 2.5], np.float32)
    (c, lab), = assert_same([(x, None)], 16)
    np.testing.assert_array_equal(c, [1.0, 2.0, 2.5, 3.0])
    np.testing.assert_array_equal(c[lab], x)
    x = np.array([0.0, 0.1, 5.0, 5.1, 2.4, 2.6, 100.0, -0.0])
    w = np.array([1, 1, 1, 1, 0, 0, 0, 1], float)
    (c, lab), = assert_same([(x, w)], 2)
    np.testing.assert_array_equal(lab, [0, 0, 1, 1, 0, 1, 1, 0])


@pytest.mark.parametrize("bad, message", [
    ((np.array([1.0, np.nan]), None), "x contains NaN or infinity"),
    ((np.array([1.0, np.inf], np.float32), None), "x contains NaN or infinity"),
    ((np.array([-np.inf, 1.0], np.float16), None), "x contains NaN or infinity"),
    ((np.array([]), None), "kmeans_1d needs at least one value"),
    ((np.array([1.0, 2.0]), np.array([1.0, np.nan])), "weights contains NaN or infinity"),
    ((np.array([1.0, 2.0]), np.array([1.0, -1.0])), "weights must be non-negative"),
    ((np.array([1.0, 2.0]), np.array([1.0])), "weights must have one entry per value"),
    ((np.array([1 + 1j, 2.0]), None), "x must be a real array"),
])
def test_bad_input_raises_the_references_errors(bad, message):
    good = (np.arange(5.0), None)
    for impl in (native, reference):
        with pytest.raises(ValueError, match=message):
            impl([good, bad], 2)


def test_the_extension_checks_its_input_too():
    with pytest.raises(ValueError, match="x contains NaN or infinity"):
        _native.kmeans_1d_many([np.array([1.0, np.nan], np.float32)], [None], 2, 4096)
    with pytest.raises(ValueError, match="weights must be non-negative"):
        _native.kmeans_1d_many([np.ones(3)], [-np.ones(3)], 2, 4096)
    with pytest.raises(ValueError, match="kmeans_1d needs at least one value"):
        _native.kmeans_1d_many([np.ones(0)], [None], 2, 4096)
    with pytest.raises(ValueError, match="k must be >= 1"):
        _native.kmeans_1d_many([np.ones(3)], [None], 0, 4096)
    with pytest.raises(ValueError, match="uint8 labels need k <= 256"):
        _native.kmeans_1d_many([np.ones(3)], [None], 257, 4096, 1, True)
    with pytest.raises(TypeError):
        _native.kmeans_1d_many([np.ones(3, np.int32)], [None], 2, 4096)


@pytest.mark.parametrize("granularity, group_size", [("per_tensor", 0), ("per_grouped_channel", 4)])
def test_palettize_is_the_same_with_and_without_the_native_core(monkeypatch, granularity, group_size):
    rng = np.random.default_rng(0)
    w = rng.standard_t(4, (64, 600)).astype(np.float32)
    imp = rng.random(w.shape)
    for kw in ({}, {"weights": imp}, {"per_channel_scale": True}):
        got = N.palettize(w, 4, granularity=granularity, group_size=group_size, **kw)
        with monkeypatch.context() as m:
            m.setattr(N, "_native", None)
            want = N.palettize(w, 4, granularity=granularity, group_size=group_size, **kw)
        np.testing.assert_array_equal(got.lut, want.lut)
        np.testing.assert_array_equal(got.indices, want.indices)


def test_the_scalar_dp_equals_the_simd_one():
    """POCKETML_NATIVE_SIMD=0 forces the scalar DP (machines without AVX2, other CPUs)."""
    import os
    import subprocess
    import sys
    code = ("import numpy as np; from pocketml.compress import numerics as N\n"
            "rng = np.random.default_rng(3)\n"
            "ps = [(rng.standard_t(3, n).astype(np.float32), None) for n in (300, 5000, 40000)]\n"
            "for k in (2, 16, 64):\n"
            "    for (c, l), (c0, l0) in zip(N._kmeans_1d_many_native(ps, k), N._kmeans_1d_many_reference(ps, k)):\n"
            "        assert np.array_equal(c, c0) and np.array_equal(l, l0)\n")
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={**os.environ, "POCKETML_NATIVE_SIMD": "0"})
