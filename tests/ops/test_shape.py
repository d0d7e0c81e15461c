"""Shape ops: NumPy references against torch, and type inference against computed results."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from helpers import run, infer

rng = np.random.default_rng(0)


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def same(got, want):
    want = want.numpy() if isinstance(want, torch.Tensor) else want
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


# -- reshape ------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, target", [
    ((2, 3, 4), [6, 4]), ((2, 3, 4), [-1]), ((2, 3, 4), [4, -1, 2]), ((2, 3, 4), [1, 24, 1]),
    ((24,), [2, 3, 4]), ((1,), []), ((), [1, 1]), ((0, 3), [3, 0]), ((0, 3), [-1, 3]),
])
def test_reshape_matches_torch(shape, target):
    x = randn(*shape)
    same(run("reshape", [x], shape=target), torch.from_numpy(x).reshape(target))


@pytest.mark.parametrize("target", [[5, -1], [-1, -1], [7], [-2, 12], [0, -1]])
def test_reshape_rejects_bad_targets(target):
    with pytest.raises(ValueError):
        infer("reshape", [("float32", (2, 3, 4))], shape=target)


def test_reshape_symbolic():
    assert infer("reshape", [("float32", ("b", 12, 64))], shape=["b", -1])[0].shape == ("b", 768)
    assert infer("reshape", [("float32", ("b", "s", 768))], shape=["b", "s", 12, -1])[0].shape == ("b", "s", 12, 64)
    assert infer("reshape", [("float32", ("b", "s", 4))], shape=[-1, 2])[0].shape == ("b*s*2", 2)
    assert infer("reshape", [("float32", ("b", 6))], shape=[-1, 4])[0].shape == ("b*6/4", 4)
    assert infer("reshape", [("float32", ("b", 6))], shape=[3, 2, "b"])[0].shape == (3, 2, "b")


# -- transpose, expand, squeeze, expand_dims -----------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(st.permutations(range(4)), st.lists(st.booleans(), min_size=4, max_size=4))
def test_transpose_matches_torch_permute(perm, negate):
    x = randn(2, 3, 4, 5)
    perm_attr = [p - 4 if n else p for p, n in zip(perm, negate)]
    same(run("transpose", [x], perm=perm_attr), torch.from_numpy(x).permute(perm_attr))


def test_transpose_rejects_bad_perm():
    for perm in ([0, 1], [0, 0, 1], [0, 1, 3]):
        with pytest.raises(ValueError):
            infer("transpose", [("float32", (2, 3, 4))], perm=perm)


@pytest.mark.parametrize("shape, target", [
    ((3, 1), [3, 4]), ((3, 1), [2, 3, 4]), ((1, 4), [-1, 4]), ((2, 1, 4), [2, 5, -1]),
    ((), [2, 3]), ((1,), [0]), ((3, 1), [2, -1, 5]),
])
def test_expand_matches_torch(shape, target):
    x = randn(*shape)
    same(run("expand", [x], shape=target), torch.from_numpy(x).expand(target))


def test_expand_rejects_and_symbolic():
    with pytest.raises(ValueError):
        infer("expand", [("float32", (3, 2))], shape=[3, 4])
    with pytest.raises(ValueError):
        infer("expand", [("float32", (3, 2))], shape=[2])
    assert infer("expand", [("float32", ("b", 1, "s"))], shape=[-1, 4, -1])[0].shape == ("b", 4, "s")
    assert infer("expand", [("float32", (1, "s"))], shape=[3, "b", "s"])[0].shape == (3, "b", "s")


def test_squeeze_and_expand_dims():
    x = randn(1, 3, 1, 4)
    same(run("squeeze", [x], axes=[0, -2]), x.reshape(3, 4))
    same(run("squeeze", [x], axes=[2]), x.reshape(1, 3, 4))
    with pytest.raises(ValueError):
        infer("squeeze", [("float32", (1, 3))], axes=[1])
    y = randn(3, 4)
    same(run("expand_dims", [y], axes=[0]), torch.from_numpy(y).unsqueeze(0))
    same(run("expand_dims", [y], axes=[-1, 1]), y.reshape(3, 1, 4, 1))
    assert infer("expand_dims", [("float32", ("b", "s"))], axes=[1])[0].shape == ("b", 1, "s")
    assert infer("squeeze", [("int64", ("b", 1, "s"))], axes=[1])[0].shape == ("b", "s")


# -- concat / split -----------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_concat_matches_torch_cat(axis):
    xs = [randn(*[2 + i if a == axis % 3 else s for a, s in enumerate((2, 3, 4))]) for i in range(3)]
    same(run("concat", xs, axis=axis), torch.cat([torch.from_numpy(x) for x in xs], axis))


def test_concat_single_input_types_and_errors():
    x = randn(2, 3).astype(np.float16)
    same(run("concat", [x], axis=0), x)
    i = np.arange(6).reshape(2, 3)
    same(run("concat", [i, i], axis=1), np.concatenate([i, i], 1))
    with pytest.raises(ValueError, match="dtype"):
        infer("concat", [("float32", (2, 3)), ("int64", (2, 3))], axis=0)
    with pytest.raises(ValueError, match="differ"):
        infer("concat", [("float32", (2, 3)), ("float32", (3, 3))], axis=1)
    assert infer("concat", [("float32", ("b", "s")), ("float32", ("b", 2))], axis=1)[0].shape == ("b", "s+2")


@pytest.mark.parametrize("sizes, axis", [([1, 2], 1), ([4], 2), ([1, 0, 3], -1), ([2, 1, 1, 0], 0)])
def test_split_matches_torch(sizes, axis):
    x = randn(4, 3, 4)
    outs = run("split", [x], sizes=sizes, axis=axis)
    outs = outs if isinstance(outs, list) else [outs]
    want = torch.from_numpy(x).split(sizes, axis)
    assert len(outs) == len(want)
    for g, w in zip(outs, want):
        same(g, w)
    with pytest.raises(ValueError, match="sum"):
        infer("split", [("float32", (4, 3))], sizes=[1, 1], axis=0)


# -- slice --------------------------------------------------------------------------------------

ends = st.one_of(st.integers(-8, 8), st.just(2**63 - 1), st.just(2**62))


@settings(max_examples=60, deadline=None)
@given(st.integers(-8, 8), ends, st.integers(1, 3), st.integers(0, 2))
def test_slice_matches_torch(begin, end, step, axis):
    x = randn(5, 6, 7)
    got = run("slice", [x], axes=[axis], begin=[begin], end=[end], step=[step])
    want = torch.ops.aten.slice.Tensor(torch.from_numpy(x), axis, begin, end, step)
    same(got, want)


def test_slice_several_axes_and_defaults():
    x = randn(4, 5, 6).astype(np.float16)
    same(run("slice", [x], axes=[-1, 0], begin=[1, -3], end=[-1, 2**63 - 1]), x[-3:, :, 1:-1])
    same(run("slice", [x], axes=[1], begin=[0], end=[5], step=[2]), x[:, ::2])
    with pytest.raises(ValueError):
        infer("slice", [("float32", (4,))], axes=[0], begin=[0], end=[1], step=[0])
    with pytest.raises(ValueError):
        infer("slice", [("float32", (4,))], axes=[0, 1], begin=[0], end=[1])


def test_slice_symbolic():
    t = infer("slice", [("float32", ("b", "s", 8))], axes=[1, 2], begin=[0, 2], end=[2**63 - 1, 6])[0]
    assert t.shape == ("b", "s", 4)
    t = infer("slice", [("float32", ("b", "s"))], axes=[1], begin=[1], end=[2**63 - 1])[0]
    assert isinstance(t.shape[1], str) and t.shape[1] != "s"


# -- tile / flip --------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, reps", [((2, 3), [1, 1]), ((2, 3), [2, 3]), ((1, 2, 3), [3, 1, 2]), ((2,), [0])])
def test_tile_matches_torch_repeat(shape, reps):
    x = randn(*shape)
    same(run("tile", [x], reps=reps), torch.from_numpy(x).repeat(reps))
    with pytest.raises(ValueError):
        infer("tile", [("float32", shape)], reps=reps + [2])


@pytest.mark.parametrize("axes", [[0], [-1], [0, 2], [1, 2, 0]])
def test_flip_matches_torch(axes):
    x = np.arange(24).reshape(2, 3, 4)
    same(run("flip", [x], axes=axes), torch.from_numpy(x).flip(axes))
    with pytest.raises(ValueError):
        infer("flip", [("int64", (2, 3))], axes=[0, 0])


# -- pad ----------------------------------------------------------------------------------------

def _torch_pad(pads):
    """IR per-axis pairs (before_0, after_0, ...) as torch's pad list (last axis first)."""
    out = []
    for ax in reversed(range(len(pads) // 2)):
        out += [pads[2 * ax], pads[2 * ax + 1]]
    return out


@pytest.mark.parametrize("pads", [
    [0, 0, 0, 0, 1, 2, 3, 0], [0, 0, 2, 1, 0, 0, 1, 1], [0, 0, 0, 0, -1, 2, 0, -2], [0, 0, 0, 0, 0, 0, 0, 0],
])
@pytest.mark.parametrize("value", [0.0, -1.5, float("-inf")])
def test_pad_constant_matches_torch(pads, value):
    x = randn(2, 3, 4, 5)
    from pocketml.ir.ops.shape import float_attr
    got = run("pad", [x], pads=pads, mode="constant", value=float_attr(value))
    same(got, F.pad(torch.from_numpy(x), _torch_pad(pads), value=value))


def test_pad_constant_integer_and_bool():
    x = np.arange(6).reshape(2, 3)
    same(run("pad", [x], pads=[1, 0, 0, 2], value=7.0), F.pad(torch.from_numpy(x), [0, 2, 1, 0], value=7))
    m = np.array([[True, False]])
    same(run("pad", [m], pads=[0, 0, 1, 1], value=True), np.array([[True, True, False, True]]))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape, pads", [
    ((2, 3, 6), [0, 0, 0, 0, 2, 3]),
    ((1, 2, 4, 5), [0, 0, 0, 0, 1, 3, 2, 0]),
    ((1, 2, 3, 4, 5), [0, 0, 0, 0, 1, 2, 0, 1, 2, 2]),
])
def test_pad_modes_match_torch(mode, shape, pads):
    x = randn(*shape)
    got = run("pad", [x], pads=pads, mode=mode)
    same(got, F.pad(torch.from_numpy(x), _torch_pad(pads)[:2 * (len(shape) - 2)], mode=mode))


