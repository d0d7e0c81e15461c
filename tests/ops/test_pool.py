"""max_pool / avg_pool / adaptive pools against torch."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from nn_op_helpers import infer_op, rand, run_op
from pocketml.ir.types import DType, TensorType

rng = np.random.default_rng(1)
T = torch.from_numpy
MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@pytest.mark.parametrize("shape", [(2, 3, 9, 10), (3, 9, 10)])  # batched and unbatched
@pytest.mark.parametrize("k,s,p,d,ceil", [
    (3, 2, 1, 1, False), (3, 2, 1, 1, True), (2, 2, 0, 1, True), (3, 1, 1, 2, False),
    (3, 3, 1, 1, True), (4, 3, 2, 1, True), (3, 2, 0, 2, True), (2, 1, 0, 1, False),
])
def test_max_pool2d(shape, k, s, p, d, ceil):
    x = rand(rng, shape)
    out, = run_op("max_pool", [x], kernel=[k, k], strides=[s, s], pads=[p] * 4, dilations=[d, d], ceil_mode=ceil)
    np.testing.assert_array_equal(out, F.max_pool2d(T(x), k, s, p, d, ceil_mode=ceil).numpy())


@pytest.mark.parametrize("n", [1, 3])
def test_max_pool_1d_3d(n):
    x = rand(rng, (2, 3) + (7,) * n)
    out, = run_op("max_pool", [x], kernel=[3] * n, strides=[2] * n, pads=[1] * (2 * n), ceil_mode=True)
    np.testing.assert_array_equal(out, MAX[n](T(x), 3, 2, 1, ceil_mode=True).numpy())


def test_max_pool_default_strides_and_nan_and_int():
    x = rand(rng, (1, 2, 6, 6))
    x[0, 0, 1, 1] = np.nan
    out, = run_op("max_pool", [x], kernel=[2, 2])
    np.testing.assert_array_equal(out, F.max_pool2d(T(x), 2).numpy())
    xi = rng.integers(-50, 50, (1, 2, 6, 6)).astype(np.int64)
    out, = run_op("max_pool", [xi], kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, F.max_pool2d(T(xi).float(), 3, 2, 1).numpy().astype(np.int64))


@pytest.mark.parametrize("k,s,p,ceil,cip", [
    (3, 2, 1, False, True), (3, 2, 1, True, True), (3, 2, 1, True, False), (2, 2, 0, True, True),
    (3, 3, 1, True, False), (4, 3, 2, True, True), (3, 1, 1, False, False), (5, 2, 2, True, True),
])
def test_avg_pool2d(k, s, p, ceil, cip):
    x = rand(rng, (2, 3, 9, 10))
    out, = run_op("avg_pool", [x], kernel=[k, k], strides=[s, s], pads=[p] * 4, ceil_mode=ceil, count_include_pad=cip)
    ref = F.avg_pool2d(T(x), k, s, p, ceil_mode=ceil, count_include_pad=cip).numpy()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_avg_pool_divisor_override_and_nd():
    x = rand(rng, (2, 3, 9, 10))
    out, = run_op("avg_pool", [x], kernel=[3, 3], strides=[2, 2], pads=[1] * 4, divisor_override=5)
    np.testing.assert_allclose(out, F.avg_pool2d(T(x), 3, 2, 1, divisor_override=5).numpy(), atol=1e-6)
    for n in (1, 3):
        x = rand(rng, (2, 3) + (7,) * n)
        out, = run_op("avg_pool", [x], kernel=[3] * n, strides=[2] * n, pads=[1] * (2 * n), ceil_mode=True,
                      count_include_pad=False)
        np.testing.assert_allclose(out, AVG[n](T(x), 3, 2, 1, ceil_mode=True, count_include_pad=False).numpy(),
                                   atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), ceil=st.booleans(), cip=st.booleans(),
       h=st.integers(4, 9), w=st.integers(4, 9))
def test_pool_fuzz(k, s, p, ceil, cip, h, w):
    if p > k // 2:
        return
    x = rand(rng, (1, 2, h, w))
    out, = run_op("max_pool", [x], kernel=[k, k], strides=[s, s], pads=[p] * 4, ceil_mode=ceil)
    np.testing.assert_array_equal(out, F.max_pool2d(T(x), k, s, p, ceil_mode=ceil).numpy())
    out, = run_op("avg_pool", [x], kernel=[k, k], strides=[s, s], pads=[p] * 4, ceil_mode=ceil, count_include_pad=cip)
    np.testing.assert_allclose(out, F.avg_pool2d(T(x), k, s, p, ceil_mode=ceil, count_include_pad=cip).numpy(),
                               atol=1e-6)


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (4, 4), (9, 10), (2, 7), (5, None), (6, 3)])
def test_adaptive_2d(size):
    x = rand(rng, (2, 3, 9, 10))
    out, = run_op("adaptive_avg_pool", [x], output_size=list(size))
    np.testing.assert_allclose(out, F.adaptive_avg_pool2d(T(x), size).numpy(), atol=1e-6)
    out, = run_op("adaptive_max_pool", [x], output_size=list(size))
    np.testing.assert_array_equal(out, F.adaptive_max_pool2d(T(x), size).numpy())


def test_adaptive_1d_3d():
    x = rand(rng, (2, 3, 11))
    out, = run_op("adaptive_avg_pool", [x], output_size=[4])
    np.testing.assert_allclose(out, F.adaptive_avg_pool1d(T(x), 4).numpy(), atol=1e-6)
    out, = run_op("adaptive_max_pool", [x], output_size=[4])
    np.testing.assert_array_equal(out, F.adaptive_max_pool1d(T(x), 4).numpy())
    x = rand(rng, (1, 2, 5, 6, 7))
    out, = run_op("adaptive_avg_pool", [x], output_size=[2, 3, 4])
    np.testing.assert_allclose(out, F.adaptive_avg_pool3d(T(x), (2, 3, 4)).numpy(), atol=1e-6)


def test_pool_infer_symbolic():
    t, = infer_op("max_pool", [TensorType(DType.float32, ("n", 3, 9, "w"))], kernel=[3, 3], strides=[2, 2],
                  pads=[1, 1, 1, 1])
    assert t.shape[:3] == ("n", 3, 5) and isinstance(t.shape[3], str)
    t, = infer_op("adaptive_avg_pool", [TensorType(DType.float32, ("n", 3, "h", "w"))], output_size=[1, 1])
    assert t.shape == ("n", 3, 1, 1)
    with pytest.raises(ValueError):
        infer_op("max_pool", [TensorType(DType.float32, (1, 3, 9, 9))], kernel=[3, 3], pads=[2, 2, 2, 2])


def test_float16():
    x = rand(rng, (1, 2, 9, 9)).astype(np.float16)
    for name, attrs, ref in [("avg_pool", dict(kernel=[3, 3], strides=[2, 2]), F.avg_pool2d(T(x).float(), 3, 2)),
                             ("adaptive_avg_pool", dict(output_size=[2, 4]), F.adaptive_avg_pool2d(T(x).float(), (2, 4))),
                             ("max_pool", dict(kernel=[2, 2]), F.max_pool2d(T(x).float(), 2))]:
        out, = run_op(name, [x], **attrs)
        assert out.dtype == np.float16
        np.testing.assert_allclose(out.astype(np.float32), ref.numpy(), atol=2e-3)
