"""The small steps of a decode step in the C++ loop (`_native.Program`): arange with symbolic bounds,
cast, concat, float32 unary math (a rotary embedding's cos/sin tables) and sums (an encoder's
mean pooling), against their NumPy references: bit for bit (cos/sin/exp within an ulp), and the fallback where a kernel does not take
its arguments."""
from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

import pocketml as pm
from pocketml.ir import DType, Function, Op, Program, TensorType, Value, get_op
from pocketml.runtime import native

pytestmark = pytest.mark.skipif(not native.available() or not hasattr(native._native, "Program"),
                                reason="native extension not built")

RNG = np.random.default_rng(0)
DTYPES = ["float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"]


def reference(name, arrays, **attrs):
    opdef = get_op(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return opdef.compute(list(arrays), opdef.with_defaults(attrs))[0]


def one_step(kind, params, arrays, views=(), syms=(), op=None, **attrs):
    """(output, fallback calls) of one `kind` step over arrays; the fallback runs op's reference."""
    n = len(arrays)
    p = native._native.Program(n + 1, list(range(n)), [n], [], [(kind, list(range(n)), [n], [], list(views),
                                                                 params)], 0, len(syms), 1)
    calls = []

    def fallback(i, args):
        calls.append(i)
        return [reference(op, args, **attrs)]
    out = p.run(list(arrays), [], list(syms), fallback)[0]
    assert p.fallback_calls == len(calls)
    return out, len(calls)


def assert_same(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape, want.shape)
    np.testing.assert_array_equal(np.ascontiguousarray(got).view(np.uint8),
                                  np.ascontiguousarray(want).view(np.uint8))  # NaN payloads, -0 too


def values(dtype, shape):
    if dtype == "bool":
        return RNG.integers(0, 2, shape).astype(bool)
    if dtype in ("float32", "float16"):
        x = RNG.standard_normal(shape) * RNG.choice([0.01, 1, 100, 1e4], shape)
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


# -- arange ------------------------------------------------------------------------------------

@pytest.mark.parametrize("start,end,step", [(0, 7, 1), (3, 11, 3), (-5, 5, 2), (10, -3, -4), (4, 4, 1), (9, 2, -1),
                                            (-2**40, -2**40 + 5, 1), (0, 1, 2**40)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_arange_equals_the_reference(start, end, step, dtype):
    for syms, params in [((), {"start": [start], "end": [end], "step": [step]}),
                         ((start, end), {"start": [(0,)], "end": [(1,)], "step": [step]})]:
        got, calls = one_step("arange", {**params, "dtype": dtype}, [], syms=syms)
        assert calls == 0
        assert_same(got, reference("arange", [], start=start, end=end, step=step, dtype=dtype))


@pytest.mark.parametrize("start,end,step", [(0, 5, 0), (5, 0, 1), (0, 5, -1)])
def test_arange_errors_come_from_the_reference(start, end, step):
    with pytest.raises(ValueError, match="arange"):
        one_step("arange", {"start": [start], "end": [end], "step": [step], "dtype": "int64"}, [],
                 op="arange", start=start, end=end, step=step)


# -- cast --------------------------------------------------------------------------------------

@pytest.mark.parametrize("src,dst", list(itertools.product(DTYPES, DTYPES)))
def test_cast_equals_astype_bit_for_bit(src, dst):
    x = values(src, (3, 5, 7))
    if src in ("float32", "float16") and dst not in ("float32", "float16", "bool"):
        info = np.iinfo(dst)  # in range: larger ones are left to the reference (below)
        x = np.clip(x, max(info.min, -6e4), min(info.max, 6e4)).astype(src)
    for arr, views in [(x, ()), (x.transpose(2, 0, 1)[:, ::2], ()),
                       (x, [(0, "transpose", [1, 2, 0], None, None, None), (0, "slice", [0], [-1], [0], [-2])])]:
        got, calls = one_step("cast", {"dtype": dst}, [arr], views=views)
        assert calls == 0
        want = reference("cast", [x.transpose(1, 2, 0)[-1:0:-2] if views else arr], dtype=dst)
        assert_same(got, want)


@pytest.mark.parametrize("dst", ["int64", "int32", "int8", "uint8", "float16", "float32"])
def test_casts_numpy_leaves_to_the_platform_go_to_the_reference(dst):
    for src in ("float32", "float16"):
        if src == dst:
            continue
        x = np.array([1.5, -2.5, np.nan, 3.0, np.inf, -3e4, 7], dtype=src)
        if dst in ("float32", "float16"):
            x = x[[0, 2]]  # a NaN to another float type: payloads, quieting
        got, calls = one_step("cast", {"dtype": dst}, [x], op="cast", dtype=dst)
        assert calls == 1
        assert_same(got, reference("cast", [x], dtype=dst))


def test_float_to_int_range_edges():
    x = np.array([2.0**63, -2.0**63, 2.0**31, -2.0**31, 127.9, -128.9, 255.9, -0.9, 65504], np.float32)
    for dst in ("int64", "int32", "int16", "int8", "uint8"):
        info = np.iinfo(dst)
        inside = x[[info.min <= math.trunc(float(v)) <= info.max for v in x]]
        got, calls = one_step("cast", {"dtype": dst}, [inside])
        assert calls == 0
        assert_same(got, reference("cast", [inside], dtype=dst))
        got, calls = one_step("cast", {"dtype": dst}, [x], op="cast", dtype=dst)
        assert calls == (len(inside) < len(x))


def test_float16_rounding_and_specials():
    halves = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    halves = halves[~np.isnan(halves)]
    got, calls = one_step("cast", {"dtype": "float32"}, [halves])
    assert calls == 0 and np.array_equal(got.view(np.uint32), halves.astype(np.float32).view(np.uint32))
    # every float16, the points half-way between neighbours and just either side of them
    f = got.astype(np.float64)
    mid = ((f[:-1] + f[1:]) / 2)[np.isfinite(f[:-1] + f[1:])].astype(np.float32)
    bits = mid.view(np.uint32)
    x = np.concatenate([got, mid, (bits + 1).view(np.float32), (bits - 1).view(np.float32),
                        np.array([65519.996, 65520, 1e-8, -3e-8, 2.0**-25, 2.0**-24, 1e30], np.float32)])
    x = x[~np.isnan(x)]
    got, calls = one_step("cast", {"dtype": "float16"}, [x])
    assert calls == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert_same(got, x.astype(np.float16))


def test_int64_to_float32_rounds_once():
    x = np.array([2**53 + 1, 2**53 + 3, (2**53 + 1) * 2**9 + 1, 2**60 + 2**36 + 1, -(2**60 + 2**36 + 1),
                  2**24 + 1, 2**63 - 1, -2**63], np.int64)
    for dst in ("float32", "float16"):
        got, calls = one_step("cast", {"dtype": dst}, [x])
        assert calls == 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            assert_same(got, x.astype(dst))


# -- concat ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float16", "int64", "int8", "bool"])
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_concat_equals_numpy(dtype, axis):
    ax = axis % 3

    def part(size, kind):
        shape = [4, 6, 5]
        shape[ax] = size
        if kind == "transposed":
            return values(dtype, shape[::-1]).transpose(2, 1, 0)
        if kind == "strided":  # steps of 2, one axis reversed
            return values(dtype, [2 * s + 1 for s in shape])[1::2, ::2, ::-2][:shape[0], :shape[1], :shape[2]]
        if kind == "broadcast":  # a zero stride
            return np.broadcast_to(values(dtype, [1, *shape[1:]]), shape)
        return values(dtype, shape)

    parts = [part(3, "contiguous"), part(0, "transposed"), part(2, "strided"), part(4, "broadcast"),
             part(1, "transposed")]
    got, calls = one_step("concat", {"axis": axis}, parts)
    assert calls == 0
    assert_same(got, np.concatenate(parts, axis=axis))


def test_concat_reads_folded_views_and_one_value_twice():
    x = values("float32", (7, 32))
    got, calls = one_step("concat", {"axis": 1}, [x[:, ::2], x.T[::2].T],
                          views=[(0, "slice", [0], [1], [6], None), (1, "slice", [0], [-5], [100], None)])
    assert calls == 0
    assert_same(got, np.concatenate([x[1:6, ::2], x[2:, ::2]], axis=1))
    p = native._native.Program(2, [0], [1], [], [("concat", [0, 0], [1], [], [], {"axis": -1})], 0, 0, 1)
    assert_same(p.run([x], [], [], None)[0], np.concatenate([x, x], axis=-1))


def test_concat_the_kernel_does_not_take_goes_to_the_reference():
    a, b = np.ones((2, 3), np.float32), np.zeros((2, 3), np.int64)
    got, calls = one_step("concat", {"axis": 0}, [a, b], op="concat", axis=0)  # mixed dtypes: NumPy promotes
    assert calls == 1 and got.dtype == np.float64
    with pytest.raises(ValueError):  # NumPy's error for shapes that do not fit
        one_step("concat", {"axis": 0}, [a, np.ones((2, 4), np.float32)], op="concat", axis=0)
    with pytest.raises(np.exceptions.AxisError):
        one_step("concat", {"axis": 2}, [a, a], op="concat", axis=2)


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool", "float16"])
def test_copy_applies_its_views_into_a_fresh_buffer(dtype):
    x = values(dtype, (3, 4, 5))
    views = [(0, "transpose", [2, 0, 1], None, None, None), (0, "slice", [0], [1], [5], [2])]
    got, calls = one_step("copy", {}, [x], views=views)
    assert calls == 0
    assert_same(got, x.transpose(2, 0, 1)[1:5:2])
    assert not np.shares_memory(got, x)


# -- unary float32 -----------------------------------------------------------------------------

SPECIALS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, 88.7, 89.0, -104.0, 1e30, -3e38, np.pi / 2,
                     2.0**24, 1e6 + 0.5], np.float32)


EXACT_UNARY = ["neg", "relu", "abs", "sign", "floor", "ceil", "round", "trunc", "sqrt", "rsqrt", "reciprocal"]
UNARY_ATTRS = {"leaky_relu": {"alpha": 0.2}, "elu": {"alpha": 1.6732632423543772, "scale": 1.0507009873554805,
                                                     "input_scale": 1.0},
               "softplus": {"beta": 2.0, "threshold": 15.0}, "gelu": {"approximate": "tanh"}}


@pytest.mark.parametrize("op", ["cos", "sin", "exp", "tanh", "log", "sigmoid", "exp2", "expm1", "log2", "log10", "log1p",
                                "tan", "atan", "erf", "hardsigmoid", "hardswish", "mish", "log_sigmoid", "leaky_relu",
                                "elu", "softplus", "gelu"] + EXACT_UNARY)
def test_unary_is_the_reference_within_an_ulp(op):
    x = (RNG.standard_normal((5, 9, 13)) * RNG.choice([0.1, 3, 100, 2048], (5, 9, 13))).astype(np.float32)
    x[0, 0, :4] = [0.5, 1.5, -2.5, 2.5]  # rounding ties
    attrs = UNARY_ATTRS.get(op, {})
    params = {"op": "gelu_tanh"} if op == "gelu" else {"op": op, "params": list(attrs.values())}
    for arr, want_x in [(x, x), (x.transpose(2, 0, 1)[::-3], x.transpose(2, 0, 1)[::-3]), (SPECIALS, SPECIALS),
                        (np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))]:
        got, calls = one_step("unary", params, [arr])
        assert calls == 0
        want = reference(op, [want_x], **attrs)
        if op in EXACT_UNARY:
            assert_same(got, want)
        elif op == "gelu":  # 1 + tanh(u) cancels for u << 0: libm's and NumPy's last double bit show
            np.testing.assert_allclose(got, want, rtol=2e-7, atol=1e-14)
        else:
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_max_ulp(got, want, maxulp=1)


