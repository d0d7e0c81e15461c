"""Native gelu (erf form) and silu against their NumPy references (float64 formulas): equal to
the float32 rounding (an ulp), special values included, SIMD on (silu's vector exp, gelu's
branch-free erf) and off, 1 and 2 threads. gelu's far negative tail (x < -5) is compared with an
absolute tolerance: there the reference's 1 + erf cancels in double and keeps only ~1e-16."""
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


TAIL = -5.0  # gelu below: 1e-12 absolute (the reference's own error is ~1e-16 * |x|)


def assert_close(name, out, want, x, scale=None):
    """out within an ulp of want where want is finite (gelu's tail: within 1e-12, times |scale|
    elementwise for a gated unit), NaN where want is NaN, the same infinities."""
    ok = np.isfinite(want)
    tail = ok & (x < TAIL) if name == "gelu" else np.zeros_like(ok)
    np.testing.assert_array_max_ulp(out[ok & ~tail], want[ok & ~tail], maxulp=1)
    atol = 1e-12 * (1.0 if scale is None else np.abs(scale[tail]))
    assert np.all(np.abs(out[tail].astype(np.float64) - want[tail]) <= atol)
    assert np.array_equal(np.isnan(out), np.isnan(want))
    assert np.array_equal(out[np.isinf(want)], want[np.isinf(want)])


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
    assert_close(name, out, want, x)


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
    assert_close(name, out, want, x, scale=y)


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


def test_gelu_over_the_whole_range(simd):
    """Every magnitude, the cancelling tail, the edge where erf becomes +-1 (|x| / sqrt 2 >= 6, the
    float 6 sqrt 2 rounded up) and special values."""
    edge = np.float32(6 * np.sqrt(2))
    edges = np.array([np.nextafter(edge, np.float32(0)), edge, np.nextafter(edge, np.float32(9))], np.float32)
    x = np.concatenate([np.linspace(-12, 12, 400_001), -np.logspace(-45, 1.2, 5001), np.logspace(-45, 1.2, 5001),
                        edges, -edges, [0, -0.0, 1e-45, -1e-45, 1e30, -1e30, 3.4e38, -3.4e38, np.inf, -np.inf,
                                        np.nan]]).astype(np.float32)
    out = np.empty_like(x)
    _native.activation("gelu", x, out, 1)
    want = registry.get("gelu").compute([x], ATTRS["gelu"])[0]
    assert_close("gelu", out, want, x)
    ok = np.isfinite(want)
    assert np.array_equal(np.signbit(out[ok]), np.signbit(want[ok]))  # -0 for -0 and the far tail
    body = ok & (x >= TAIL)
    assert np.mean(out[body] == want[body]) > 0.9999  # an ulp off only at rare rounding ties


def test_gelu_does_not_depend_on_where_a_value_sits(simd):
    """The values past the last full vector go through the same formula as the others."""
    x = _x(1003, seed=3)
    out = np.empty_like(x)
    _native.activation("gelu", x, out, 1)
    for start in range(1, 8):
        part = np.empty_like(x[start:])
        _native.activation("gelu", np.ascontiguousarray(x[start:]), part, 1)
        np.testing.assert_array_equal(part, out[start:])


FAST_ULP = 6  # the float32 forms (exact=False): see kernels/activation/x86_avx2.cpp


@pytest.mark.parametrize("name", ["gelu", "silu"])
@pytest.mark.parametrize("threads", [1, 2])
def test_fast_forms_stay_within_a_few_ulp(simd, name, threads):
    """exact=False: float32 formulas, within FAST_ULP of the reference over every magnitude (gelu's
    tail below -5 within 1e-12 as above, silu's below -87 within 1e-35), the same NaNs, infinities
    and signs; where SIMD is off they are the exact path itself."""
    x = np.concatenate([np.linspace(-100, 100, 400_001), -np.logspace(-45, 2.3, 5001), np.logspace(-45, 2.3, 5001),
                        [0, -0.0, 1e-45, -1e-45, 1e30, -1e30, 3.4e38, -3.4e38, np.inf, -np.inf, np.nan]]).astype(np.float32)
    out = np.empty_like(x)
    _native.activation(name, x, out, threads, exact=False)
    want = registry.get(name).compute([x], ATTRS[name])[0]
    exact = np.empty_like(x)
    _native.activation(name, x, exact, threads)
    if not simd:
        np.testing.assert_array_equal(out, exact)
    ok = np.isfinite(want)
    tail = ok & ((x < TAIL) if name == "gelu" else (x < -87))
    np.testing.assert_array_max_ulp(out[ok & ~tail], want[ok & ~tail], maxulp=FAST_ULP)
    assert np.all(np.abs(out[tail].astype(np.float64) - want[tail]) <= (1e-12 if name == "gelu" else 1e-35))
    assert np.array_equal(np.isnan(out), np.isnan(want))
    assert np.array_equal(out[np.isinf(want)], want[np.isinf(want)])
    assert np.array_equal(np.signbit(out[ok]), np.signbit(want[ok]))
    assert np.mean(out[ok & ~tail] == want[ok & ~tail]) > 0.6  # most values round the same


@pytest.mark.parametrize("name", ["gelu", "silu"])
@pytest.mark.parametrize("n", [1, 7, 9, 1536, 100_003])
def test_fast_gated_is_the_fast_activation_then_the_mul(simd, name, n):
    x, y = _x(n), _x(n, seed=1)
    out, act = np.empty_like(x), np.empty_like(x)
    _native.activation(name, x, out, 2, y, exact=False)
    _native.activation(name, x, act, 2, exact=False)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(out, registry.get("mul").compute([act, y], {})[0])
    part = np.empty_like(x[3:])  # the values past the last full vector: the same formula
    _native.activation(name, np.ascontiguousarray(x[3:]), part, 1, exact=False)
    np.testing.assert_array_equal(part, act[3:])


@pytest.mark.parametrize("name", ["gelu", "silu"])
def test_fast_forms_give_the_same_bits_on_every_instruction_set(name):
    """AVX-512's float32 forms are AVX2's operations 16 lanes at a time: the same bits, tails and
    special values included."""
    x = np.concatenate([np.linspace(-30, 30, 100_003), [0, -0.0, 1e-45, 3.4e38, -3.4e38, np.inf, -np.inf, np.nan],
                        -np.logspace(-45, 2.3, 999)]).astype(np.float32)
    outs = []
    for level in ("avx2", "avx512vnni"):
        _native.set_simd_level(level)
        if _native.simd_level() != level:
            _native.set_simd(True)
            pytest.skip(f"this CPU lacks {level}")
        out = np.empty_like(x)
        _native.activation(name, x, out, 2, exact=False)
        outs.append(out)
    _native.set_simd(True)
    np.testing.assert_array_equal(outs[0], outs[1])
