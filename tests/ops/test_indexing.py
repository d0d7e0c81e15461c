"""Indexing ops: NumPy references against torch, and type inference against computed results."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from helpers import run, infer

rng = np.random.default_rng(1)


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def ints(high, *shape, dtype=np.int64):
    return rng.integers(0, high, shape).astype(dtype)


def same(got, want):
    want = want.numpy() if isinstance(want, torch.Tensor) else want
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    np.testing.assert_array_equal(got, want)


T = torch.from_numpy


# -- gather / take / embedding ------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_gather_matches_torch(axis):
    x = randn(4, 5, 6)
    ishape = [3, 4, 2]
    ishape[axis] = 7  # the gathered axis may be longer; the others no longer than x's
    idx = ints(x.shape[axis], *ishape)
    same(run("gather", [x, idx], axis=axis), torch.gather(T(x), axis, T(idx)))
    same(run("gather", [x, idx.astype(np.int32)], axis=axis), torch.gather(T(x), axis, T(idx)))


def test_gather_rejects():
    with pytest.raises(ValueError):
        infer("gather", [("float32", (4, 5)), ("int64", (4,))], axis=0)
    with pytest.raises(ValueError):
        infer("gather", [("float32", (4, 5)), ("int64", (4, 6))], axis=0)
    with pytest.raises(ValueError):
        infer("gather", [("float32", (4, 5)), ("float32", (4, 5))], axis=0)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("ishape", [(3,), (), (2, 3)])
def test_take_matches_index_select_and_numpy(axis, ishape):
    x = randn(4, 5, 6)
    idx = ints(x.shape[axis], *ishape)
    got = run("take", [x, idx], axis=axis)
    same(got, np.take(x, idx, axis=axis))
    if len(ishape) == 1:
        same(got, torch.index_select(T(x), axis, T(idx)))
    neg = idx - x.shape[axis]  # negative indices count from the end, as in tensor[...] indexing
    same(run("take", [x, neg], axis=axis), got)


def test_embedding_matches_torch():
    w = randn(10, 4)
    for shape in [(3,), (2, 5), (2, 3, 4), ()]:
        idx = ints(10, *shape)
        same(run("embedding", [w, idx], ), F.embedding(T(idx), T(w)))
    w16 = w.astype(np.float16)
    assert run("embedding", [w16, ints(10, 3).astype(np.int32)]).dtype == np.float16
    with pytest.raises(ValueError):
        infer("embedding", [("float32", (10,)), ("int64", (3,))])


# -- index --------------------------------------------------------------------------------------

@pytest.mark.parametrize("axes, shapes", [
    ([0], [(3,)]),
    ([1], [(2, 2)]),
    ([0, 1], [(3,), (3,)]),
    ([1, 2], [(2, 1), (1, 3)]),        # adjacent, broadcast: dims stay in place
    ([0, 2], [(2, 3), (3,)]),          # separated: broadcast dims move to the front
    ([1, 3], [(4,), (4,)]),
    ([0, 1, 2, 3], [(2,), (2,), (2,), (1,)]),
])
def test_index_matches_torch_advanced_indexing(axes, shapes):
    x = randn(3, 4, 5, 6)
    idxs = [ints(x.shape[a], *s) for a, s in zip(axes, shapes)]
    key = [slice(None)] * 4
    for a, i in zip(axes, idxs):
        key[a] = T(i)
    while key and key[-1] == slice(None):
        key.pop()
    same(run("index", [x, *idxs], axes=axes), T(x)[tuple(key)])


def test_index_rejects():
    with pytest.raises(ValueError):
        infer("index", [("float32", (3, 4)), ("bool", (3, 4))], axes=[0])
    with pytest.raises(ValueError):
        infer("index", [("float32", (3, 4)), ("int64", (2,)), ("int64", (2,))], axes=[1, 0])
    with pytest.raises(ValueError):
        infer("index", [("float32", (3, 4)), ("int64", (2,))], axes=[0, 1])


# -- index_put ----------------------------------------------------------------------------------

@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("axes, shapes, vshape", [
    ([0], [(3,)], (3, 5, 6)),
    ([1], [(2,)], ()),
    ([0, 2], [(4,), (4,)], (4, 5)),
    ([1, 2], [(2, 1), (1, 3)], (1, 2, 3)),
])
def test_index_put_matches_torch(accumulate, axes, shapes, vshape):
    x = randn(4, 5, 6)
    # distinct positions unless accumulating (torch leaves the winner of repeated writes unspecified)
    idxs = [rng.permutation(x.shape[a])[:max(s)].reshape(s) if not accumulate else ints(x.shape[a], *s)
            for a, s in zip(axes, shapes)]
    v = randn(*vshape)
    key = [None] * 3
    for a, i in zip(axes, idxs):
        key[a] = T(i)
    want = torch.ops.aten.index_put.default(T(x), key[:max(axes) + 1], T(v), accumulate=accumulate)
    got = run("index_put", [x, v, *idxs], axes=axes, accumulate=accumulate)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-6)
    assert not np.shares_memory(got, x)


def test_index_put_bool_mask():
    x = randn(3, 4, 5)
    mask = x[:, :, 0] > 0
    v = np.array(7.0, np.float32)
    same(run("index_put", [x, v, mask], axes=[0]), torch.ops.aten.index_put.default(T(x), [T(mask)], T(v)))
    full = x > 0.5
    same(run("index_put", [x, v, full], axes=[0]), T(x).masked_fill(T(full), 7.0))
    m2 = x[0] > 0
    same(run("index_put", [x, v, m2], axes=[1]), torch.ops.aten.index_put.default(T(x), [None, T(m2)], T(v)))
    with pytest.raises(ValueError):
        infer("index_put", [("float32", (3, 4)), ("float32", ()), ("bool", (3, 5))], axes=[0])
    with pytest.raises(ValueError):
        infer("index_put", [("float32", (3, 4)), ("int64", ()), ("int64", (2,))], axes=[0])


# -- scatter ------------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_matches_torch(axis):
    x = randn(4, 5, 6)
    ishape = [3, 4, 5]
    # a permutation along the axis gives distinct targets, so plain scatter is deterministic
    n = x.shape[axis]
    idx = np.argsort(rng.random([*ishape[:axis % 3], n, *ishape[axis % 3 + 1:]]), axis=axis)
    idx = np.take(idx, np.arange(ishape[axis]), axis=axis)
    src = randn(*ishape)
    same(run("scatter", [x, idx, src], axis=axis), torch.scatter(T(x), axis, T(idx), T(src)))
    v = np.array(2.5, np.float32)
    same(run("scatter", [x, idx, v], axis=axis), torch.scatter(T(x), axis, T(idx), 2.5))


@pytest.mark.parametrize("reduce, torch_reduce", [("add", "sum"), ("mul", "prod"), ("max", "amax"), ("min", "amin")])
def test_scatter_reduce_matches_torch(reduce, torch_reduce):
    x = randn(4, 5)
    idx = ints(4, 6, 5)  # repeated targets
    src = randn(6, 5)
    want = torch.scatter_reduce(T(x), 0, T(idx), T(src), torch_reduce)
    got = run("scatter", [x, idx, src], axis=0, reduce=reduce)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)
    if reduce == "add":
        np.testing.assert_allclose(got, torch.scatter_add(T(x), 0, T(idx), T(src)).numpy(), rtol=1e-6)


def test_scatter_rejects():
    with pytest.raises(ValueError):
        infer("scatter", [("float32", (4, 5)), ("int64", (2, 5)), ("float32", (2, 5))], axis=0, reduce="mean")
    with pytest.raises(ValueError):
        infer("scatter", [("float32", (4, 5)), ("int64", (2, 6)), ("float32", (2, 6))], axis=0)
    with pytest.raises(ValueError):
        infer("scatter", [("float32", (4, 5)), ("int64", (2, 5)), ("int64", (2, 5))], axis=0)


# -- slice_update -------------------------------------------------------------------------------

@pytest.mark.parametrize("axis, begin, end, step", [(0, 1, 3, 1), (1, 0, 5, 2), (-1, -4, 2**63 - 1, 1), (2, 6, 6, 1)])
def test_slice_update_matches_slice_scatter(axis, begin, end, step):
    x = randn(4, 5, 6)
    region = x[tuple(slice(begin, end, step) if a == axis % 3 else slice(None) for a in range(3))]
    src = randn(*region.shape)
    got = run("slice_update", [x, src], axes=[axis], begin=[begin], end=[end], step=[step])
    same(got, torch.slice_scatter(T(x), T(src), axis, begin, end, step))
    assert not np.shares_memory(got, x)


def test_slice_update_broadcasts_and_rejects():
    x = randn(3, 4)
    same(run("slice_update", [x, np.zeros((1, 1), np.float32)], axes=[1], begin=[1], end=[3]),
         np.concatenate([x[:, :1], np.zeros((3, 2), np.float32), x[:, 3:]], 1))
    with pytest.raises(ValueError):
        infer("slice_update", [("float32", (3, 4)), ("float32", (3, 3))], axes=[1], begin=[1], end=[3])


# -- topk / sort --------------------------------------------------------------------------------

@pytest.mark.parametrize("k, axis, largest", [(1, -1, True), (3, -1, False), (4, 0, True), (2, 1, True), (0, 1, True)])
def test_topk_matches_torch(k, axis, largest):
    x = rng.permutation(4 * 5 * 6).reshape(4, 5, 6).astype(np.float32)  # distinct values
    vals, idx = run("topk", [x], k=k, axis=axis, largest=largest)
    wv, wi = torch.topk(T(x), k, axis, largest)
    same(vals, wv)
    same(idx, wi)
    with pytest.raises(ValueError):
        infer("topk", [("float32", (3, 4))], k=5)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.float16])
def test_sort_matches_torch_stable(descending, dtype):
    x = rng.integers(0, 4, (3, 7)).astype(dtype)  # many ties: stable order must match
    for axis in (0, -1):
        vals, idx = run("sort", [x], axis=axis, descending=descending)
        wv, wi = torch.sort(T(x), dim=axis, descending=descending, stable=True)
        same(vals, wv)
        same(idx, wi)


def test_sort_nan_is_largest():
    x = np.array([1.0, np.nan, -2.0, 3.0, np.nan], np.float32)
    for descending in (False, True):
        vals, idx = run("sort", [x], axis=0, descending=descending)
        wv, wi = torch.sort(T(x), descending=descending, stable=True)
        np.testing.assert_array_equal(vals, wv.numpy())
        same(idx, wi)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.booleans())
def test_topk_of_random_shapes(n, m, largest):
    x = rng.permutation(n * m).reshape(n, m).astype(np.float32)
    k = m // 2
    vals, idx = run("topk", [x], k=k, axis=1, largest=largest)
    wv, wi = torch.topk(T(x), k, 1, largest)
    same(vals, wv)
    same(idx, wi)