def test_unary_of_other_dtypes_goes_to_the_reference():
    x = np.linspace(-3, 3, 11).astype(np.float16)
    got, calls = one_step("unary", {"op": "cos"}, [x], op="cos")
    assert calls == 1
    assert_same(got, reference("cos", [x]))
    i = np.arange(-4, 4)
    got, calls = one_step("unary", {"op": "neg"}, [i], op="neg")
    assert calls == 1
    assert_same(got, -i)


# -- reduce_sum ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,axes", [((4, 128, 384), [1]), ((3, 5, 7), [-1]), ((3, 5, 7), [0]), ((3, 5, 7), [1, 2]),
                                        ((3, 5, 7), [2, 1]), ((3, 5, 7), None), ((2, 3, 4, 600), [1, 2]),
                                        ((6,), [0]), ((), None), ((), [-1]), ((0, 5), [1]), ((5, 0), [1]),
                                        ((2, 0, 3), [1])])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduce_sum_is_the_float64_sum_rounded_once(shape, axes, keepdims):
    x = values("float32", shape)
    for arr in (x, x.T if x.ndim > 1 else x):  # C-contiguous and a strided view
        got, calls = one_step("reduce_sum", {"axes": axes, "keepdims": keepdims}, [arr])
        assert calls == 0
        want = reference("reduce_sum", [arr], axes=axes, keepdims=keepdims)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_max_ulp(got, want, maxulp=1)  # NumPy's pairwise float64 sums
    big = np.full((3, 70_000), 0.1, np.float32)  # over the threads, both ways
    for ax in ([0], [1]):
        got, _ = one_step("reduce_sum", {"axes": ax, "keepdims": False}, [big])
        np.testing.assert_array_max_ulp(got, reference("reduce_sum", [big], axes=ax), maxulp=1)


@pytest.mark.parametrize("shape,axes", [((1, 384), [1]), ((3, 5, 7), [-1]), ((3, 5, 7), [0, 1]), ((4, 6), None),
                                        ((0, 5), [1])])
def test_reduce_norm_2_is_the_float64_norm_rounded_once(shape, axes):
    x = values("float32", shape)
    for keepdims in (False, True):
        got, calls = one_step("reduce_norm2", {"axes": axes, "keepdims": keepdims}, [x])
        assert calls == 0
        want = reference("reduce_norm", [x], axes=axes, keepdims=keepdims, ord=2.0)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_max_ulp(got, want, maxulp=1)


@pytest.mark.parametrize("shape,axes", [((1, 1280, 7, 7), [2, 3]), ((3, 5, 7), [0]), ((3, 5, 7), None),
                                        ((2, 3, 4, 600), [1, 2]), ((0, 5), [1]), ((5, 0), [1])])
def test_reduce_mean_is_the_float64_mean_rounded_once(shape, axes):
    """A CNN's global average pooling; an empty mean is NaN, as NumPy's."""
    x = values("float32", shape)
    for keepdims in (False, True):
        got, calls = one_step("reduce_mean", {"axes": axes, "keepdims": keepdims}, [x])
        assert calls == 0
        want = reference("reduce_mean", [x], axes=axes, keepdims=keepdims)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_max_ulp(got, want, maxulp=1)


