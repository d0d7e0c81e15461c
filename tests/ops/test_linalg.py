"""Matrix-product ops: NumPy references against torch, and type inference against computed results."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from helpers import infer, run

rng = np.random.default_rng(3)
T = torch.from_numpy


def close(got, want, rtol=1e-5, atol=1e-5):
    want = want.numpy()
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol)


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


MATMUL_SHAPES = [
    ((3, 4), (4, 5)), ((4,), (4,)), ((4,), (4, 5)), ((3, 4), (4,)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 6)), ((4,), (2, 4, 5)), ((2, 3, 4), (4,)), ((1, 4), (3, 2, 4, 1)), ((3, 0), (0, 2)),
]


@pytest.mark.parametrize("sx, sy", MATMUL_SHAPES)
def test_matmul_matches_torch(sx, sy):
    x, y = randn(*sx), randn(*sy)
    close(run("matmul", [x, y]), torch.matmul(T(x), T(y)))


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.int32])
def test_matmul_other_dtypes(dtype):
    if dtype == np.float16:
        x, y = randn(3, 16, dtype=dtype), randn(16, 5, dtype=dtype)
        close(run("matmul", [x, y]), torch.matmul(T(x).float(), T(y).float()).half(), 1e-3, 1e-3)
    else:
        x, y = rng.integers(-5, 5, (2, 3, 4)).astype(dtype), rng.integers(-5, 5, (4, 2)).astype(dtype)
        close(run("matmul", [x, y]), torch.matmul(T(x), T(y)))


def test_matmul_infer_errors_and_symbolic():
    with pytest.raises(TypeError):
        infer("matmul", [("float32", (3, 4)), ("float32", (5, 6))])
    with pytest.raises(TypeError):
        infer("matmul", [("float32", ()), ("float32", (3,))])
    with pytest.raises(TypeError):
        infer("matmul", [("float32", (3, 4)), ("float16", (4, 6))])
    assert infer("matmul", [("float32", ("b", "s", 64)), ("float32", ("b", 64, "t"))])[0].shape == ("b", "s", "t")
    assert infer("matmul", [("float32", ("b", "s", 4)), ("float32", (4,))])[0].shape == ("b", "s")


@pytest.mark.parametrize("xshape", [(4,), (3, 4), (2, 3, 4), (2, 1, 3, 4), (0, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(xshape, bias):
    x, w = randn(*xshape), randn(5, 4)
    b = randn(5) if bias else None
    got = run("linear", [x, w, b])
    close(got, F.linear(T(x), T(w), None if b is None else T(b)))


def test_linear_float16_and_infer():
    x, w, b = randn(3, 8, dtype=np.float16), randn(5, 8, dtype=np.float16), randn(5, dtype=np.float16)
    close(run("linear", [x, w, b]), F.linear(T(x).float(), T(w).float(), T(b).float()).half(), 1e-3, 1e-3)
    assert infer("linear", [("float32", ("b", "s", 8)), ("float32", (16, 8))])[0].shape == ("b", "s", 16)
    with pytest.raises(TypeError):
        infer("linear", [("float32", (3, 8)), ("float32", (16, 7))])
    with pytest.raises(TypeError):
        infer("linear", [("float32", (3, 8)), ("float32", (16, 8)), ("float32", (15,))])


EINSUM = [
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bij,kj->bik", [(2, 3, 4), (5, 4)]),
    ("ij->ji", [(3, 4)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),
    ("ij,ij", [(3, 4), (3, 4)]),
    ("i,j->ij", [(3,), (4,)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),
    ("b...d,bd->b...", [(2, 3, 5, 4), (2, 4)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 5, 4), (2, 3, 6, 4)]),
    ("ij,jk,kl->il", [(3, 4), (4, 5), (5, 2)]),
    ("bij,bjk", [(2, 3, 4), (2, 4, 5)]),
    ("i...->...", [(3, 4, 5)]),
    ("ij,j->i", [(3, 4), (1,)]),
]


@pytest.mark.parametrize("eq, shapes", EINSUM)
def test_einsum_matches_torch(eq, shapes):
    xs = [randn(*s) for s in shapes]
    close(run("einsum", xs, equation=eq), torch.einsum(eq, *[T(x) for x in xs]))


def test_einsum_rejects_bad_equations():
    with pytest.raises(ValueError):
        infer("einsum", [("float32", (3, 4))], equation="ijk->i")
    with pytest.raises(ValueError):
        infer("einsum", [("float32", (3, 4))], equation="ij->k")
    with pytest.raises(TypeError):
        infer("einsum", [("float32", (3, 4)), ("float32", (5, 6))], equation="ij,jk->ik")


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.lists(st.integers(1, 3), max_size=2),
       st.booleans(), st.booleans())
def test_matmul_fuzz(m, k, n, batch, vx, vy):
    sx = (k,) if vx else tuple(batch) + (m, k)
    sy = (k,) if vy else tuple(batch[1:]) + (k, n)
    x, y = randn(*sx), randn(*sy)
    close(run("matmul", [x, y]), torch.matmul(T(x), T(y)))
