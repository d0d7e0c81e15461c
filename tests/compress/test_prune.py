"""Pruning (pocketml.compress.prune) and sparse storage (pocketml.formats.sparse)."""
import math

import numpy as np
import pytest

from pocketml.compress.prune import prune_magnitude, prune_nm, prune_threshold
from pocketml.formats.bits import pack_bits
from pocketml.formats.sparse import densify, sparsify


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.29, 0.5, 0.75, 0.999])
def test_prune_magnitude_removes_exactly_the_smallest(sparsity):
    w = np.random.default_rng(0).standard_normal((10, 10))
    mask = prune_magnitude(w, sparsity)
    assert mask.dtype == bool and mask.shape == w.shape
    assert (~mask).sum() == math.floor(round(sparsity * 100, 6))
    if 0 < sparsity:
        assert np.abs(w[~mask]).max() <= np.abs(w[mask]).min()


def test_prune_magnitude_ties_remove_the_earlier_first():
    mask = prune_magnitude(np.array([[1.0, -1.0, 1.0, 1.0]]), 0.5)
    np.testing.assert_array_equal(mask, [[False, False, True, True]])


@pytest.mark.parametrize("axis", [0, 1])
def test_block_pruning_removes_whole_blocks(axis):
    w = np.random.default_rng(1).standard_normal((8, 12))
    mask = prune_magnitude(w, 0.5, block_size=4, axis=axis)
    blocks = np.moveaxis(mask, axis, -1).reshape(-1, 4)
    assert np.all(blocks.all(axis=1) | ~blocks.any(axis=1))  # each block all kept or all removed
    assert (~blocks.any(axis=1)).sum() == 12
    norms = np.sqrt((np.moveaxis(w, axis, -1).reshape(-1, 4) ** 2).sum(axis=1))
    kept = blocks.all(axis=1)
    assert norms[~kept].max() <= norms[kept].min()
    with pytest.raises(ValueError):
        prune_magnitude(w, 0.5, block_size=5, axis=axis)


def test_prune_threshold():
    w = np.array([[-0.5, 0.1, 0.2, -0.2, 3.0]])
    np.testing.assert_array_equal(prune_threshold(w, 0.2), [[True, False, False, False, True]])
    np.testing.assert_array_equal(prune_threshold(w, 0), True)
    with pytest.raises(ValueError):
        prune_threshold(w, -1)


@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (3, 4), (0, 2), (1, 2), (4, 8), (2, 2)])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_prune_nm_zeroes_n_of_every_m(n, m, axis):
    w = np.random.default_rng(n * 10 + m).standard_normal((8, 16, 8))
    mask = prune_nm(w, n, m, axis=axis)
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
            prune_magnitude(w, s)
    with pytest.raises(ValueError):
        prune_nm(w, 3, 2)
    with pytest.raises(ValueError):
        prune_nm(w, 2, 4)  # 4 does not divide 6
    with pytest.raises(ValueError):
        prune_nm(w, 2, 4, axis=2)


def test_sparsify_densify_round_trip():
    w = np.random.default_rng(2).standard_normal((5, 7)).astype(np.float32)
    mask = prune_magnitude(w, 0.6)
    s = sparsify(w, mask)
    assert s.shape == (5, 7) and s.values.dtype == np.float32
    np.testing.assert_array_equal(s.mask_packed, pack_bits(mask, 1))
    np.testing.assert_array_equal(s.values, w[mask])
    dense = densify(s.mask_packed, s.values, s.shape)
    np.testing.assert_array_equal(dense, np.where(mask, w, 0))
    assert dense.dtype == np.float32
    with pytest.raises(ValueError):
        densify(s.mask_packed, s.values[:-1], s.shape)
    with pytest.raises(ValueError):
        densify(s.mask_packed[:-1], s.values, s.shape)
    with pytest.raises(ValueError):
        sparsify(w, mask[:, :3])
