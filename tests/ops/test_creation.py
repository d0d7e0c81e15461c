"""Creation ops: NumPy references against torch, and type inference against computed results."""

import numpy as np
import pytest
import torch

from pocketml.ir import DType, TensorType, get_op
from helpers import run
from pocketml.ir.ops.shape import float_attr


def same(got, want):
    want = want.numpy() if isinstance(want, torch.Tensor) else want
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("start, end, step", [
    (0, 5, 1), (2, 11, 3), (5, 0, -1), (-3, 7, 2), (3, 3, 1), (0, 10, 4), (7, -8, -3),
])
def test_arange_int_matches_torch(start, end, step):
    same(run("arange", [], start=start, end=end, step=step), torch.arange(start, end, step))
    same(run("arange", [], start=start, end=end, step=step, dtype="int32"),
         torch.arange(start, end, step, dtype=torch.int32))


@pytest.mark.parametrize("start, end, step", [
    (0, 1, 0.1), (0.5, 3, 0.25), (1, -1, -0.3), (0, 1000, 0.7), (-2.5, 2.5, 0.5), (0.0, 7, 1),
])
def test_arange_float_matches_torch(start, end, step):
    # torch's vectorised kernel accumulates in the output dtype in places: equal up to rounding
    for dtype, tol in (("float32", 1e-6), ("float16", 1e-3)):
        got = run("arange", [], start=start, end=end, step=step, dtype=dtype)
        want = torch.arange(start, end, step, dtype=getattr(torch, dtype)).numpy()
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    exact = np.float64(start) + np.float64(step) * np.arange(got.shape[0])
    np.testing.assert_array_equal(run("arange", [], start=start, end=end, step=step, dtype="float32"),
                                  exact.astype(np.float32))


@pytest.mark.parametrize("start, end, step", [(0, 3, 0), (5, 0, 1), (0, 5, -1), (0.0, -1.0, 0.5)])
def test_arange_rejects_what_torch_rejects(start, end, step):
    with pytest.raises(ValueError):
        get_op("arange").infer([], get_op("arange").with_defaults({"start": start, "end": end, "step": step}))
    with pytest.raises(RuntimeError):
        torch.arange(start, end, step)


@pytest.mark.parametrize("shape, value, dtype", [
    ((2, 3), 1.5, "float32"), ((), 7, "int64"), ((3,), True, "bool"), ((2, 0), 0.0, "float16"),
    ((4, 4), float("-inf"), "float32"), ((2,), float("nan"), "float32"), ((3,), 2.0, "int32"),
])
def test_full_matches_torch(shape, value, dtype):
    got = run("full", [], shape=list(shape), value=float_attr(value), dtype=dtype)
    want = torch.full(shape, value, dtype=getattr(torch, dtype))
    np.testing.assert_array_equal(got, want.numpy())
    assert got.dtype == want.numpy().dtype and got.shape == tuple(shape)


def test_full_like_keeps_shape_and_takes_dtype():
    x = np.zeros((2, 3), np.float16)
    same(run("full_like", [x], value=2.5), torch.full_like(torch.from_numpy(x), 2.5))
    same(run("full_like", [x], value=3, dtype="int64"), torch.full((2, 3), 3))
    same(run("full_like", [x], value="-inf"), np.full((2, 3), -np.inf, np.float16))
    t = get_op("full_like").infer([TensorType(DType.float32, ("b", 4))], {"value": 0, "dtype": "bool"})
    assert t == [TensorType(DType.bool, ("b", 4))]


def test_float_attr_is_strict_json():
    assert [float_attr(v) for v in (1, 2.5, True, float("inf"), float("-inf"))] == [1, 2.5, True, "inf", "-inf"]
    assert float_attr(float("nan")) == "nan"
    with pytest.raises(ValueError):
        run("full", [], shape=[2], value="inf", dtype="int64")


@pytest.mark.parametrize("diagonal", [0, 1, -1, 3, -5])
@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (2, 3, 4)])
def test_triu_tril_match_torch(diagonal, shape):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    same(run("triu", [x], diagonal=diagonal), torch.triu(torch.from_numpy(x), diagonal))
    same(run("tril", [x], diagonal=diagonal), torch.tril(torch.from_numpy(x), diagonal))
    b = x > 0
    same(run("tril", [b], diagonal=diagonal), torch.tril(torch.from_numpy(b), diagonal))
    m = np.full(shape, -np.inf, np.float32)
    same(run("triu", [m], diagonal=diagonal), torch.triu(torch.from_numpy(m), diagonal))


def test_triu_needs_rank_2():
    with pytest.raises(ValueError):
        get_op("triu").infer([TensorType(DType.float32, (4,))], {"diagonal": 0})