@pytest.mark.parametrize("lo,hi", [(1e-9, None), (None, 0.5), (-0.5, 0.5), (0.0, 0.0), (1.0, -1.0), (0.1, None),
                                   (float("nan"), None)])
def test_clip_equals_the_reference_bit_for_bit(lo, hi):
    x = np.concatenate([values("float32", (50,)), SPECIALS, [-0.0, 0.0, 0.1, -1e-10]]).astype(np.float32)
    for arr in (x, x.reshape(-1, 2)[:, ::-1]):  # and a strided view
        got, calls = one_step("clip", {"min": lo, "max": hi}, [arr])
        assert calls == 0
        assert_same(got, reference("clip", [arr], min=lo, max=hi))


@pytest.mark.parametrize("scale,zero_point", [(0.25, None), (0.017, None), (0.25, 8), (1e-3, 0), (3.0, 255)])
def test_fake_quantize_equals_the_reference_bit_for_bit(scale, zero_point):
    x = np.concatenate([values("float32", (50,)) * 3, SPECIALS, [-0.0, 0.0, 0.125, -0.125, 0.375, 40.0, -40.0]])[:70]
    x = x.astype(np.float32)
    for arr in (x, x.reshape(-1, 2)[:, ::-1]):  # and a strided view
        got, calls = one_step("fake_quantize", {"scale": scale, "zero_point": zero_point}, [arr])
        assert calls == 0
        assert_same(got, reference("fake_quantize", [arr], scale=scale, zero_point=zero_point))


def test_reduce_sum_the_kernel_does_not_take_goes_to_the_reference():
    x = values("float32", (3, 4, 5))
    for params, arr in [({"axes": [0, 2], "keepdims": False}, x),  # not consecutive
                        ({"axes": [1], "keepdims": False}, x.astype(np.float64)),
                        ({"axes": [3], "keepdims": False}, x)]:  # out of range: the reference's error
        try:
            want = reference("reduce_sum", [arr], axes=params["axes"], keepdims=params["keepdims"])
        except ValueError as e:
            with pytest.raises(ValueError, match=str(e)):
                one_step("reduce_sum", params, [arr], op="reduce_sum", **params)
            continue
        got, calls = one_step("reduce_sum", params, [arr], op="reduce_sum", **params)
        assert calls == 1
        assert_same(got, want)


# -- comparisons, logic, where, int64 arithmetic ------------------------------------------------

PAIRS = [((4, 1, 5), (3, 1)), ((2, 3), (2, 3)), ((), (4,)), ((1, 1, 1, 7), (6, 1, 7)), ((0, 3), (1, 3))]


def pair_values(dtype, sa, sb):
    a, b = values(dtype, sa), values(dtype, sb)
    if dtype == "float32" and a.size and b.size:  # NaN, infinities, signed zeros, ties
        a.reshape(-1)[: min(4, a.size)] = [np.nan, -0.0, np.inf, 1.0][: min(4, a.size)]
        b.reshape(-1)[: min(4, b.size)] = [1.0, 0.0, np.inf, 1.0][: min(4, b.size)]
    if dtype == "int64" and a.size and b.size:
        b.reshape(-1)[0] = a.reshape(-1)[0]
    return a, b


