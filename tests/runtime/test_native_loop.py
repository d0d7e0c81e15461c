"""The C++ step loop (`_native.Program`, runtime/native_loop.py) against NumPy: its view ops,
float32 arithmetic, state writes, fallback hand-off and buffer reuse."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import pocketml as pm
from helpers import every_weight
from pocketml.runtime import native

pytestmark = pytest.mark.skipif(not native.available() or not hasattr(native._native, "Program"),
                                reason="native extension not built")


def program(steps, nslots, inputs, outputs, nstates=0, nsyms=0, constants=()):
    return native._native.Program(nslots, inputs, outputs, list(constants), steps, nstates, nsyms, 1)


def passthrough(i, args):
    return [np.array(args[0])]


def viewed(x, views, syms=()):
    """x after the view specs, as the loop hands it to a fallback step."""
    p = program([("fallback", [0], [1], [], [(0, *v) for v in views], {})], 2, [0], [1],
                nsyms=len(syms))
    return p.run([x], [], list(syms), passthrough)[0]


def pad(*dims):
    return list(dims) + [None] * (4 - len(dims))


RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4, 5)).astype(np.float32)


@pytest.mark.parametrize("x", [X, X.transpose(2, 0, 1), X[:, ::2], X[::-1]], ids=["c", "t", "step", "neg"])
@pytest.mark.parametrize("shape", [[-1], [5, -1], [1, -1, 1], [60], [2, 2, 15]])
def test_reshape_matches_numpy(x, shape):
    if x.size != 60 and shape in ([60], [2, 2, 15]):
        shape = [x.size]
    np.testing.assert_array_equal(viewed(x, [("reshape", *pad(shape))]), np.reshape(x, shape))


def test_bad_reshape_raises_numpy_reason():
    with pytest.raises(ValueError, match="cannot reshape array of size 60"):
        viewed(X, [("reshape", *pad([7, -1]))])
    with pytest.raises(ValueError, match="one unknown dimension"):
        viewed(X, [("reshape", *pad([-1, -1]))])


@pytest.mark.parametrize("axes,begin,end,step", [
    ([0], [1], [3], None), ([2], [-3], [2**62], None), ([1], [3], [0], [-1]), ([1, 2], [-100, 1], [100, 5], [2, 3]),
    ([-1], [4], [-6], [-2]), ([0], [5], [9], None), ([2], [0], [5], [7]), ([1], [-1], [-100], [-1])])
def test_slice_matches_python_semantics(axes, begin, end, step):
    idx = [slice(None)] * 3
    for a, b, e, s in zip(axes, begin, end, step or [1] * len(axes)):
        idx[a] = slice(b, e, s)
    got = viewed(X, [("slice", axes, begin, end, step)])
    np.testing.assert_array_equal(got, X[tuple(idx)])


def test_transpose_squeeze_expand_dims_expand():
    y = viewed(X[:1], [("transpose", *pad([2, 0, 1])), ("squeeze", *pad([1])),
                       ("expand_dims", *pad([0, -1])), ("expand", *pad([2, -1, 5, 4, 3]))])
    want = np.broadcast_to(np.expand_dims(np.squeeze(X[:1].transpose(2, 0, 1), axis=1), (0, -1)), (2, 1, 5, 4, 3))
    np.testing.assert_array_equal(y, want)
    with pytest.raises(ValueError, match="squeeze"):
        viewed(X, [("squeeze", *pad([0]))])


def test_symbolic_dims_come_from_the_call_table():
    views = [("slice", [1], [(0,)], [(1,)], None)]
    np.testing.assert_array_equal(viewed(X, views, syms=(1, 3)), X[:, 1:3])
    np.testing.assert_array_equal(viewed(X, views, syms=(0, 4)), X[:, 0:4])


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("sa,sb", [((4, 5), (4, 5)), ((3, 4, 5), (5,)), ((4, 1), (1, 5)), ((), (2, 3)),
                                   ((1, 7, 1), (6, 1, 3)), ((0, 5), (5,))])
def test_binary_equals_numpy_bit_for_bit(op, sa, sb):
    a = RNG.standard_normal(sa).astype(np.float32)
    b = RNG.standard_normal(sb).astype(np.float32) + 3
    p = program([("binary", [0, 1], [2], [], [], {"op": op})], 3, [0, 1], [2])
    calls = []
    got = p.run([a, b], [], [], lambda i, args: calls.append(i))[0]
    want = getattr(np, {"sub": "subtract", "mul": "multiply", "div": "divide"}.get(op, op))(a, b)
    assert got.dtype == np.float32 and got.shape == want.shape and not calls
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("op", ["maximum", "minimum", "pow", "fmod", "remainder"])
def test_more_binary_ops_equal_the_reference(op):
    from pocketml.ir.registry import get as get_op

    a = (RNG.standard_normal((5, 7)) * 4).astype(np.float32)
    b = (RNG.standard_normal((7,)) * 3).astype(np.float32)
    a[0, :6] = [0.0, -0.0, np.nan, 1.0, np.inf, -2.0]
    b[:6] = [-0.0, 0.0, 1.0, np.nan, 2.0, -np.inf]
    if op == "pow":
        a = np.abs(a) + 0.5  # no NaN from negative bases to the fractional powers
    p = program([("binary", [0, 1], [2], [], [], {"op": op})], 3, [0, 1], [2])
    got = p.run([a, b], [], [], lambda i, args: pytest.fail("fallback"))[0]
    with np.errstate(all="ignore"):
        want = get_op(op).compute([a, b], {})[0]
    assert got.dtype == want.dtype and got.shape == want.shape
    if op == "pow":
        np.testing.assert_array_max_ulp(got, want, maxulp=1)
    else:  # bit for bit, signed zeros and NaN included
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_binary_reads_strided_views():
    a = RNG.standard_normal((6, 8)).astype(np.float32)
    b = RNG.standard_normal((8, 6)).astype(np.float32)
    p = program([("binary", [0, 1], [2], [], [(1, "transpose", [1, 0], None, None, None),
                                             (0, "slice", [1], [1], [8], [2])], {"op": "add"})], 3, [0, 1], [2])
    np.testing.assert_array_equal(p.run([a, b[:4]], [], [], None)[0], a[:, 1::2] + b[:4].T)


def test_binary_of_other_dtypes_goes_to_the_fallback():
    a, b = np.arange(6, dtype=np.int32).reshape(2, 3), np.arange(3, dtype=np.int32)  # (int64 runs natively)
    p = program([("binary", [0, 1], [2], [], [], {"op": "add"})], 3, [0, 1], [2])
    seen = []

    def fallback(i, args):
        seen.append((i, [x.dtype for x in args]))
        return [np.add(*args)]
    np.testing.assert_array_equal(p.run([a, b], [], [], fallback)[0], a + b)
    assert seen == [(0, [np.int32, np.int32])]
    assert p.fallback_calls == 1


def test_update_state_writes_in_place_and_returns_the_state():
    state = np.zeros((1, 2, 6, 3), np.float32)
    u = RNG.standard_normal((1, 2, 2, 3)).astype(np.float32)
    spec = ("update_state_slice", [0], [1], [], [], {"state": 0, "axes": [2], "begin": [(0,)], "end": [(1,)]})
    p = program([spec], 2, [0], [1], nstates=1, nsyms=2)
    out = p.run([u], [state], [3, 5], None)[0]
    assert out is state
    np.testing.assert_array_equal(state[:, :, 3:5], u)
    assert not state[:, :, :3].any() and not state[:, :, 5:].any()


def test_outputs_survive_the_next_call():
    """Buffers return to the pool only when nothing holds them: an output kept by the caller is
    never written by a later call."""
    p = program([("binary", [0, 1], [2], [0, 1], [], {"op": "mul"}),
                 ("binary", [2, 2], [3], [2], [], {"op": "add"})], 4, [0, 1], [3])
    a = np.ones((4, 4), np.float32)
    first = p.run([a, a], [], [], None)[0]
    for k in range(3):
        p.run([a * (k + 2), a], [], [], None)
    np.testing.assert_array_equal(first, 2 * a)


def test_fallback_errors_propagate_with_the_step():
    p = program([("binary", [0, 1], [2], [], [], {"op": "add"}), ("fallback", [2], [3], [], [], {})], 4, [0, 1], [3])

    def fallback(i, args):
        raise KeyError("boom")
    a = np.ones(3, np.float32)
    with pytest.raises(KeyError, match="boom"):
        p.run([a, a], [], [], fallback)
    assert p.current_step == 1


def test_malformed_specs_are_refused():
    with pytest.raises(ValueError, match="slot"):
        program([("binary", [0, 7], [2], [], [], {"op": "add"})], 3, [0, 1], [2])
    with pytest.raises(ValueError, match="unknown step kind"):
        program([("max_pool", [0], [1], [], [], {})], 2, [0], [1])
    with pytest.raises(ValueError, match="state index"):
        program([("read_state", [], [1], [], [], {"state": 3})], 2, [0], [1], nstates=1)
    with pytest.raises(TypeError, match="PackedLinear"):
        program([("linear", [0, -1, -1], [1], [], [], {"weight": object()})], 2, [0], [1])


class Block(torch.nn.Module):
    """Views, arithmetic and a norm between two linears: most of what the loop runs natively."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(32, 48), torch.nn.Linear(24, 32)
        self.norm = torch.nn.LayerNorm(32)

    def forward(self, x):
        h = self.a(x).reshape(x.shape[0], 2, 24).transpose(0, 1)
        h = torch.nn.functional.silu(h[0]) * h[1] + 1.0
        return self.norm(self.b(h) - x / 2)


