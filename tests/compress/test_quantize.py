"""Linear quantization (pocketml.compress.quantize) and its stored form (pocketml.formats.quant)."""
import numpy as np
import pytest

from pocketml.compress.quantize import quant_range, quantize
from pocketml.formats.bits import pack_bits, packed_size
from pocketml.formats.quant import dequantize, pack_quantized, storage_dtype, unpack_quantized


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
    q = quantize(w, dtype, symmetric, granularity, axis=0, block_size=4, input_axis=1)
    qmin, qmax = quant_range(dtype, symmetric)
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
    dense = dequantize(q.data, q.scale, q.zero_point)
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
    q = quantize(w, dtype, True, "per_tensor")
    half = {"int8": 127, "uint8": 127, "int4": 7, "uint4": 7}[dtype]
    zp = 0 if q.zero_point is None else int(q.zero_point.reshape(-1)[0])
    assert q.data.astype(int).tolist() == [[zp - half, zp, zp + half]]
    np.testing.assert_allclose(dequantize(q.data, q.scale, q.zero_point)[0, [0, 2]], [-2, 2])


def test_affine_includes_zero_and_uses_the_full_range():
    w = np.array([[0.5, 1.0, 3.0]], np.float32)  # all positive: the range still starts at 0
    q = quantize(w, "uint8", False, "per_tensor")
    assert q.zero_point.item() == 0 and q.data.max() == 255
    q = quantize(np.array([[-1.0, -0.25]]), "int8", False, "per_tensor")
    assert q.zero_point.item() == 127 and q.data.min() == -128


def test_rounding_is_half_to_even():
    q = quantize(np.array([[7.0, 0.5, 1.5, 2.5]]), "int8", True, "per_tensor")
    assert q.scale.item() == np.float32(7 / 127)
    q = quantize(np.array([[127.0, 0.5, 1.5, 2.5]]), "int8", True, "per_tensor")
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
        quantize(np.ones((4, 8)), **{"dtype": "int8", **kwargs})


def test_dequantize_validates_and_keeps_a_half_scale_dtype():
    with pytest.raises(ValueError):
        dequantize(np.zeros((4, 6), np.int8), np.ones((3, 1), np.float32))
    with pytest.raises(ValueError):
        dequantize(np.zeros((4, 6), np.int8), np.ones((4, 1), np.float32), np.zeros((4, 2), np.int8))
    out = dequantize(np.array([[1, -2]], np.int8), np.array([[0.5]], np.float16))
    assert out.dtype == np.float16 and out.tolist() == [[0.5, -1.0]]


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int4", "uint4"])
def test_pack_quantized_round_trip(dtype):
    lo, hi = {"int8": (-128, 127), "uint8": (0, 255), "int4": (-8, 7), "uint4": (0, 15)}[dtype]
    data = np.random.default_rng(0).integers(lo, hi + 1, (5, 7)).astype(storage_dtype(dtype))
    packed = pack_quantized(data, dtype)
    if dtype.endswith("4"):
        assert packed.dtype == np.uint8 and packed.shape == (packed_size(35, 4),)
        np.testing.assert_array_equal(packed, pack_bits(data.astype(np.int16) & 15, 4))
    back = unpack_quantized(packed, dtype, data.shape)
    assert back.dtype == data.dtype
    np.testing.assert_array_equal(back, data)
    with pytest.raises(ValueError):
        pack_quantized(np.array([hi + 1]), dtype)