@pytest.mark.parametrize("op", ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal"])
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_comparisons_equal_numpy(op, dtype):
    for sa, sb in PAIRS:
        a, b = pair_values(dtype, sa, sb)
        for x, y in ((a, b), (b, a)):
            got, calls = one_step("compare", {"op": op}, [x, y])
            assert calls == 0
            assert_same(got, reference(op, [x, y]))
    x = values("float32", (5, 6))[:, ::2]  # strided
    got, calls = one_step("compare", {"op": op}, [x, x.T[:1].T])
    assert calls == 0 and got.shape == (5, 3)


@pytest.mark.parametrize("op", ["logical_and", "logical_or", "logical_xor"])
def test_logic_equals_numpy(op):
    for sa, sb in PAIRS:
        a, b = pair_values("bool", sa, sb)
        got, calls = one_step("logical", {"op": op}, [a, b])
        assert calls == 0
        assert_same(got, reference(op, [a, b]))


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
def test_int64_arithmetic_wraps_like_numpy(op):
    for sa, sb in PAIRS:
        a, b = pair_values("int64", sa, sb)
        got, calls = one_step("binary", {"op": op}, [a, b])
        assert calls == 0
        assert_same(got, reference(op, [a, b]))


def test_where_equals_numpy():
    for dtype in ("float32", "int64", "float16", "bool"):
        for sc, sx, sy in [((2, 1, 4), (3, 1), ()), ((5,), (5,), (5,)), ((1, 1, 3, 3), (), ()), ((0, 2), (2,), (1,))]:
            c, x, y = values("bool", sc), values(dtype, sx), values(dtype, sy)
            got, calls = one_step("where", {}, [c, x, y])
            assert calls == 0
            assert_same(got, reference("where", [c, x, y]))


def test_mixed_dtypes_and_int_division_go_to_the_reference():
    a, b = values("int64", (3,)), values("float32", (3,))
    for kind, params, op, args in [("compare", {"op": "less"}, "less", [a, b]),
                                   ("logical", {"op": "logical_and"}, "logical_and", [a, b]),
                                   ("binary", {"op": "div"}, "div", [a, a | 1]),
                                   ("where", {}, "where", [values("bool", (3,)), a, b])]:
        attrs = {"rounding_mode": "none"} if op == "div" else {}
        got, calls = one_step(kind, params, args, op=op, **attrs)
        assert calls == 1
        assert_same(got, reference(op, args, **attrs))


def test_malformed_specs_are_refused():
    def build(kind, params, nin=1):
        native._native.Program(nin + 1, list(range(nin)), [nin], [], [(kind, list(range(nin)), [nin], [], [], params)],
                               0, 1, 1)
    with pytest.raises(ValueError, match="dtype"):
        build("cast", {"dtype": "float64"})
    with pytest.raises(ValueError, match="unary op"):
        build("unary", {"op": "cot"})
    with pytest.raises(ValueError, match="too many unary params"):
        build("unary", {"op": "elu", "params": [1.0, 1.0, 1.0, 1.0]})
    with pytest.raises(ValueError, match="one dimension each"):
        build("arange", {"start": [0, 1], "end": [5], "step": [1], "dtype": "int64"}, 0)
    with pytest.raises(ValueError, match="no entry"):
        build("arange", {"start": [(3,)], "end": [5], "step": [1], "dtype": "int64"}, 0)
    with pytest.raises(ValueError, match="unknown comparison"):
        build("compare", {"op": "spaceship"}, 2)
    with pytest.raises(ValueError, match="unknown logical"):
        build("logical", {"op": "logical_nand"}, 2)
    with pytest.raises(ValueError, match="too few inputs"):
        build("where", {}, 2)
    with pytest.raises(ValueError, match="axes must be None or not empty"):
        build("reduce_sum", {"axes": [], "keepdims": False})


# -- in a model --------------------------------------------------------------------------------

def _rotary_tables():
    """Llama's rotary tables for the new positions: arange(context - seq, context) -> cast ->
    outer product with the inverse frequencies -> concat(f, f) -> cos, sin."""
    inv = (1.0 / 10000 ** (np.arange(0, 16, 2) / 16)).astype(np.float32).reshape(1, 8)
    n = "(context)-(context-seq)"
    f32 = DType.float32
    fn = Function("main", [Value("ids", TensorType(DType.int64, (1, "seq"))),
                           Value("mask", TensorType(f32, (1, 1, "seq", "context")))], [
        Op("const", [], [Value("inv", TensorType(f32, (1, 8)))], {"weight": "inv"}),
        Op("arange", [], [Value("pos", TensorType(DType.int64, (n,)))],
           {"start": "context-seq", "end": "context", "step": 1, "dtype": "int64"}),
        Op("cast", ["pos"], [Value("posf", TensorType(f32, (n,)))], {"dtype": "float32"}),
        Op("expand_dims", ["posf"], [Value("col", TensorType(f32, (n, 1)))], {"axes": [1]}),
        Op("mul", ["col", "inv"], [Value("freqs", TensorType(f32, (n, 8)))]),
        Op("concat", ["freqs", "freqs"], [Value("emb", TensorType(f32, (n, 16)))], {"axis": 1}),
        Op("cos", ["emb"], [Value("cos", TensorType(f32, (n, 16)))]),
        Op("sin", ["emb"], [Value("sin", TensorType(f32, (n, 16)))]),
    ], ["pos", "cos", "sin"])
    return Program({"main": fn}, {"inv": inv})


def test_rotary_tables_run_with_no_fallback():
    prog = _rotary_tables()
    nat, ref = pm.Model(prog, backend="native"), pm.Model(prog, backend="reference")
    assert nat._executor.loop is not None
    kernels = {s.op_type: s.kernel for s in nat.plan_summary().steps}
    assert kernels == {"arange": "native:arange", "cast": "native:cast", "mul": "native:mul",
                       "concat": "native:concat", "cos": "native:cos", "sin": "native:sin"}
    for seq, context in [(5, 5), (1, 6), (1, 300), (3, 9)]:
        x = {"ids": np.zeros((1, seq), np.int64), "mask": np.zeros((1, 1, seq, context), np.float32)}
        got, want = nat.predict(x), ref.predict(x)
        assert nat._executor.loop.program.fallback_calls == 0
        np.testing.assert_array_equal(got["pos"], np.arange(context - seq, context))
        for k in ("cos", "sin"):
            np.testing.assert_array_max_ulp(got[k], want[k], maxulp=1)


# -- take, gather, index, cumsum ----------------------------------------------------------------

def _idx(shape, n, negative=False, dtype=np.int64):
    return RNG.integers(-n if negative else 0, n, shape).astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool", "float16", "int8"])
@pytest.mark.parametrize("xshape,axis,ishape", [((448, 384), 0, (1, 7)), ((3, 5, 7), 1, (4,)), ((3, 5, 7), -1, (2, 2)),
                                                 ((6,), 0, ()), ((4, 3), 1, (0,))])
def test_take_equals_the_reference(dtype, xshape, axis, ishape):
    x = values(dtype, xshape)
    n = xshape[axis]
    for negative, idt in ((True, np.int64), (False, np.int32)):
        idx = _idx(ishape, n, negative, idt)
        for arr in (x, x[::-1]):  # and a view with a negative stride
            got, calls = one_step("take", {"axis": axis, "negative": negative}, [arr, idx])
            assert calls == 0
            assert_same(got, reference("take", [arr, idx], axis=axis, negative_indices=negative))


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
@pytest.mark.parametrize("xshape,axis,ishape", [((1, 512), 1, (1, 9)), ((3, 5, 7), 0, (2, 5, 7)), ((3, 5, 7), 2, (3, 2, 9)),
                                                 ((4, 6), -1, (4, 0))])
def test_gather_equals_the_reference(dtype, xshape, axis, ishape):
    x = values(dtype, xshape)
    idx = _idx(ishape, xshape[axis])
    got, calls = one_step("gather", {"axis": axis}, [x, idx])
    assert calls == 0
    assert_same(got, reference("gather", [x, idx], axis=axis))


@pytest.mark.parametrize("dtype", ["bool", "int64", "float32"])
@pytest.mark.parametrize("xshape,axes,ishapes", [
    ((2, 9), [0, 1], [(2, 1, 1, 1), (1, 1, 1, 9)]),        # MiniLM's mask: bool x[b, s]
    ((1, 7), [0, 1], [(1, 1, 1, 1), (1, 1, 7, 1)]),        # Whisper's decoder positions
    ((3, 4, 5), [1], [(2, 3)]),                             # one axis, trailing dims kept
    ((3, 4, 5, 2), [1, 2], [(6,), (1,)]),                   # middle axes, broadcast
    ((4, 5), [0, 1], [(0,), (0,)]),                          # empty
])
def test_index_equals_the_reference(dtype, xshape, axes, ishapes):
    x = values(dtype, xshape)
    idxs = [_idx(s, xshape[a], negative=True) for s, a in zip(ishapes, axes)]
    got, calls = one_step("index", {"axes": axes}, [x, *idxs])
    assert calls == 0
    assert_same(got, reference("index", [x, *idxs], axes=axes))


@pytest.mark.parametrize("dtype", ["int64", "float32"])
@pytest.mark.parametrize("shape,axis", [((1, 9), 1), ((3, 5, 7), 0), ((3, 5, 7), -2), ((4,), 0), ((2, 0), 1)])
@pytest.mark.parametrize("op", ["cumsum", "cumprod"])
def test_cumsum_equals_the_reference(op, dtype, shape, axis):
    x = values(dtype, shape)
    if op == "cumprod" and dtype == "float32":
        x = (1 + x / 1e4).astype(np.float32)  # products that stay finite
    got, calls = one_step(op, {"axis": axis}, [x])
    assert calls == 0
    assert_same(got, reference(op, [x], axis=axis))  # int64 wraps; float32: the float64 sums rounded


def test_indexing_out_of_range_raises_the_references_error():
    from pocketml.errors import IndexRangeError

    x = values("float32", (4, 3))
    for kind, params, args, attrs in [
            ("take", {"axis": 0, "negative": False}, [x, np.array([0, -1])], {"axis": 0, "negative_indices": False}),
            ("take", {"axis": 1, "negative": True}, [x, np.array([3])], {"axis": 1, "negative_indices": True}),
            ("gather", {"axis": 0}, [x, np.array([[4, 0, 0]])], {"axis": 0}),
            ("index", {"axes": [0]}, [x, np.array([-5])], {"axes": [0]})]:
        with pytest.raises(IndexRangeError):
            one_step(kind, params, args, op=kind, **attrs)
    # what the kernels do not take runs the reference: a bool mask, separated axes, float16 cumsum
    got, calls = one_step("index", {"axes": [0]}, [x, np.array([True, False, True, True])], op="index", axes=[0])
    assert calls == 1 and got.shape == (3, 3)
    y = values("float32", (2, 3, 4))
    got, calls = one_step("index", {"axes": [0, 2]}, [y, np.array([1]), np.array([3])], op="index", axes=[0, 2])
    assert calls == 1
    h = values("float16", (3, 4))
    got, calls = one_step("cumsum", {"axis": 1}, [h], op="cumsum", axis=1)
    assert calls == 1
    assert_same(got, reference("cumsum", [h], axis=1))


# -- pooling ------------------------------------------------------------------------------------

POOLS = [  # (x shape, kernel, strides, pads, dilations, ceil_mode)
    ((2, 3, 9, 11), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], False),
    ((1, 4, 8, 7), [2, 2], None, [0, 0, 0, 0], [1, 1], True),         # strides default to the kernel
    ((1, 2, 10, 13), [3, 2], [2, 3], [1, 0, 0, 1], [2, 1], True),     # dilated (max), ceil_mode
    ((3, 5, 17), [4], [3], [2, 1], [1], True),                        # 1-D
    ((2, 1, 5, 5), [5, 5], [1, 1], [2, 2, 2, 2], [1, 1], False),
]


