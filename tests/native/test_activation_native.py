"""Native gelu (erf form) and silu against their NumPy references (float64 formulas): equal to
the float32 rounding (an ulp), special values included, SIMD on (silu's vector exp) and off, 1 and
2 threads."""
import numpy as np
import pytest

from pocketml import _native
from pocketml.ir import registry

ATTRS = {"gelu": {"approximate": "none"}, "silu": {}}


def _x(n, seed=0):
    x = (np.random.default_rng(seed).standard_normal(n) * 8).astype(np.float32)
    special = np.array([0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30, 1e-40], np.float32)
    x[: min(8, n)] = special[: min(8, n)]
    return x


@pytest.fixture(params=[True, False], ids=["simd", "portable"])
def simd(request):
    _native.set_simd(request.param)
    yield request.param
    _native.set_simd(True)


@pytest.mark.parametrize("name", ["gelu", "silu"])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 4099, 100_003])
@pytest.mark.parametrize("threads", [1, 2])
def test_matches_the_reference(simd, name, n, threads):
    x = _x(n)
    out = np.empty_like(x)
    _native.activation(name, x, out, threads)
    want = registry.get(name).compute([x], ATTRS[name])[0]
    assert out.dtype == want.dtype and out.shape == want.shape
    np.testing.assert_array_max_ulp(out[np.isfinite(want)], want[np.isfinite(want)], maxulp=1)
    assert np.array_equal(np.isnan(out), np.isnan(want))
    assert np.array_equal(out[np.isinf(want)], want[np.isinf(want)])


def test_in_place_and_shapes():
    x = _x(64).reshape(4, 16)
    want = registry.get("silu").compute([x], {})[0]
    _native.activation("silu", x, x)  # out may be x
    np.testing.assert_array_max_ulp(x[np.isfinite(want)], want[np.isfinite(want)], maxulp=1)


@pytest.mark.parametrize("args, err", [
    (("tanh", np.zeros(3, np.float32), np.zeros(3, np.float32)), ValueError),
    (("gelu", np.zeros(3, np.float64), np.zeros(3, np.float32)), TypeError),
    (("gelu", np.zeros(3, np.float32), np.zeros(2, np.float32)), ValueError),
    (("gelu", np.zeros((3, 4), np.float32)[:, ::2], np.zeros(6, np.float32)), ValueError),
    (("gelu", np.zeros(3, np.float32), np.zeros(3, np.float32), -1), ValueError),
])
def test_bad_arguments_raise(args, err):
    with pytest.raises(err):
        _native.activation(*args)


@pytest.mark.parametrize("name", ["gelu", "silu"])
@pytest.mark.parametrize("n", [0, 1, 1536, 100_003])
@pytest.mark.parametrize("threads", [1, 2])
def test_gated_equals_the_activation_then_the_mul(simd, name, n, threads):
    """mul= (SwiGLU/GeGLU): the activation rounded to float32, then the float32 product."""
    x, y = _x(n), _x(n, seed=1)
    out = np.empty_like(x)
    _native.activation(name, x, out, threads, y)
    act = np.empty_like(x)
    _native.activation(name, x, act, threads)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(out, registry.get("mul").compute([act, y], {})[0])
        want = registry.get("mul").compute([registry.get(name).compute([x], ATTRS[name])[0], y], {})[0]
    ok = np.isfinite(want)
    np.testing.assert_array_max_ulp(out[ok], want[ok], maxulp=1)
    assert np.array_equal(np.isnan(out), np.isnan(want))


@pytest.mark.parametrize("mul, err", [(np.zeros(3, np.float64), TypeError), (np.zeros(2, np.float32), ValueError),
                                      (np.zeros(6, np.float32)[::2], ValueError)])
def test_bad_gate_raises(mul, err):
    with pytest.raises(err):
        _native.activation("silu", np.zeros(3, np.float32), np.zeros(3, np.float32), 0, mul)


def test_silu_over_the_whole_range(simd):
    """Every magnitude the vector exp covers and the edges where lanes go scalar (|x| > 150)."""
    x = np.concatenate([np.linspace(-160, 160, 200_001), -np.logspace(-45, 2.3, 5001), np.logspace(-45, 2.3, 5001),
                        [149.99, 150, 150.01, -149.99, -150, -150.01, np.nan, -np.inf]]).astype(np.float32)
    out = np.empty_like(x)
    _native.activation("silu", x, out, 1)
    want = registry.get("silu").compute([x], {})[0]
    ok = np.isfinite(want)
    np.testing.assert_array_max_ulp(out[ok], want[ok], maxulp=1)
    assert np.array_equal(np.signbit(out[ok]), np.signbit(want[ok]))
    assert np.array_equal(np.isnan(out), np.isnan(want))
    assert np.mean(out[ok] == want[ok]) > 0.9999  # an ulp off only at rare rounding ties
