"""Reduction ops: NumPy references against torch, and type inference against computed results."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from pocketml.ir import DType, TensorType
from helpers import infer, run

rng = np.random.default_rng(2)
T = torch.from_numpy


def close(got, want, rtol=1e-6, atol=1e-6):
    want = want.numpy() if isinstance(want, torch.Tensor) else want
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol)


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


AXES = [None, [0], [-1], [1], [0, 2], [-3, -1], [], [0, 1, 2]]


def _dims(axes):
    """torch dim argument of IR axes (None and [] differ in the IR: [] reduces nothing)."""
    return tuple(range(3)) if axes is None else tuple(axes)


@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("keep", [False, True])
def test_sum_mean_prod_match_torch(axes, keep):
    x = randn(3, 4, 5)
    d = _dims(axes)
    if d:
        close(run("reduce_sum", [x], axes=axes, keepdims=keep), torch.sum(T(x), d, keepdim=keep), 1e-5, 1e-6)
        close(run("reduce_mean", [x], axes=axes, keepdims=keep), torch.mean(T(x), d, keepdim=keep), 1e-5, 1e-6)
        close(run("reduce_prod", [x[:, :2, :2]], axes=axes, keepdims=keep),
              _prod(T(x[:, :2, :2]), d, keep), 1e-5, 1e-7)
    else:  # an empty axis list reduces nothing
        for op in ("reduce_sum", "reduce_mean", "reduce_prod", "reduce_max"):
            close(run(op, [x], axes=axes, keepdims=keep), x)


def _prod(t, dims, keep):
    for d in sorted((d % t.dim() for d in dims), reverse=True):
        t = torch.prod(t, d, keepdim=keep)
    return t


@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("keep", [False, True])
def test_max_min_any_all_match_torch(axes, keep):
    x = randn(3, 4, 5)
    d = _dims(axes)
    if not d:
        return
    close(run("reduce_max", [x], axes=axes, keepdims=keep), torch.amax(T(x), d, keepdim=keep))
    close(run("reduce_min", [x], axes=axes, keepdims=keep), torch.amin(T(x), d, keepdim=keep))
    xi = rng.integers(-9, 9, (3, 4, 5))
    close(run("reduce_max", [xi], axes=axes, keepdims=keep), torch.amax(T(xi), d, keepdim=keep))
    b = x > 0.8
    close(run("reduce_any", [b], axes=axes, keepdims=keep), torch.any(T(b), d, keepdim=keep))
    close(run("reduce_all", [~b], axes=axes, keepdims=keep), torch.all(T(~b), d, keepdim=keep))
    close(run("reduce_any", [x], axes=axes, keepdims=keep), torch.any(T(x), d, keepdim=keep))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
def test_integer_sum_prod_keep_dtype(dtype):
    x = rng.integers(0, 9, (4, 6)).astype(dtype)
    close(run("reduce_sum", [x], axes=[1]), torch.sum(T(x), 1, dtype=getattr(torch, np.dtype(dtype).name)))
    close(run("reduce_prod", [x], axes=[0]), torch.prod(T(x), 0, dtype=getattr(torch, np.dtype(dtype).name)))


def test_float16_sum_mean_accumulate_precisely():
    x = (rng.random((3, 2000)) + 1).astype(np.float16)
    close(run("reduce_sum", [x], axes=[1]), torch.sum(T(x), 1), 1e-3, 0)
    close(run("reduce_mean", [x], axes=[1]), torch.mean(T(x), 1), 1e-3, 0)


def test_nan_propagates_in_max_min():
    x = randn(2, 4)
    x[0, 1] = np.nan
    close(run("reduce_max", [x], axes=[1]), torch.amax(T(x), 1))
    close(run("reduce_min", [x], axes=[1]), torch.amin(T(x), 1))
    close(run("argmax", [x], axis=1), torch.argmax(T(x), 1))
    close(run("argmin", [x], axis=1), torch.argmin(T(x), 1))


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("keep", [False, True])
def test_argmax_argmin_match_torch(axis, keep):
    x = rng.integers(0, 4, (3, 5, 4)).astype(np.float32)  # ties: the first index wins
    close(run("argmax", [x], axis=axis, keepdims=keep), torch.argmax(T(x), axis, keepdim=keep))
    close(run("argmin", [x], axis=axis, keepdims=keep), torch.argmin(T(x), axis, keepdim=keep))
    xi = x.astype(np.int32)
    close(run("argmax", [xi], axis=axis, keepdims=keep), torch.argmax(T(xi), axis, keepdim=keep))


def test_arg_rank0():
    x = np.asarray(np.float32(3))
    close(run("argmax", [x], axis=0), torch.argmax(T(x), 0))
    close(run("argmax", [x]), torch.argmax(T(x)))


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch: degrees of freedom <= 0
@pytest.mark.parametrize("axes", [None, [1], [0, 2], [-1]])
@pytest.mark.parametrize("correction", [0, 1, 2.5, 5])
@pytest.mark.parametrize("keep", [False, True])
def test_var_matches_torch(axes, correction, keep):
    x = randn(3, 4, 5) * 3 + 10
    d = _dims(axes)
    close(run("reduce_var", [x], axes=axes, keepdims=keep, correction=correction),
          torch.var(T(x), d, correction=correction, keepdim=keep), 1e-5, 1e-6)


@pytest.mark.parametrize("axes", [None, [1], [0, 2]])
@pytest.mark.parametrize("keep", [False, True])
def test_logsumexp_matches_torch(axes, keep):
    x = randn(3, 4, 5) * 30
    x[0, 0, :] = -np.inf
    x[1, 1, 1] = np.inf
    d = _dims(axes)
    close(run("reduce_logsumexp", [x], axes=axes, keepdims=keep), torch.logsumexp(T(x), d, keepdim=keep), 1e-6)
    x16 = (randn(2, 6) * 3).astype(np.float16)
    close(run("reduce_logsumexp", [x16], axes=[1]), torch.logsumexp(T(x16), 1), 1e-3)


@pytest.mark.parametrize("ord", [2, 1, 3, 0.5, 0, np.inf, -np.inf])
@pytest.mark.parametrize("axes", [None, [-1], [0, 1]])
def test_norm_matches_torch(ord, axes):
    x = randn(3, 4, 5)
    x[0, 0, 0] = 0
    attr = {np.inf: "inf", -np.inf: "-inf"}.get(ord, ord)  # attributes are strict JSON
    got = run("reduce_norm", [x], axes=axes, ord=attr, keepdims=True)
    close(got, torch.linalg.vector_norm(T(x), ord, axes, keepdim=True), 1e-5, 1e-6)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
def test_cumsum_cumprod_match_torch(axis, dtype):
    x = (randn(3, 4) * 3).astype(dtype)
    close(run("cumsum", [x], axis=axis), torch.cumsum(T(x), axis, dtype=T(x).dtype), 1e-6)
    close(run("cumprod", [x], axis=axis), torch.cumprod(T(x), axis, dtype=T(x).dtype), 1e-6)


def test_reduce_infer_symbolic_and_errors():
    t = infer("reduce_sum", [("float32", ("b", "s", 8))], axes=[1], keepdims=True)[0]
    assert t == TensorType(DType.float32, ("b", 1, 8))
    assert infer("reduce_mean", [("float32", ("b", "s", 8))], axes=[-1])[0].shape == ("b", "s")
    assert infer("argmax", [("float32", ("b", 8))], axis=-1)[0] == TensorType(DType.int64, ("b",))
    assert infer("reduce_any", [("float32", ("b", 8))])[0] == TensorType(DType.bool, ())
    with pytest.raises(ValueError):
        infer("reduce_sum", [("float32", (2, 3))], axes=[2])
    with pytest.raises(TypeError):
        infer("reduce_mean", [("int64", (2, 3))])
    with pytest.raises(TypeError):
        infer("reduce_sum", [("bool", (2, 3))])


def test_rank0_reductions():
    x = np.asarray(np.float32(2.5))
    for op in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_prod"):
        close(run(op, [x], axes=[0]), x)
        close(run(op, [x]), x)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.data())
def test_reduce_fuzz(shape, data):
    x = randn(*shape)
    rank = len(shape)
    axes = data.draw(st.lists(st.integers(-rank, rank - 1), min_size=1, max_size=rank, unique_by=lambda a: a % rank))
    keep = data.draw(st.booleans())
    d = tuple(axes)
    close(run("reduce_sum", [x], axes=axes, keepdims=keep), torch.sum(T(x), d, keepdim=keep), 1e-5, 1e-6)
    close(run("reduce_max", [x], axes=axes, keepdims=keep), torch.amax(T(x), d, keepdim=keep))
    close(run("reduce_var", [x], axes=axes, keepdims=keep, correction=0),
          torch.var(T(x), d, correction=0, keepdim=keep), 1e-5, 1e-6)