@pytest.mark.parametrize("case", POOLS, ids=str)
def test_max_pool_equals_the_reference_bit_for_bit(case):
    shape, kernel, strides, pads, dil, ceil = case
    x = values("float32", shape)
    x.reshape(-1)[::17] = np.nan  # NaN wins where it is in a window
    x.reshape(-1)[5::23] = -0.0
    attrs = dict(kernel=kernel, strides=strides, pads=pads, dilations=dil, ceil_mode=ceil)
    from pocketml.runtime.native_loop import _pool_spec
    kind, params = _pool_spec("max_pool", get_op("max_pool").with_defaults(attrs))
    assert kind == "pool"
    got, calls = one_step(kind, params, [x])
    assert calls == 0
    assert_same(got, reference("max_pool", [x], **attrs))


@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("divisor", [None, 3])
@pytest.mark.parametrize("case", POOLS, ids=str)
def test_avg_pool_equals_the_reference_bit_for_bit(case, include_pad, divisor):
    shape, kernel, strides, pads, _, ceil = case
    x = values("float32", shape)
    attrs = dict(kernel=kernel, strides=strides, pads=pads, ceil_mode=ceil, count_include_pad=include_pad,
                 divisor_override=divisor)
    from pocketml.runtime.native_loop import _pool_spec
    kind, params = _pool_spec("avg_pool", get_op("avg_pool").with_defaults(attrs))
    got, calls = one_step(kind, params, [x])
    assert calls == 0
    assert_same(got, reference("avg_pool", [x], **attrs))


# -- pad ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "int64", "bool", "float16"])
@pytest.mark.parametrize("mode,pads", [("constant", [0, 0, 1, 2, 3, 0]), ("constant", [1, -1, 0, 0, -2, 2]),
                                       ("reflect", [0, 0, 2, 1, 3, 4]), ("replicate", [1, 0, 0, 3, 5, 1]),
                                       ("circular", [0, 0, 3, 1, 5, 2])])
def test_pad_equals_the_reference_bit_for_bit(dtype, mode, pads):
    x = values(dtype, (2, 4, 5))
    for value in (0.0, -1.5, "inf"):
        attrs = {"pads": pads, "mode": mode, "value": value}
        fallback = mode == "constant" and value != 0.0 and dtype != "float32"
        if fallback and value == "inf" and dtype == "int64":
            with pytest.raises(ValueError):  # the reference's error, from the fallback
                one_step("pad", {"mode": mode, "pads": pads, "value": float(value)}, [x], op="pad", **attrs)
            continue
        got, calls = one_step("pad", {"mode": mode, "pads": pads, "value": float(value)}, [x], op="pad", **attrs)
        assert calls == (1 if fallback else 0)
        assert_same(got, reference("pad", [x], **attrs))


def test_pad_the_kernel_does_not_take_goes_to_the_reference():
    x = values("float32", (3, 4))
    attrs = {"pads": [0, 0, 4, 0], "mode": "reflect", "value": 0.0}  # reflecting more than once
    got, calls = one_step("pad", attrs, [x], op="pad", **attrs)
    assert calls == 1
    assert_same(got, reference("pad", [x], **attrs))


# -- prelu, softmax ------------------------------------------------------------------------------

@pytest.mark.parametrize("xshape,wshape", [((2, 5, 3, 7), (5,)), ((4, 6), (6,)), ((3, 4, 9), (1,)), ((7,), (1,)),
                                           ((0, 3, 2), (3,))])
def test_prelu_equals_the_reference_bit_for_bit(xshape, wshape):
    x = values("float32", xshape)
    if x.size >= SPECIALS.size:
        x.reshape(-1)[:SPECIALS.size] = SPECIALS
    w = RNG.standard_normal(wshape).astype(np.float32)
    got, calls = one_step("prelu", {}, [x, w])
    assert calls == 0
    assert_same(got, reference("prelu", [x, w]))


def test_prelu_of_mismatched_channels_goes_to_the_reference():
    x, w = values("float32", (2, 5, 3)), np.ones(4, np.float32)
    with pytest.raises(ValueError):
        one_step("prelu", {}, [x, w], op="prelu")


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape,axis", [((4, 10), -1), ((2, 3, 5, 7), 1), ((3, 17), 0), ((6,), 0), ((2, 1, 4), 1),
                                        ((0, 5), 1)])
def test_softmax_is_the_reference_within_two_ulp(log, shape, axis):
    x = (RNG.standard_normal(shape) * 4).astype(np.float32)
    if len(shape) == 2 and shape[0] >= 3 and shape[1] >= 4:
        x[0] = -np.inf  # no shift: NaN, as the reference
        x[1, 2] = np.inf
        x[2, 3] = np.nan
    op = "log_softmax" if log else "softmax"
    got, calls = one_step("softmax", {"axis": axis, "log": log}, [x])
    assert calls == 0
    want = reference(op, [x], axis=axis)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_max_ulp(np.nan_to_num(got), np.nan_to_num(want), maxulp=2)


def test_softmax_of_an_empty_row_raises_the_references_error():
    with pytest.raises(ValueError):
        one_step("softmax", {"axis": 1, "log": False}, [np.zeros((3, 0), np.float32)], op="softmax", axis=1)


EXTREMES = [((4, 9), [1], False), ((3, 5, 7), [0], True), ((3, 5, 7), [1, 2], False), ((2, 3, 4), None, False),
            ((2, 3, 4), None, True), ((6,), [0], True), ((0, 4), [1], False), ((), None, False)]


@pytest.mark.parametrize("op,shape,axes,keepdims",
                         [(op, *case) for op in ("reduce_max", "reduce_min", "argmax", "argmin") for case in EXTREMES
                          if not (op.startswith("arg") and case[1] is not None and len(case[1]) > 1)])  # one axis
def test_extremes_equal_the_reference(op, shape, axes, keepdims):
    arg = op.startswith("arg")
    x = values("float32", shape)
    if x.size > 12:
        x.reshape(-1)[[3, 7]] = np.nan  # NaN wins, the first one's position
        x.reshape(-1)[[5, 9]] = x.reshape(-1)[[4, 8]]  # ties: the first position
    attrs = ({"axis": None if axes is None else axes[0], "keepdims": keepdims} if arg
             else {"axes": axes, "keepdims": keepdims})
    got, calls = one_step(op, {"axes": axes, "keepdims": keepdims}, [x], op=op, **attrs)
    want = reference(op, [x], **attrs)
    assert calls == 0
    assert_same(got, want)


def test_extremes_of_empty_rows_raise_the_references_error():
    with pytest.raises(ValueError):
        one_step("reduce_max", {"axes": [1], "keepdims": False}, [np.zeros((3, 0), np.float32)], op="reduce_max",
                 axes=[1], keepdims=False)
    with pytest.raises(ValueError):
        one_step("argmax", {"axes": None, "keepdims": False}, [np.zeros((0,), np.float32)], op="argmax",
                 axis=None, keepdims=False)


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool", "float16"])
@pytest.mark.parametrize("shape,axis,sizes", [((7, 4), 0, [2, 0, 5]), ((3, 9), -1, [4, 5]), ((2, 3, 6), 1, [3])])
def test_split_equals_the_reference(dtype, shape, axis, sizes):
    x = values(dtype, shape)
    n = 1 + len(sizes)
    p = native._native.Program(n, [0], list(range(1, n)), [],
                               [("split", [0], list(range(1, n)), [], [], {"axis": axis, "sizes": sizes})], 0, 0, 1)
    got = p.run([x], [], [], lambda i, args: pytest.fail("fallback"))
    for g, w in zip(got, reference_all("split", [x], axis=axis, sizes=sizes)):
        assert_same(g, w)


