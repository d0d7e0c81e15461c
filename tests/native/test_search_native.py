"""The native grid searches (src/native/compress/search.cpp) against their NumPy references
(compress/search.py): the same scales, offsets and codes bit for bit, signs of zero included."""
import numpy as np
import pytest

from pocketml.compress import search as S

pytestmark = pytest.mark.skipif(S._native is None, reason="native extension not built")


@pytest.mark.parametrize("rows, L", [(1, 1), (3, 5), (64, 8), (257, 32), (40, 33), (9, 129), (5, 300)])
@pytest.mark.parametrize("qmax", [1, 7, 127])
@pytest.mark.parametrize("weighted", [False, True])
def test_native_equals_reference(rows, L, qmax, weighted):
    rng = np.random.default_rng(rows * 1000 + L + qmax)
    w = (rng.standard_normal((rows, L)) * 10 ** rng.uniform(-3, 3, (rows, 1))).astype(np.float32)
    w[0, : min(L, 4)] = [0.5, -0.5, 2.5, -1.5][: min(L, 4)]  # ties, to even
    if rows > 2:
        w[1] = 0.0  # an all-zero block
        w[2, 0] = 3e38 if L > 1 else w[2, 0]  # a huge value beyond every grid
    h = None
    if weighted:
        h = (rng.uniform(0, 2, (rows, L)) * 10 ** rng.uniform(-8, 8, (rows, L))).astype(np.float32)
        if rows > 3:
            h[3] = 0.0  # a block the data never reached: counted alike
    got = S.fit_symmetric(w, -qmax, qmax, h)
    with np.errstate(over="ignore", invalid="ignore"):
        want = S._fit_symmetric_reference(w, S._weights(w, h), -qmax, qmax)
    for g, x in zip(got, want):
        assert g.dtype == x.dtype == np.float32 and g.shape == x.shape
        np.testing.assert_array_equal(g, x)
        np.testing.assert_array_equal(np.signbit(g), np.signbit(x))


@pytest.mark.parametrize("rows, L", [(1, 1), (3, 5), (64, 8), (257, 32), (40, 33), (9, 129), (5, 300)])
@pytest.mark.parametrize("qmin, qmax", [(0, 3), (0, 15), (-8, 7), (-128, 127)])
@pytest.mark.parametrize("weighted", [False, True])
def test_native_affine_equals_reference(rows, L, qmin, qmax, weighted):
    rng = np.random.default_rng(rows * 1000 + L + qmax)
    w = (rng.standard_normal((rows, L)) * 10 ** rng.uniform(-3, 3, (rows, 1))
         + rng.uniform(-1, 1, (rows, 1))).astype(np.float32)
    if rows > 2:
        w[1] = 0.25  # a constant block: codes 0, offset its value
        w[2, : min(L, 3)] = [0.5, -0.5, 2.5][: min(L, 3)]
    h = None
    if weighted:
        h = (rng.uniform(0, 2, (rows, L)) * 10 ** rng.uniform(-8, 8, (rows, L))).astype(np.float32)
        if rows > 3:
            h[3] = 0.0
    got = S.fit_affine(w, qmin, qmax, h)
    want = S._fit_affine_reference(w, S._weights(w, h), qmin, qmax)
    for g, x in zip(got, want):
        assert g.dtype == x.dtype == np.float32 and g.shape == x.shape
        np.testing.assert_array_equal(g, x)
        np.testing.assert_array_equal(np.signbit(g), np.signbit(x))


def test_the_search_dispatches_to_the_native_twin():
    from pocketml import _native

    assert S._native is _native
    w = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
    np.testing.assert_array_equal(S.fit_symmetric(w, -7, 7)[1], _native.fit_symmetric(
        w, np.ones_like(w), -7, 7, S.SYMMETRIC_FACTORS, S.REFINE_ROUNDS)[1])