def test_pad_rejects_bad_padding():
    t = [("float32", (2, 3))]
    for pads, mode in [([0, 0, 3, 0], "reflect"), ([0, 0, -1, 0], "reflect"), ([0, 0], "constant"),
                       ([0, 0, 0, 4], "circular"), ([0, 0, -2, -2], "constant"), ([0, 0, 1, 1], "edge")]:
        with pytest.raises(ValueError):
            infer("pad", t, pads=pads, mode=mode)
    assert infer("pad", [("float32", ("b", "s"))], pads=[0, 0, 1, 2])[0].shape == ("b", "s+3")


def test_ops_never_upcast_float16():
    x = randn(2, 3, 4).astype(np.float16)
    for name, attrs in [("reshape", {"shape": [6, 4]}), ("transpose", {"perm": [2, 0, 1]}),
                        ("pad", {"pads": [0, 0, 1, 1, 0, 0], "value": 1.0}), ("tile", {"reps": [1, 2, 1]}),
                        ("flip", {"axes": [1]}), ("expand", {"shape": [2, 2, 3, 4]})]:
        assert run(name, [x], **attrs).dtype == np.float16


@pytest.mark.parametrize("x", [np.arange(6, dtype=np.int64).reshape(2, 3), np.full((), 2.5, np.float32),
                               np.zeros((0, 4), np.bool_)])
def test_identity_passes_values_through(x):
    np.testing.assert_array_equal(run("identity", [x]), x)