def reference_all(name, arrays, **attrs):
    opdef = get_op(name)
    return opdef.compute(list(arrays), opdef.with_defaults(attrs))


@pytest.mark.parametrize("op,attrs", [("flip", {"axes": [0]}), ("flip", {"axes": [-1, 0]}), ("identity", {}),
                                      ("isnan", {}), ("logical_not", {}), ("argmax", {"axis": 1})])
def test_data_movement_and_predicates_run_natively_in_a_model(op, attrs):
    x = values("float32", (3, 4))
    x[0, 1] = np.nan
    out = get_op(op).infer([TensorType(DType.float32, (3, 4))], get_op(op).with_defaults(attrs))[0]
    fn = Function("main", [Value("x", TensorType(DType.float32, (3, 4)))],
                  [Op(op, ["x"], [Value("y", out)], attrs)], ["y"])
    nat, ref = pm.Model(Program({"main": fn}, {}), backend="native"), pm.Model(Program({"main": fn}, {}),
                                                                               backend="reference")
    assert [s.kernel for s in nat.plan_summary().steps] == [f"native:{op}"]
    assert_same(nat.predict({"x": x})["y"], ref.predict({"x": x})["y"])


@pytest.mark.parametrize("op,dtype", [("isnan", "float32"), ("isinf", "float32"), ("logical_not", "float32"),
                                      ("logical_not", "int64"), ("logical_not", "bool")])
def test_predicates_equal_the_reference(op, dtype):
    x = values(dtype, (4, 6))
    if dtype == "float32":
        x.reshape(-1)[:SPECIALS.size] = SPECIALS
    elif dtype == "int64":
        x[0, :3] = 0
    got, calls = one_step("predicate", {"op": op}, [x])
    assert calls == 0
    assert_same(got, reference(op, [x]))


RESIZES = [  # (x shape, mode, sizes, scales, align_corners)
    ((1, 3, 5, 7), "nearest", [10, 14], None, False),          # x2: torch's special case
    ((1, 3, 5, 7), "nearest", [7, 3], None, False),
    ((2, 2, 6, 9), "nearest", None, [1.5, 0.5], False),
    ((1, 2, 5, 7), "nearest_exact", [9, 4], None, False),
    ((1, 3, 5, 7), "linear", [11, 13], None, False),
    ((1, 3, 5, 7), "linear", [11, 13], None, True),
    ((1, 3, 8, 8), "linear", None, [2.0, 2.0], False),
    ((1, 3, 9, 6), "linear", [4, 3], None, False),               # downsampling
    ((2, 4, 17), "linear", [40], None, True),                    # 1-D
    ((1, 1, 3, 4, 5), "linear", [6, 8, 10], None, False),        # trilinear
    ((1, 2, 1, 4), "linear", [3, 9], None, True),                # one input row
    ((1, 3, 5, 7), "cubic", [10, 14], None, False),
    ((1, 3, 5, 7), "cubic", [9, 4], None, True),
    ((2, 2, 6, 6), "cubic", None, [1.5, 2.0], False),
    ((1, 2, 1, 3), "cubic", [4, 7], None, False),
]


@pytest.mark.parametrize("shape,mode,sizes,scales,ac", RESIZES)
def test_resize_equals_the_reference_bit_for_bit(shape, mode, sizes, scales, ac):
    x = values("float32", shape)
    attrs = {"mode": mode, "sizes": sizes, "scales": scales, "align_corners": ac}
    got, calls = one_step("resize", dict(attrs), [x])
    assert calls == 0
    assert_same(got, reference("resize", [x], **attrs))


