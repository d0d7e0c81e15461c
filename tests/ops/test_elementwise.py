"""Elementwise ops: NumPy references against torch, and type inference against computed results."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from pocketml.ir import DType, TensorType, get_op
from helpers import run, infer

rng = np.random.default_rng(0)


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def randint(*shape, lo=-20, hi=20, dtype=np.int64):
    return rng.integers(lo, hi, shape).astype(dtype)


def close(got, want, rtol=1e-6, atol=1e-6):
    want = want.numpy() if isinstance(want, torch.Tensor) else want
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol)


T = torch.from_numpy
SHAPES = [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((), (3,)), ((1, 7), ()), ((0, 3), (3,))]


# -- binary arithmetic --------------------------------------------------------------------------

@pytest.mark.parametrize("sx, sy", SHAPES)
@pytest.mark.parametrize("op, fn", [("add", torch.add), ("sub", torch.sub), ("mul", torch.mul),
                                    ("maximum", torch.maximum), ("minimum", torch.minimum)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.int32, np.uint8])
def test_binary_matches_torch(op, fn, sx, sy, dtype):
    if dtype == np.uint8:
        x, y = randint(*sx, lo=0, hi=255, dtype=dtype), randint(*sy, lo=0, hi=255, dtype=dtype)
    elif np.dtype(dtype).kind == "i":
        x, y = randint(*sx, dtype=dtype), randint(*sy, dtype=dtype)
    else:
        x, y = randn(*sx, dtype=dtype), randn(*sy, dtype=dtype)
    close(run(op, [x, y]), fn(T(x), T(y)))


def test_bool_add_mul_are_or_and():
    x, y = rng.random((3, 4)) > 0.5, rng.random((4,)) > 0.5
    close(run("add", [x, y]), torch.add(T(x), T(y)))
    close(run("mul", [x, y]), torch.mul(T(x), T(y)))
    close(run("maximum", [x, y]), torch.maximum(T(x), T(y)))


def test_binary_rejects_mixed_dtypes_and_bad_shapes():
    with pytest.raises(TypeError):
        infer("add", [("float32", (2,)), ("int64", (2,))])
    with pytest.raises(ValueError):
        infer("mul", [("float32", (2, 3)), ("float32", (4,))])
    with pytest.raises(TypeError):
        infer("sub", [("bool", (2,)), ("bool", (2,))])


def test_binary_symbolic_shapes():
    assert infer("add", [("float32", ("b", 1, 4)), ("float32", (3, 1))])[0].shape == ("b", 3, 4)
    assert infer("less", [("float32", ("b", "s")), ("float32", ("s",))])[0] == TensorType(DType.bool, ("b", "s"))


def test_integer_arithmetic_wraps_like_torch():
    x = np.array([250, 3], np.uint8)
    y = np.array([10, 5], np.uint8)
    close(run("add", [x, y]), T(x) + T(y))
    close(run("sub", [y, x]), T(y) - T(x))
    big = np.array([2**62], np.int64)
    close(run("mul", [big, np.array([4], np.int64)]), T(big) * 4)


def test_nan_propagates_in_maximum_minimum():
    x = np.array([np.nan, 1, 2], np.float32)
    y = np.array([0, np.nan, 1], np.float32)
    close(run("maximum", [x, y]), torch.maximum(T(x), T(y)))
    close(run("minimum", [x, y]), torch.minimum(T(x), T(y)))


# -- division -----------------------------------------------------------------------------------

def _div_operands(dtype):
    if np.dtype(dtype).kind == "f":
        x = (randn(4, 5) * 10).astype(dtype)
        y = randn(5).astype(dtype)
        x[0, :3] = [7, -7, 0]
        y[:3] = [2, 2, -3]
        return x, y
    x = randint(4, 5, dtype=dtype)
    y = randint(5, lo=1, hi=6, dtype=dtype) * np.where(rng.random(5) > 0.5, 1, -1).astype(dtype)
    return x, y


@pytest.mark.parametrize("mode", ["trunc", "floor"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.int32, np.int8])
def test_div_rounding_matches_torch(mode, dtype):
    x, y = _div_operands(dtype)
    close(run("div", [x, y], rounding_mode=mode), torch.div(T(x), T(y), rounding_mode=mode))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_true_div_matches_torch(dtype):
    x, y = _div_operands(dtype)
    close(run("div", [x, y]), torch.div(T(x), T(y)), rtol=1e-3 if dtype == np.float16 else 1e-6)


def test_div_by_zero_floats():
    x = np.array([1, -1, 0, 3.5], np.float32)
    y = np.zeros(4, np.float32)
    for mode in (None, "trunc", "floor"):
        got = run("div", [x, y], **({} if mode is None else {"rounding_mode": mode}))
        close(got, torch.div(T(x), T(y), rounding_mode=mode))


def test_div_rejects_integer_true_division_and_bad_mode():
    with pytest.raises(TypeError):
        infer("div", [("int64", (2,)), ("int64", (2,))])
    with pytest.raises(ValueError):
        infer("div", [("float32", (2,)), ("float32", (2,))], rounding_mode="ceil")


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
def test_fmod_remainder_match_torch(dtype):
    x, y = _div_operands(dtype)
    close(run("fmod", [x, y]), torch.fmod(T(x), T(y)), rtol=1e-5, atol=1e-5)
    close(run("remainder", [x, y]), torch.remainder(T(x), T(y)), rtol=1e-5, atol=1e-5)


# -- pow ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("exp", [2.0, 3.0, 0.5, -1.0, 2.5, -0.7, 0.0])
def test_pow_float_matches_torch(exp):
    x = np.abs(randn(3, 4)) + 0.1
    e = np.float32(exp)
    close(run("pow", [x, np.asarray(e)]), torch.pow(T(x), exp), rtol=2e-6)


def test_pow_tensor_tensor_and_int():
    x, y = np.abs(randn(3, 4)) + 0.1, randn(4)
    close(run("pow", [x, y]), torch.pow(T(x), T(y)), rtol=2e-6)
    xi, yi = randint(3, 4, lo=-5, hi=5), randint(4, lo=0, hi=4)
    close(run("pow", [xi, yi]), torch.pow(T(xi), T(yi)))
    x16 = (np.abs(randn(5)) + 0.5).astype(np.float16)
    close(run("pow", [x16, np.asarray(np.float16(1.5))]), torch.pow(T(x16), 1.5), rtol=1e-3)


# -- unary --------------------------------------------------------------------------------------

_UNARY = [
    ("exp", torch.exp, lambda x: x), ("exp2", torch.exp2, lambda x: x), ("expm1", torch.expm1, lambda x: x),
    ("log", torch.log, np.abs), ("log2", torch.log2, np.abs), ("log10", torch.log10, np.abs),
    ("log1p", torch.log1p, np.abs), ("sqrt", torch.sqrt, np.abs), ("rsqrt", torch.rsqrt, np.abs),
    ("reciprocal", torch.reciprocal, lambda x: x), ("sin", torch.sin, lambda x: x),
    ("cos", torch.cos, lambda x: x), ("tan", torch.tan, lambda x: x), ("atan", torch.atan, lambda x: x),
    ("tanh", torch.tanh, lambda x: x), ("erf", torch.erf, lambda x: x), ("neg", torch.neg, lambda x: x),
    ("abs", torch.abs, lambda x: x), ("sign", torch.sign, lambda x: x), ("floor", torch.floor, lambda x: x),
    ("ceil", torch.ceil, lambda x: x), ("round", torch.round, lambda x: x), ("trunc", torch.trunc, lambda x: x),
]


@pytest.mark.parametrize("op, fn, domain", _UNARY)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_unary_float_matches_torch(op, fn, domain, dtype):
    x = domain(randn(3, 17) * 3).astype(dtype)
    x[0, :4] = [0.5, 1.5, -2.5, 0]
    if op in ("log", "log2", "log10", "sqrt", "rsqrt"):
        x[0, 3] = 1
    if dtype == np.float16:
        close(run(op, [x]), fn(T(x)), rtol=1e-3, atol=1e-3)
    else:
        close(run(op, [x]), fn(T(x)), rtol=3e-6, atol=1e-6)


@pytest.mark.parametrize("op, fn", [("neg", torch.neg), ("abs", torch.abs), ("sign", torch.sign),
                                    ("floor", torch.floor), ("ceil", torch.ceil), ("round", torch.round),
                                    ("trunc", torch.trunc)])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8])
def test_unary_integer_matches_torch(op, fn, dtype):
    x = randint(4, 5, dtype=dtype)
    close(run(op, [x]), fn(T(x)))


def test_unary_special_values():
    x = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-30, -6.5, 30.0], np.float32)
    for op, fn in [("sign", torch.sign), ("abs", torch.abs), ("floor", torch.floor), ("round", torch.round)]:
        np.testing.assert_array_equal(run(op, [x]), fn(T(x)).numpy(), err_msg=op)
    for op, fn in [("erf", torch.erf), ("tanh", torch.tanh), ("exp", torch.exp), ("sqrt", torch.sqrt)]:
        np.testing.assert_allclose(run(op, [x]), fn(T(x)).numpy(), rtol=2e-7, atol=0, err_msg=op)
    close(run("isnan", [x]), torch.isnan(T(x)))
    close(run("isinf", [x]), torch.isinf(T(x)))
    xi = randint(4)
    close(run("isnan", [xi]), torch.isnan(T(xi)))
    close(run("isinf", [xi]), torch.isinf(T(xi)))


def test_erf_is_accurate_in_float64():
    from pocketml.ir.ops.elementwise import erf64
    x = np.concatenate([np.linspace(-7, 7, 20001), [0.84375, 1.25, 1 / 0.35, 6.0, 1e-300]])
    want = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(erf64(x), want, rtol=1e-15, atol=1e-300)


def test_float_only_ops_reject_integers():
    for op in ("exp", "log", "sqrt", "erf", "tanh", "reciprocal"):
        with pytest.raises(TypeError):
            infer(op, [("int64", (3,))])
    with pytest.raises(TypeError):
        infer("neg", [("bool", (3,))])


# -- comparison and logic -----------------------------------------------------------------------

@pytest.mark.parametrize("sx, sy", SHAPES)
@pytest.mark.parametrize("op, fn", [("equal", torch.eq), ("not_equal", torch.ne), ("less", torch.lt),
                                    ("less_equal", torch.le), ("greater", torch.gt), ("greater_equal", torch.ge)])
def test_comparisons_match_torch(op, fn, sx, sy):
    x, y = randint(*sx, lo=-2, hi=2), randint(*sy, lo=-2, hi=2)
    close(run(op, [x, y]), fn(T(x), T(y)))
    xf, yf = x.astype(np.float32), y.astype(np.float32)
    if xf.size:
        xf.reshape(-1)[0] = np.nan
    close(run(op, [xf, yf]), fn(T(xf), T(yf)))


@pytest.mark.parametrize("op, fn", [("logical_and", torch.logical_and), ("logical_or", torch.logical_or),
                                    ("logical_xor", torch.logical_xor)])
def test_logical_match_torch_on_mixed_dtypes(op, fn):
    x = rng.random((3, 4)) > 0.5
    y = randint(4, lo=-1, hi=2).astype(np.float32)
    close(run(op, [x, y]), fn(T(x), T(y)))
    close(run(op, [y, y]), fn(T(y), T(y)))
    close(run("logical_not", [y]), torch.logical_not(T(y)))


def test_where_matches_torch():
    c = rng.random((3, 1, 4)) > 0.5
    x, y = randn(5, 4), randn(3, 5, 1)
    close(run("where", [c, x, y]), torch.where(T(c), T(x), T(y)))
    xi = randint(4)
    close(run("where", [c, xi, np.asarray(np.int64(-1))]), torch.where(T(c), T(xi), -1))
    with pytest.raises(TypeError):
        infer("where", [("float32", (3,)), ("float32", (3,)), ("float32", (3,))])
    with pytest.raises(TypeError):
        infer("where", [("bool", (3,)), ("float32", (3,)), ("float16", (3,))])


# -- clip and cast ------------------------------------------------------------------------------

@pytest.mark.parametrize("lo, hi", [(-0.5, 0.5), (None, 0.2), (-0.1, None), (1.0, -1.0)])
def test_clip_matches_torch(lo, hi):
    x = randn(4, 5)
    x[0, 0] = np.nan
    close(run("clip", [x], min=lo, max=hi), torch.clamp(T(x), lo, hi))
    x16 = x.astype(np.float16)
    close(run("clip", [x16], min=lo, max=hi), torch.clamp(T(x16), lo, hi))


def test_clip_integers():
    x = randint(4, 5)
    close(run("clip", [x], min=-3, max=4), torch.clamp(T(x), -3, 4))
    x8 = randint(6, dtype=np.uint8, lo=0, hi=255)
    close(run("clip", [x8], min=10, max=200), torch.clamp(T(x8), 10, 200))


@pytest.mark.parametrize("src", ["float32", "float16", "int64", "int32", "int8", "uint8", "bool"])
@pytest.mark.parametrize("dst", ["float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"])
def test_cast_matches_torch(src, dst):
    if src == "bool":
        x = rng.random((3, 5)) > 0.5
    elif src.startswith("float"):
        x = np.clip(randn(3, 5) * 50, -120, 120).astype(src)  # out-of-range float → int is undefined
        x[0, :3] = [0, -0.7, 0.7]
        if dst == "uint8":
            x = np.abs(x)  # negative float → uint8 is undefined in C (and torch)
    else:
        x = randint(3, 5, lo=0 if src == "uint8" else -100, hi=100, dtype=src)
    want = T(x).to(getattr(torch, dst))
    close(run("cast", [x], dtype=dst), want, rtol=1e-3)


def test_cast_needs_dtype():
    with pytest.raises(KeyError):
        get_op("cast").with_defaults({})


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=0, max_size=4), st.lists(st.booleans(), min_size=4, max_size=4),
       st.integers(0, 4))
def test_broadcast_shapes_fuzz(shape, ones, drop):
    sx = tuple(shape)
    sy = tuple(1 if o else d for d, o in zip(sx, ones))[min(drop, len(sx)):]
    x, y = randn(*sx), randn(*sy)
    close(run("add", [x, y]), T(x) + T(y))
    close(run("greater", [x, y]), T(x) > T(y))
    c = np.asarray(x > 0)
    close(run("where", [c, x, y]), torch.where(T(c), T(x), T(y)))
