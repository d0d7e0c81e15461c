"""Native rotary embedding against the seven reference ops it replaces (slice, slice, neg, concat,
mul, mul, add): equal bit for bit, on awkward shapes, strided (transposed) inputs, 1 and 2 threads,
SIMD on and off (the kernel is portable; the switch must not matter)."""
import numpy as np
import pytest

from pocketml import _native
from pocketml.ir import registry


def reference(x, cos, sin):
    """The chain as the graph computes it, op by op through the registry."""
    op = lambda name, args, **attrs: registry.get(name).compute(args, registry.get(name).with_defaults(attrs))[0]
    d = x.shape[-1]
    hi = op("slice", [x], axes=[3], begin=[d // 2], end=[d])
    lo = op("slice", [x], axes=[3], begin=[0], end=[d // 2])
    rot = op("concat", [op("neg", [hi]), lo], axis=3)
    return op("add", [op("mul", [x, cos]), op("mul", [rot, sin])])


@pytest.fixture(params=[True, False], ids=["simd", "portable"])
def simd(request):
    _native.set_simd(request.param)
    yield request.param
    _native.set_simd(True)


@pytest.mark.parametrize("b, h, t, d", [(1, 1, 1, 2), (1, 9, 1, 64), (2, 3, 7, 6), (1, 5, 33, 130),
                                        (1, 2, 0, 8), (3, 1, 300, 64)])
@pytest.mark.parametrize("threads", [1, 2])
def test_equals_the_reference_ops(simd, b, h, t, d, threads):
    rng = np.random.default_rng(b * 1000 + h * 100 + t + d)
    proj = (rng.standard_normal((b, t, h * d)) * 10).astype(np.float32)
    x = proj.reshape(b, t, h, d).transpose(0, 2, 1, 3)  # as the graph has it: a transposed view
    cos, sin = (rng.standard_normal((t, d)).astype(np.float32) for _ in range(2))
    out = np.empty(x.shape, np.float32)
    _native.rotary(x, cos, sin, out, threads)
    want = reference(x, cos, sin)
    assert want.dtype == np.float32 and want.shape == out.shape
    np.testing.assert_array_equal(out, want)
    contiguous = np.ascontiguousarray(x)
    _native.rotary(contiguous, cos, sin, out, threads)
    np.testing.assert_array_equal(out, want)


def test_special_values_propagate_like_the_reference():
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e38, -1e38, 3.0], np.float32).reshape(1, 1, 1, 8)
    cos = np.array([[1, 0, 2, -1, 1, 10, 10, 0.5]], np.float32)
    sin = np.array([[0, 1, 1, 1, -1, 10, 10, 0.5]], np.float32)
    out = np.empty_like(x)
    with np.errstate(all="ignore"):
        want = reference(x, cos, sin)
    _native.rotary(x, cos, sin, out)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("x, cos, out, err", [
    (np.zeros((1, 1, 2, 4), np.float64), np.zeros((2, 4), np.float32), np.zeros((1, 1, 2, 4), np.float32), TypeError),
    (np.zeros((1, 2, 4), np.float32), np.zeros((2, 4), np.float32), np.zeros((1, 2, 4), np.float32), ValueError),
    (np.zeros((1, 1, 2, 5), np.float32), np.zeros((2, 5), np.float32), np.zeros((1, 1, 2, 5), np.float32), ValueError),
    (np.zeros((1, 1, 2, 4), np.float32), np.zeros((3, 4), np.float32), np.zeros((1, 1, 2, 4), np.float32), ValueError),
    (np.zeros((1, 1, 2, 4), np.float32), np.zeros((2, 4), np.float32), np.zeros((1, 2, 1, 4), np.float32), ValueError),
    (np.zeros((1, 1, 2, 8), np.float32)[..., ::2], np.zeros((2, 4), np.float32), np.zeros((1, 1, 2, 4), np.float32), ValueError),
    (np.zeros((1, 1, 2, 4), np.float32), np.zeros((4, 2), np.float32).T, np.zeros((1, 1, 2, 4), np.float32), ValueError),
])
def test_bad_arguments_raise(x, cos, out, err):
    with pytest.raises(err):
        _native.rotary(x, cos, np.ascontiguousarray(cos), out)
