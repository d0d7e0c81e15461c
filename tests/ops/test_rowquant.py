"""quantize_rows / dequantize_rows (the int8 KV cache's ops): per-row scales, rounding, the
round-trip error bound, zero and non-finite rows, type checks."""
import numpy as np
import pytest

from pocketml.ir import DType, TensorType, get_op


def run(name, *arrays):
    op = get_op(name)
    with np.errstate(all="ignore"):
        return op.compute(list(arrays), {})


def test_round_trip_within_half_a_step_per_row():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 5, 64)) * rng.choice([1e-3, 1, 50], (3, 5, 1))).astype(np.float32)
    q, s = run("quantize_rows", x)
    assert q.dtype == np.int8 and s.dtype == np.float32 and s.shape == (3, 5, 1)
    np.testing.assert_array_equal(s, np.abs(x).max(-1, keepdims=True) / np.float32(127))
    assert np.abs(q).max() == 127 and (np.abs(q).max(-1) == 127).all()  # each row's largest on the grid's end
    back = run("dequantize_rows", q, s)[0]
    assert back.dtype == np.float32
    assert (np.abs(back - x) <= s * 0.5000001).all()


def test_halves_round_to_even_and_zero_rows_stay_zero():
    x = np.array([[127, 0.5, 1.5, -2.5, 3.5], [0, 0, 0, 0, 0]], np.float32)  # scale 1 in row 0
    q, s = run("quantize_rows", x)
    np.testing.assert_array_equal(q[0], [127, 0, 2, -2, 4])
    assert s[1, 0] == 0 and not q[1].any()
    assert not run("dequantize_rows", q, s)[0][1].any()


def test_non_finite_rows():
    x = np.array([[np.nan, 1, 2], [np.inf, 1, -1], [1, 2, 3]], np.float32)
    q, s = run("quantize_rows", x)
    assert np.isnan(s[0, 0]) and not q[0].any()  # NaN scale: the row reads back NaN
    assert np.isinf(s[1, 0]) and not q[1].any()
    assert np.isnan(run("dequantize_rows", q, s)[0][:2]).all()
    np.testing.assert_array_equal(q[2], [42, 85, 127])


def test_types_are_checked():
    qr, dq = get_op("quantize_rows"), get_op("dequantize_rows")
    t = TensorType(DType.float32, (1, 2, "n", 8))
    assert qr.infer([t], {}) == [TensorType(DType.int8, (1, 2, "n", 8)), TensorType(DType.float32, (1, 2, "n", 1))]
    with pytest.raises(ValueError, match="float32"):
        qr.infer([TensorType(DType.float16, (2, 8))], {})
    with pytest.raises(ValueError, match="int8"):
        dq.infer([TensorType(DType.uint8, (2, 8)), TensorType(DType.float32, (2, 1))], {})
    with pytest.raises(ValueError, match="one per row"):
        dq.infer([TensorType(DType.int8, (2, 8)), TensorType(DType.float32, (2, 8))], {})