CONV_TRANSPOSES = [  # (x shape, weight shape, strides, pads, dilations, output_padding, groups, bias)
    ((1, 4, 5, 6), (4, 3, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], [1, 1], 1, True),   # a decoder's x2 upsampling
    ((2, 6, 4, 4), (6, 2, 2, 2), [2, 2], [0, 0, 0, 0], [1, 1], [0, 0], 3, False),  # grouped, patch-wise
    ((1, 3, 7, 5), (3, 5, 3, 2), [1, 2], [0, 1, 1, 0], [2, 1], [0, 1], 1, True),   # dilated, asymmetric
    ((1, 17, 9), (17, 8, 4), [2], [1, 1], [1], [0], 1, True),                       # 1-D
    ((3, 5, 11), (5, 2, 1), [3], [0, 0], [1], [2], 1, False),                       # 1-D, 1 tap
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", CONV_TRANSPOSES)
def test_conv_transpose_matches_the_reference(case, threads):
    xs, ws, strides, pads, dilations, opad, groups, with_bias = case
    x, w = values("float32", xs) / 100, RNG.standard_normal(ws).astype(np.float32)
    bias = RNG.standard_normal(ws[1] * groups).astype(np.float32) if with_bias else None
    attrs = {"strides": strides, "pads": pads, "dilations": dilations, "output_padding": opad, "groups": groups}
    arrays = [x, w] + ([bias] if with_bias else [])
    n = len(arrays)
    p = native._native.Program(n + 1, list(range(n)), [n], [],
                               [("conv_transpose", list(range(n)), [n], [], [], dict(attrs))], 0, 0, threads)
    got = p.run(arrays, [], [], lambda i, args: pytest.fail("fallback"))[0]
    want = reference("conv_transpose", [x, w, bias], **attrs)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


MATMULS = [((3, 4), (4, 5)), ((2, 3, 7, 9), (2, 3, 9, 17)), ((2, 1, 5, 6), (3, 6, 4)), ((6,), (6, 3)), ((4, 6), (6,)),
           ((7,), (7,)), ((2, 50, 64), (64, 50)), ((1, 33), (33, 70)), ((0, 3), (3, 4)), ((3, 0), (0, 4))]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("xs,ys", MATMULS)
def test_matmul_of_activations_matches_the_reference(xs, ys, threads):
    x, y = RNG.standard_normal(xs).astype(np.float32), RNG.standard_normal(ys).astype(np.float32)
    p = native._native.Program(3, [0, 1], [2], [], [("matmul", [0, 1], [2], [], [], {})], 0, 0, threads)
    got = p.run([x, y], [], [], lambda i, args: pytest.fail("fallback"))[0]
    want = reference("matmul", [x, y])
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("xs,n,bias", [((3, 4), 5, True), ((2, 7, 33), 17, False), ((9,), 3, True), ((0, 4), 3, True)])
def test_linear_with_a_computed_weight_matches_the_reference(xs, n, bias):
    x = RNG.standard_normal(xs).astype(np.float32)
    w = RNG.standard_normal((n, xs[-1])).astype(np.float32)
    b = RNG.standard_normal(n).astype(np.float32)
    arrays = [x, w, b] if bias else [x, w]
    k = len(arrays)
    p = native._native.Program(k + 1, list(range(k)), [k], [], [("linear_dense", list(range(k)), [k], [], [], {})],
                               0, 0, 1)
    got = p.run(arrays, [], [], lambda i, args: pytest.fail("fallback"))[0]
    want = reference("linear", arrays)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_matmul_of_mismatched_operands_raises_the_references_error():
    x, y = np.ones((2, 3), np.float32), np.ones((4, 5), np.float32)
    with pytest.raises(ValueError):
        one_step("matmul", {}, [x, y], op="matmul")


@pytest.mark.parametrize("shape,groups,affine", [((2, 6, 5, 7), 3, True), ((1, 8, 33), 8, False), ((3, 4, 2, 2), 1, True),
                                                 ((2, 5), 5, True)])
def test_group_norm_matches_the_reference(shape, groups, affine):
    x = (RNG.standard_normal(shape) * 3 + 1).astype(np.float32)
    c = shape[1]
    params = [RNG.standard_normal(c).astype(np.float32) for _ in range(2)] if affine else []
    got, calls = one_step("group_norm", {"eps": 1e-5, "groups": groups}, [x, *params])
    assert calls == 0
    want = reference("group_norm", [x, *(params or [None, None])], groups=groups, eps=1e-5)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("stats", [True, False])
@pytest.mark.parametrize("shape", [(2, 6, 5, 7), (4, 3), (1, 16, 9)])
def test_batch_norm_matches_the_reference(shape, stats):
    x = (RNG.standard_normal(shape) * 3 + 1).astype(np.float32)
    c = shape[1]
    mean, w, b = (RNG.standard_normal(c).astype(np.float32) for _ in range(3))
    var = RNG.uniform(0.1, 2, c).astype(np.float32)
    arrays = [x, mean, var, w, b] if stats else [x, None, None, w, b]
    present = [a for a in arrays if a is not None]
    slots = [i for i, a in enumerate(arrays) if a is not None]
    n = len(arrays)
    p = native._native.Program(n + 1, slots, [n], [], [("batch_norm", list(range(n)), [n], [], [], {"eps": 1e-3})],
                               0, 0, 1)
    got = p.run(present, [], [], lambda i, args: pytest.fail("fallback"))[0]
    want = reference("batch_norm", arrays, eps=1e-3)
    if stats:  # an affine map per channel: bit for bit
        assert_same(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)



@pytest.mark.parametrize("dtype", ["float32", "int64", "bool", "float16"])
@pytest.mark.parametrize("shape,reps", [((2, 3), [2, 3]), ((4,), [3]), ((2, 1, 3), [1, 4, 0]), ((3, 2), [1, 1])])
def test_tile_equals_the_reference(dtype, shape, reps):
    x = values(dtype, shape)
    got, calls = one_step("tile", {"reps": reps}, [x])
    assert calls == 0
    assert_same(got, reference("tile", [x], reps=reps))


@pytest.mark.parametrize("op", ["tril", "triu"])
@pytest.mark.parametrize("shape,k", [((5, 5), 0), ((4, 7), 2), ((2, 6, 3), -1), ((3, 3), 9), ((3, 4), -9)])
def test_tril_triu_equal_the_reference(op, shape, k):
    x = values("float32", shape)
    got, calls = one_step(op, {"diagonal": k}, [x])
    assert calls == 0
    assert_same(got, reference(op, [x], diagonal=k))


@pytest.mark.parametrize("op", ["reduce_prod", "reduce_var", "reduce_logsumexp", "reduce_any", "reduce_all"])
@pytest.mark.parametrize("shape,axes,keepdims", [((4, 9), [1], False), ((3, 5, 7), [0], True), ((3, 5, 7), [1, 2], False),
                                                 ((2, 3, 4), None, False), ((6,), [0], True)])
def test_other_reductions_match_the_reference(op, shape, axes, keepdims):
    x = (1 + RNG.standard_normal(shape) / 4).astype(np.float32)
    attrs = {"axes": axes, "keepdims": keepdims}
    params = dict(attrs)
    if op == "reduce_var":
        attrs["correction"] = params["correction"] = 1.0
    inputs = [x]
    if op in ("reduce_any", "reduce_all"):
        x[x < 0.9] = 0
        inputs = [x, x.astype(np.int64), x.astype(bool)]
    for arr in inputs:
        got, calls = one_step(op, params, [arr])
        assert calls == 0
        want = reference(op, [arr], **attrs)
        if op in ("reduce_any", "reduce_all"):
            assert_same(got, want)
        else:
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_array_max_ulp(got, want, maxulp=1)


def test_logsumexp_of_infinite_and_nan_rows_is_the_references():
    x = np.array([[-np.inf, -np.inf], [np.inf, 1.0], [np.nan, 0.0], [3.0, 4.0]], np.float32)
    got, calls = one_step("reduce_logsumexp", {"axes": [1], "keepdims": False}, [x])
    assert calls == 0
    np.testing.assert_array_equal(got, reference("reduce_logsumexp", [x], axes=[1], keepdims=False))


@pytest.mark.parametrize("op", ["adaptive_avg_pool", "adaptive_max_pool"])
@pytest.mark.parametrize("shape,size", [((1, 3, 7, 9), [3, 4]), ((2, 2, 10), [4]), ((1, 2, 5, 6), [None, 2]),
                                        ((1, 1, 4, 4), [8, 3]), ((2, 3, 6, 6), [6, 6])])
def test_adaptive_pools_match_the_reference(op, shape, size):
    x = values("float32", shape)
    if op == "adaptive_max_pool":
        x.reshape(-1)[2] = np.nan
    got, calls = one_step(op, {"output_size": [-1 if o is None else o for o in size]}, [x])
    assert calls == 0
    want = reference(op, [x], output_size=size)
    if op == "adaptive_max_pool":
        assert_same(got, want)
    else:
        assert got.shape == want.shape
        np.testing.assert_array_max_ulp(got, want, maxulp=1)


@pytest.mark.parametrize("dtype", ["float32", "int64"])
@pytest.mark.parametrize("op,attrs", [("sort", {"axis": -1, "descending": False}), ("sort", {"axis": 0, "descending": True}),
                                      ("topk", {"k": 3, "axis": -1, "largest": True}),
                                      ("topk", {"k": 2, "axis": 1, "largest": False}),
                                      ("topk", {"k": 0, "axis": -1, "largest": True})])
def test_sort_and_topk_equal_the_reference(dtype, op, attrs):
    x = values(dtype, (4, 6, 5))
    x[0, 0, :3] = x[0, 0, 3]  # ties keep their order
    if dtype == "float32":
        x[1, 1, :2] = np.nan  # the largest
        x[2, :2, 0] = [0.0, -0.0]
    params = {"axis": attrs["axis"], "descending": attrs.get("descending", attrs.get("largest"))}
    if op == "topk":
        params["k"] = attrs["k"]
    p = native._native.Program(3, [0], [1, 2], [], [(op, [0], [1, 2], [], [], params)], 0, 0, 1)
    got = p.run([x], [], [], lambda i, args: pytest.fail("fallback"))
    for g, w in zip(got, reference_all(op, [x], **attrs)):
        assert_same(g, w)


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
@pytest.mark.parametrize("axes,begin,end,step,ushape", [([1], [1], [3], None, (4, 2, 5)), ([0, 2], [0, -3], [4, 2**62], [2, 1], (2, 6, 3)),
                                                        ([2], [4], [0], [-2], (1, 1, 2)), ([1], [2], [2], None, (4, 0, 5))])
def test_slice_update_equals_the_reference(dtype, axes, begin, end, step, ushape):
    x, u = values(dtype, (4, 6, 5)), values(dtype, ushape)
    attrs = {"axes": axes, "begin": begin, "end": end, "step": step}
    got, calls = one_step("slice_update", dict(attrs), [x, u])
    assert calls == 0
    assert_same(got, reference("slice_update", [x, u], **attrs))
    assert not np.shares_memory(got, x)


@pytest.mark.parametrize("reduce", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("dtype", ["float32", "int64"])
@pytest.mark.parametrize("axis,ishape,ushape", [(1, (3, 4, 5), (3, 4, 5)), (0, (2, 6, 5), (1, 6, 1)), (-1, (3, 6, 2), (3, 6, 2))])
def test_scatter_equals_the_reference(reduce, dtype, axis, ishape, ushape):
    x = values(dtype, (3, 6, 5))
    n = x.shape[axis]
    idx = RNG.integers(0, n, ishape)
    if reduce == "none":  # one write per target: which of repeated writes wins is not defined
        idx = np.broadcast_to(np.argsort(RNG.random((*ishape[:axis % 3], n, *ishape[axis % 3 + 1:])), axis=axis % 3),
                              (*ishape[:axis % 3], n, *ishape[axis % 3 + 1:]))
        idx = np.take(idx, np.arange(ishape[axis % 3]), axis=axis % 3).copy()
    u = values(dtype, ushape)
    got, calls = one_step("scatter", {"axis": axis, "reduce": reduce}, [x, idx, u])
    assert calls == 0
    assert_same(got, reference("scatter", [x, idx, u], axis=axis, reduce=reduce))


def test_scatter_out_of_range_raises_the_references_error():
    x, idx, u = np.zeros((2, 3), np.float32), np.array([[0, 3, 1]]), np.ones((1, 3), np.float32)
    with pytest.raises(pm.errors.IndexRangeError, match="outside"):
        one_step("scatter", {"axis": 1, "reduce": "none"}, [x, idx, u], op="scatter", axis=1)


@pytest.mark.parametrize("op,attrs,dtype", [("full", {"shape": [2, 3], "value": 1.5, "dtype": "float32"}, None),
                                            ("full", {"shape": [4], "value": "-inf", "dtype": "float16"}, None),
                                            ("full", {"shape": [2, 0], "value": 7, "dtype": "int64"}, None),
                                            ("full_like", {"value": True, "dtype": "bool"}, "float32"),
                                            ("full_like", {"value": -3, "dtype": None}, "int64")])
def test_full_runs_natively_and_equals_the_reference(op, attrs, dtype):
    ins = [] if op == "full" else [Value("x", TensorType(DType(dtype), (3, 5)))]
    types = [v.type for v in ins]
    out = get_op(op).infer(types, get_op(op).with_defaults(attrs))[0]
    fn = Function("main", ins, [Op(op, [v.name for v in ins], [Value("y", out)], attrs)], ["y"])
    nat, ref = (pm.Model(Program({"main": fn}, {}), backend=b) for b in ("native", "reference"))
    assert [s.kernel for s in nat.plan_summary().steps] == [f"native:{op}"]
    feed = {} if op == "full" else {"x": values(dtype, (3, 5))}
    assert_same(nat.predict(feed)["y"], ref.predict(feed)["y"])


@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "int64"])
@pytest.mark.parametrize("axes,ishapes,vshape", [([0], [(4,)], (4, 6, 5)), ([1, 2], [(3, 1), (1, 4)], (3, 4)),
                                                 ([-1], [(2, 3)], (1,)), ([1], [(7,)], (4, 7, 5))])
