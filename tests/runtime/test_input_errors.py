"""Bad inputs raise pm.InputError naming the input and the fix; failing ops name themselves."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import pocketml as pm
from pocketml.ir import DType, Function, Op, Program, TensorType, Value
from pocketml.errors import IndexRangeError
from pocketml.errors import ExecutionError

W = np.arange(40, dtype=np.float32).reshape(10, 4)
LOC = "model.embed_tokens (file.py:12)"


def embed_model(via=None, dim_ranges=None):
    """input_ids (batch, seq) int64 -> embedding rows (batch, seq, 4) + x; `via` is an op type
    applied to the ids before the embedding ("cast" passes their values on, "add" does not)."""
    ids_t = TensorType(DType.int64, ("batch", "seq"))
    out_t = TensorType(DType.float32, ("batch", "seq", 4))
    ops = [Op("const", [], [Value("w", TensorType(DType.float32, (10, 4)))], {"weight": "w"})]
    ids = "input_ids"
    if via == "cast":
        ops.append(Op("cast", [ids], [Value("ids32", TensorType(DType.int32, ids_t.shape))],
                      {"dtype": "int32"}))
        ids = "ids32"
    elif via == "add":
        ops.append(Op("add", [ids, ids], [Value("twice", ids_t)]))
        ids = "twice"
    ops += [Op("embedding", ["w", ids], [Value("h", out_t)], loc=LOC),
            Op("add", ["h", "x"], [Value("y", out_t)])]
    fn = Function("main", [Value("input_ids", ids_t), Value("x", out_t)], ops, ["y"],
                  dim_ranges=dim_ranges or {})
    return pm.Model(Program({"main": fn}, {"w": W}))


def x_for(ids):
    return np.zeros(np.shape(ids) + (4,), np.float32)


@pytest.mark.parametrize("bad", [99999, -5, 10])
@pytest.mark.parametrize("via", [None, "cast"])
def test_out_of_range_token_ids_name_the_input_the_range_and_the_op(bad, via):
    ids = np.array([[1, bad]])
    with pytest.raises(pm.InputError) as e:
        embed_model(via).predict({"input_ids": ids, "x": x_for(ids)})
    assert str(e.value) == f"input 'input_ids': token id {bad} is outside [0, 9] (embedding at {LOC})"
    assert isinstance(e.value, IndexRangeError) and e.value.input == "input_ids"


def test_index_computed_from_an_input_names_the_op_only():
    ids = np.array([[1, 7]])  # 2 * 7 = 14
    with pytest.raises(IndexRangeError) as e:
        embed_model("add").predict({"input_ids": ids, "x": x_for(ids)})
    assert str(e.value) == f"token id 14 is outside [0, 9] (embedding at {LOC})"
    assert e.value.input is None


def test_valid_ids_still_work():
    ids = np.array([[0, 9], [3, 4]])
    out = embed_model("cast").predict({"input_ids": ids, "x": x_for(ids) + 1})["y"]
    np.testing.assert_array_equal(out, W[ids] + 1)


def test_numpy_errors_in_a_step_name_the_op_and_chain_the_cause():
    t = lambda d: TensorType(DType.float32, (d,))  # noqa: E731
    fn = Function("main", [Value("a", t("n")), Value("b", t("m"))],
                  [Op("add", ["a", "b"], [Value("s", t("n"))], loc="model.head (m.py:3)")], ["s"])
    m = pm.Model(Program({"main": fn}, {}))
    with pytest.raises(ExecutionError, match=r"add at model.head \(m.py:3\) failed: ValueError") as e:
        m.predict({"a": np.ones(2, np.float32), "b": np.ones(3, np.float32)})
    assert isinstance(e.value, pm.Error) and isinstance(e.value.__cause__, ValueError)


def test_errors_raised_by_an_observer_are_not_rewrapped():
    m = embed_model()
    ids = np.array([[1]])

    def observe(i, step, outs):
        raise ValueError("observer bug")
    with pytest.raises(ValueError, match="observer bug") as e:
        m._executor.run([ids, x_for(ids)], observe=observe)
    assert not isinstance(e.value, pm.Error)


# -- check_inputs -------------------------------------------------------------------------------

class Weird:
    def __array__(self, dtype=None, copy=None):
        raise TypeError("no array for you")


@pytest.mark.parametrize("value, match", [
    (None, r"input 'input_ids' is None; pass an array of dtype int64 and shape \('batch', 'seq'\)"),
    ([[1, 2], [3]], "input 'input_ids': cannot make an array of this list .*rectangular"),
    ("hello", "input 'input_ids' holds <U5 values .*not numbers"),
    (np.array([["a", "b"]]), "input 'input_ids' holds <U1 values .*not numbers"),
    (np.array([[1, 2]], dtype=object), "input 'input_ids' holds object values"),
    ({"a": 1}, "input 'input_ids' holds object values"),
    (Weird(), "input 'input_ids': cannot make an array of this Weird .*no array for you"),
    (3, r"input 'input_ids': expected shape .* got \(\) \(rank 0\)"),
    ([[1.0, 2.0]], r"expected dtype int64, got float64 \(convert with np.asarray\(value, dtype=np.int64\)\)"),
    (np.ones((1, 2), np.int32), r"expected dtype int64, got int32 \(convert with .astype\(np.int64\)\)"),
    (np.ones((1, 2), np.complex64), "expected dtype int64, got complex64"),
])
def test_junk_inputs_raise_input_errors_naming_the_input(value, match):
    with pytest.raises(pm.InputError, match=match):
        embed_model().predict({"input_ids": value, "x": np.zeros((1, 2, 4), np.float32)})


def test_torch_tensors_that_numpy_cannot_read_say_how_to_convert():
    torch = pytest.importorskip("torch")
    m = embed_model()
    x = x_for(np.zeros((1, 2)))
    with pytest.raises(pm.InputError, match=r"input 'x': .*tensor.detach\(\).cpu\(\).to\(torch.float32\)"):
        m.predict({"input_ids": np.zeros((1, 2), np.int64), "x": torch.zeros(1, 2, 4, requires_grad=True)})
    ids = torch.tensor([[1, 2]])  # a plain CPU tensor is read without a copy, as before
    np.testing.assert_array_equal(m.predict({"input_ids": ids, "x": x})["y"], W[[[1, 2]]])


def test_lists_and_byte_swapped_arrays_are_accepted():
    m = embed_model()
    ids = np.array([[1, 2]], dtype=">i8")
    out = m.predict({"input_ids": ids, "x": x_for(ids).astype(">f4")})["y"]
    np.testing.assert_array_equal(out, W[[[1, 2]]])
    np.testing.assert_array_equal(m.predict({"input_ids": [[1, 2]], "x": x_for(ids)})["y"], W[[[1, 2]]])


def test_dimension_ranges_are_checked_before_any_copy():
    # a broadcast view of 2**31 rows costs nothing; a contiguous copy would need 64 GiB
    m = embed_model(dim_ranges={"batch": [1, 8]})
    ids = np.broadcast_to(np.zeros((1, 1), np.int64), (2**31, 1))
    x = np.broadcast_to(np.zeros((1, 1, 4), np.float32), (2**31, 1, 4))
    with pytest.raises(pm.InputError, match=r"'batch' .* is 2147483648, outside the model's range \[1, 8\]"):
        m.predict({"input_ids": ids, "x": x})


def test_non_contiguous_inputs_are_made_contiguous():
    m = embed_model()
    ids = np.array([[1, 0, 2, 0]])[:, ::2]
    x = np.zeros((1, 2, 8), np.float32)[:, :, ::2]
    arrays = pm.runtime.check_inputs(m.function, {"input_ids": ids, "x": x})
    assert all(a.flags.c_contiguous for a in arrays)
    np.testing.assert_array_equal(m.predict({"input_ids": ids, "x": x})["y"], W[[[1, 2]]])


# -- property: junk in, pm.Error or the right answer out -----------------------------------------

shapes = st.lists(st.integers(0, 3), min_size=0, max_size=4).map(tuple)
dtypes = st.sampled_from([np.int64, np.int32, np.float32, np.float64, np.bool_, np.uint8, np.float16,
                          np.complex64, object, "U3", "S2", ">i8", "<f4", "M8[s]"])
scalars = st.one_of(st.none(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=3),
                    st.binary(max_size=3), st.booleans(), st.complex_numbers())


@st.composite
def arrays(draw):
    shape, dtype = draw(shapes), draw(dtypes)
    values = draw(st.lists(st.integers(-12, 12), min_size=int(np.prod(shape)),
                           max_size=int(np.prod(shape))))
    a = np.array(values, dtype=np.int64).reshape(shape)
    try:
        return a.astype(dtype)
    except (TypeError, ValueError):
        return a.astype(object)


nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=8)
junk = st.one_of(arrays(), nested, st.dictionaries(st.text(max_size=2), scalars, max_size=2),
                 st.sampled_from([Weird(), object(), np.int64(3), np.float32("nan")]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ids=junk, x=junk, via=st.sampled_from([None, "cast"]))
def test_junk_gives_pm_errors_or_the_right_answer(ids, x, via):
    m = embed_model(via)
    try:
        out = m.predict({"input_ids": ids, "x": x})["y"]
    except pm.Error:
        ids_a = np.asarray(ids) if isinstance(ids, np.ndarray) else None
        x_a = np.asarray(x) if isinstance(x, np.ndarray) else None
        valid = (ids_a is not None and x_a is not None and ids_a.dtype == np.int64 and ids_a.ndim == 2
                 and x_a.dtype == np.float32 and x_a.shape == ids_a.shape + (4,)
                 and ((0 <= ids_a) & (ids_a < 10)).all())
        assert not valid, "a valid input was refused"
        return
    ids_a, x_a = np.asarray(ids), np.asarray(x)
    assert ids_a.dtype == np.int64 and x_a.dtype == np.float32
    assert ((0 <= ids_a) & (ids_a < 10)).all()
    np.testing.assert_array_equal(out, W[ids_a] + x_a)


@settings(max_examples=100, deadline=None)
@given(ids=st.lists(st.lists(st.integers(-2**63, 2**63 - 1), min_size=2, max_size=2), min_size=1, max_size=3))
def test_any_int64_ids_give_the_embedding_or_a_range_error(ids):
    ids = np.array(ids, np.int64)
    try:
        out = embed_model().predict({"input_ids": ids, "x": x_for(ids)})["y"]
    except IndexRangeError as e:
        assert not ((0 <= ids) & (ids < 10)).all()
        assert e.value in ids.ravel().tolist() and not 0 <= e.value < 10
        return
    np.testing.assert_array_equal(out, W[ids])
