"""Searched quantization grids (pocketml.compress.search) against min/max and brute force."""
import numpy as np
import pytest

from pocketml.compress import Quantize
from pocketml.compress.quantize import quant_range, quantize
from pocketml.compress.search import fit_affine, fit_symmetric
from pocketml.errors import ConfigError
from pocketml.formats.quant import dequantize


def rel_error(q, w, h=None):
    d = dequantize(q.data, q.scale, q.zero_point).astype(np.float64) - w
    h = np.ones_like(w) if h is None else np.broadcast_to(h, w.shape)
    return float(np.sqrt((h * d * d).sum() / (h * w.astype(np.float64) ** 2).sum()))


def weights(seed=0, shape=(48, 96)):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape) * rng.uniform(0.2, 2.0, (shape[0], 1))
    w[::7, ::11] *= 6.0  # heavy tails: the outliers min/max spends levels on
    return w.astype(np.float32)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int4", "uint4"])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel", "per_block"])
def test_search_is_never_worse_than_minmax(dtype, symmetric, granularity):
    w = weights()
    kw = dict(dtype=dtype, symmetric=symmetric, granularity=granularity, block_size=32)
    mm = rel_error(quantize(w, **kw, algorithm="minmax"), w)
    q = quantize(w, **kw, algorithm="search")
    lo, hi = quant_range(dtype, symmetric)
    assert q.data.dtype == quantize(w, **kw).data.dtype and lo <= q.data.min() and q.data.max() <= hi
    se = rel_error(q, w)
    assert se <= mm * 1.0001
    if dtype.endswith("4"):  # 16 levels: the search's gain is large
        assert se < 0.95 * mm, (se, mm)


def test_affine_search_recovers_a_block_affine_weight_exactly():
    """Weights that are Q4_1 values (per block of 32: scale * code + minimum) come back exact:
    the search finds the blocks' own grids (SmolLM2's float weights are such values)."""
    rng = np.random.default_rng(3)
    d = rng.uniform(0.01, 0.2, (32, 4, 1))
    m = -rng.uniform(0.0, 1.0, (32, 4, 1))
    codes = rng.integers(0, 16, (32, 4, 32))
    codes[..., 0], codes[..., 1] = 0, 15
    w = (codes * d + m).reshape(32, 128).astype(np.float32)
    q = quantize(w, "int4", False, "per_block", block_size=32, algorithm="search")
    assert q.zero_point.dtype == np.float32
    np.testing.assert_allclose(dequantize(q.data, q.scale, q.zero_point), w, atol=2e-6)
    assert rel_error(quantize(w, "int4", False, "per_block", block_size=32, algorithm="minmax"), w) > 0.01


def test_symmetric_fit_is_close_to_the_brute_force_optimum():
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((64, 32)) * rng.uniform(0.5, 3, (64, 1))).astype(np.float32)
    h = rng.uniform(0.0, 4.0, w.shape).astype(np.float32)
    s, q = fit_symmetric(w, -7, 7, h)
    ours = (h * (w - q * s[:, None]) ** 2).sum(axis=1)
    amax = np.abs(w).max(axis=1, keepdims=True)
    grid = amax / 7 * np.linspace(0.2, 1.4, 2001)[None, :]  # (64, 2001) scales
    qq = np.clip(np.rint(w[:, None, :] / grid[..., None]), -7, 7)
    best = (h[:, None, :] * (w[:, None, :] - qq * grid[..., None]) ** 2).sum(axis=2).min(axis=1)
    assert ours.sum() <= best.sum() * 1.01 and np.all(ours <= best * 1.1), (ours / best).max()


def test_affine_fit_beats_its_minmax_start_under_weights():
    rng = np.random.default_rng(6)
    w = rng.standard_normal((64, 32)).astype(np.float32)
    h = rng.uniform(0.0, 4.0, w.shape).astype(np.float32)
    s, m, q = fit_affine(w, 0, 15, h)
    ours = (h * (w - (q * s[:, None] + m[:, None])) ** 2).sum(axis=1)
    lo, hi = w.min(axis=1, keepdims=True), w.max(axis=1, keepdims=True)
    step = (hi - lo) / 15
    mm = (h * (w - (np.rint((w - lo) / step) * step + lo)) ** 2).sum(axis=1)
    assert np.all(ours <= mm * (1 + 1e-6)) and ours.sum() < 0.9 * mm.sum()


def test_importance_moves_the_error_to_what_matters():
    """A heavily weighted input column is reproduced better by the weighted search."""
    w = weights(9, (64, 64))
    h = np.ones((1, 64), np.float32)
    h[0, 5] = 1000.0
    plain = quantize(w, "int4", True, "per_channel", algorithm="search")
    weighted = quantize(w, "int4", True, "per_channel", algorithm="search", importance=h)
    assert rel_error(weighted, w, h) < rel_error(plain, w, h)
    col = lambda q: np.abs(dequantize(q.data, q.scale, q.zero_point)[:, 5] - w[:, 5]).mean()  # noqa: E731
    assert col(weighted) < 0.5 * col(plain)


def test_zero_and_constant_blocks_stay_exact():
    w = np.zeros((4, 64), np.float32)
    w[1] = 0.75
    w[2, :32] = -2.0
    for symmetric in (True, False):
        q = quantize(w, "int4", symmetric, "per_block", block_size=32, algorithm="search")
        np.testing.assert_array_equal(dequantize(q.data, q.scale, q.zero_point), w)
        assert np.all(q.scale > 0)


def test_the_config_takes_the_algorithm():
    assert Quantize().algorithm == "search"
    assert Quantize(algorithm="minmax").algorithm == "minmax"
    with pytest.raises(ConfigError, match="algorithm"):
        Quantize(algorithm="best")
    with pytest.raises(ValueError, match="algorithm"):
        quantize(np.ones((2, 4)), algorithm="best")


def test_nearly_constant_blocks_keep_finite_half_parameters():
    """A block of nearly equal values has a tiny scale and a zero point beyond float16: the
    stored parameters stay finite (float32 where float16 cannot hold them) and exact enough."""
    import pocketml as pm
    from pocketml.compress.apply import compress_weight

    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 64)).astype(np.float32)
    w[3, :32] = 5.0 + rng.standard_normal(32).astype(np.float32) * 1e-6
    w[5, 32:] = 1e-9
    for spec in (pm.Quantize("uint4", symmetric=False, granularity="per_block", block_size=32),
                 pm.Quantize("int4", granularity="per_block", block_size=32)):
        chain = compress_weight("w", w, (spec,), 0, 1)
        dense = chain.evaluate()
        assert np.all(np.isfinite(dense)) and np.linalg.norm(dense - w) < 0.15 * np.linalg.norm(w), spec
        if not spec.symmetric:  # the near-constant block at its offset
            assert np.abs(dense[3, :32] - 5.0).max() < 1e-2
        assert all(np.all(np.isfinite(a.astype(np.float64))) for a in chain.weights.values())