def test_index_put_equals_the_reference(accumulate, dtype, axes, ishapes, vshape):
    x = values(dtype, (4, 6, 5))
    if dtype == "float32":
        x = x / 1e4
    idx = [RNG.integers(-x.shape[a], x.shape[a], s) for a, s in zip(axes, ishapes)]
    if not accumulate:  # distinct targets: which of repeated writes wins is NumPy's business
        idx = [np.broadcast_to(np.arange(np.prod(s)).reshape(s) % x.shape[a], s).copy() for a, s in zip(axes, ishapes)]
    v = values(dtype, vshape) / (1e4 if dtype == "float32" else 1)
    v = v.astype(dtype)
    attrs = {"axes": axes, "accumulate": accumulate}
    got, calls = one_step("index_put", dict(attrs), [x, v, *idx])
    assert calls == 0
    assert_same(got, reference("index_put", [x, v, *idx], **attrs))


EINSUMS = [("bhqd,bhkd->bhqk", [(2, 3, 5, 8), (2, 3, 7, 8)]), ("bhqk,bhkd->bhqd", [(2, 3, 5, 7), (2, 3, 7, 8)]),
           ("ij,jk->ik", [(4, 6), (6, 5)]), ("ij,kj->ki", [(4, 6), (5, 6)]), ("bi,bj->bij", [(3, 4), (3, 5)]),
           ("...ij,...jk->...ik", [(2, 3, 4, 5), (2, 3, 5, 6)]), ("i,i->", [(7,), (7,)]), ("ab,cd->abcd", [(2, 3), (4, 5)])]


@pytest.mark.parametrize("equation,shapes", EINSUMS)
def test_einsum_of_two_operands_runs_natively(equation, shapes):
    ins = [Value(n, TensorType(DType.float32, s)) for n, s in zip("xy", shapes)]
    out = get_op("einsum").infer([v.type for v in ins], {"equation": equation})[0]
    fn = Function("main", ins, [Op("einsum", ["x", "y"], [Value("z", out)], {"equation": equation})], ["z"])
    nat, ref = (pm.Model(Program({"main": fn}, {}), backend=b) for b in ("native", "reference"))
    assert [s.kernel for s in nat.plan_summary().steps] == ["native:einsum"]
    feed = {n: RNG.standard_normal(s).astype(np.float32) for n, s in zip("xy", shapes)}
    got, want = nat.predict(feed)["z"], ref.predict(feed)["z"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("equation,shapes", [("ii,ij->j", [(3, 3), (3, 4)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
                                             ("ij,kl->i", [(2, 3), (4, 5)])])
def test_einsum_the_product_does_not_cover_stays_on_the_reference(equation, shapes):
    ins = [Value(n, TensorType(DType.float32, s)) for n, s in zip("xyw", shapes)]
    out = get_op("einsum").infer([v.type for v in ins], {"equation": equation})[0]
    fn = Function("main", ins, [Op("einsum", [v.name for v in ins], [Value("z", out)], {"equation": equation})], ["z"])
    nat = pm.Model(Program({"main": fn}, {}), backend="native")
    assert [s.kernel for s in nat.plan_summary().steps] == ["numpy"]


@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("axis,mshape,vshape", [(0, (4,), (1,)), (1, (6, 5), (4, 1)), (0, (4, 6), (5,)), (2, (5,), (4, 6, 1))])
def test_index_put_with_a_mask_equals_the_reference(accumulate, axis, mshape, vshape):
    x = values("float32", (4, 6, 5)) / 1e4
    mask = RNG.random(mshape) < 0.5
    count = int(mask.sum())
    if len(vshape) == 2 and vshape[0] == 4:  # values for every selected position
        vshape = (4, count)
    v = (values("float32", vshape) / 1e4).astype(np.float32)
    attrs = {"axes": [axis], "accumulate": accumulate}
    got, calls = one_step("index_put", dict(attrs), [x, v, mask])
    assert calls == 0
    assert_same(got, reference("index_put", [x, v, mask], **attrs))