def test_model_on_the_loop_equals_the_python_loop():
    torch.manual_seed(0)
    m = pm.convert(Block().eval(), (torch.randn(3, 32),), input_names=["x"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pm.CompressionWarning)
        c = pm.compress(m, every_weight(pm.Palettize(6)))
    model = pm.Model(c.program, c.metadata, backend="native", exact=True)
    ex = model._executor
    assert ex.loop is not None
    x = {"x": RNG.standard_normal((3, 32)).astype(np.float32)}
    got = model.predict(x)["output"]
    assert ex.loop.program.fallback_calls == 0  # every step native, the views folded
    loop, ex.loop = ex.loop, None
    try:
        want = model.predict(x)["output"]
    finally:
        ex.loop = loop
    np.testing.assert_array_equal(got, want)
    ref = pm.Model(c.program, c.metadata, backend="reference").predict(x)["output"]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_step_errors_name_the_op():
    class Bad(torch.nn.Module):
        def forward(self, x, y):
            return x + y
    m = pm.convert(Bad(), (torch.randn(2, 3), torch.randn(2, 3)), input_names=["x", "y"])
    model = pm.Model(m.program, m.metadata, backend="native")
    assert model._executor.loop is not None
    out = model.predict({"x": np.ones((2, 3), np.float32), "y": np.full((2, 3), 2, np.float32)})
    np.testing.assert_array_equal(out[model.output_names[0]], np.full((2, 3), 3, np.float32))


def test_profiling_sums_each_steps_time():
    p = program([("binary", [0, 1], [2], [], [], {"op": "add"}), ("fallback", [2], [3], [], [], {})], 4, [0, 1], [3])
    a = np.ones(1000, np.float32)
    assert list(p.step_seconds) == []
    p.profiling = True
    for _ in range(3):
        p.run([a, a], [], [], lambda i, args: [np.sqrt(args[0])])
    t = p.step_seconds
    assert len(t) == 2 and all(x > 0 for x in t)
    p.profiling = False
    assert list(p.step_seconds) == []
