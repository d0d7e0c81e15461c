"""Hostile package headers: lying shapes, deep nesting, huge numbers, bad dimension expressions and
oversized states are each refused at load with a PackageError (regressions of specific reports)."""
import json
import zlib

import numpy as np
import pytest

import pocketml as pm
from pocketml import package
from pocketml.ir import DType, Function, Op, Program, TensorType, Value
from pocketml.ir.program import State
from pocketml.ir.symbolic import MAX_LENGTH, evaluate, is_symbolic
from pocketml.package.format import _PREFIX, ALIGN


def symbolic_program():
    """x: float32[1, T] (T in [1, 8]) plus arange(T) as float, with a zero state of shape [4]."""
    x = TensorType(DType.float32, (1, "T"))
    fn = Function("main", [Value("x", x)], [
        Op("arange", [], [Value("r", TensorType(DType.float32, ("T",)))],
           {"start": 0, "end": "T", "step": 1, "dtype": "float32"}),
        Op("add", ["x", "r"], [Value("y", x)]),
        Op("read_state", [], [Value("s", TensorType(DType.float32, (4,)))], {"state": "s"}),
        Op("const", [], [Value("w", TensorType(DType.float32, (4,)))], {"weight": "w"}),
        Op("add", ["s", "w"], [Value("s2", TensorType(DType.float32, (4,)))]),
        Op("write_state", ["s2"], [], {"state": "s"}),
    ], ["y", "s2"], states=[State("s", TensorType(DType.float32, (4,)))],
        dim_ranges={"T": [1, 8]})
    return Program({"main": fn}, {"w": np.arange(4, dtype=np.float32)})


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "m.pocket"
    package.write(path, symbolic_program(), {"author": "me"})
    return path


def _rewrite(path, edit=None, raw_edit=None):
    """Rewrite the header (as JSON with `edit`, or as bytes with `raw_edit`), CRC recomputed."""
    raw = path.read_bytes()
    _, version, _, hlen = _PREFIX.unpack_from(raw, 0)
    header = raw[_PREFIX.size:_PREFIX.size + hlen]
    if edit is not None:
        doc = json.loads(header)
        edit(doc)
        header = json.dumps(doc).encode()
    if raw_edit is not None:
        header = raw_edit(header)
    old_start = (_PREFIX.size + hlen + ALIGN - 1) // ALIGN * ALIGN
    out = _PREFIX.pack(b"POCKETML", version, zlib.crc32(header), len(header)) + header
    path.write_bytes(out + b"\0" * (-len(out) % ALIGN) + raw[old_start:])


def _fn(h):
    return h["program"]["functions"][0]


def _arange(h):
    return _fn(h)["ops"][0]["attrs"]


def run(path):
    m = pm.load(path)
    return m.predict({"x": np.zeros((1, 3), np.float32)}, state=m.make_state())


def test_the_fixture_runs(saved):
    np.testing.assert_array_equal(run(saved)["y"], [[0, 1, 2]])


@pytest.mark.parametrize("entry, match", [
    ({"shape": [2**32, 2**32], "nbytes": 0}, "do not hold"),  # np.prod(int64) wraps to 0
    ({"shape": [2**62, 2**62], "nbytes": 0}, "do not hold"),
    ({"shape": [10**30]}, "out of range"),
    ({"shape": [True, 4], "nbytes": 4}, "malformed"),
    ({"shape": [4.0]}, "malformed"),
    ({"shape": ["4"]}, "malformed"),
    ({"offset": True}, "malformed"),
    ({"offset": -64}, "malformed"),
    ({"nbytes": -16}, "malformed"),
    ({"nbytes": 2**63}, "malformed|do not hold"),
    ({"crc32": "0"}, "malformed"),
    ({"dtype": ["float32"]}, "malformed"),
])
def test_weight_table_lies_are_refused(saved, entry, match):
    _rewrite(saved, lambda h: h["weights"]["w"].update(entry))
    with pytest.raises(pm.PackageError, match=match):
        pm.load(saved)


@pytest.mark.parametrize("data_size", [True, -64, 2**70, "0", None, 1.0])
def test_bad_data_size(saved, data_size):
    _rewrite(saved, lambda h: h.update(data_size=data_size))
    with pytest.raises(pm.PackageError):
        pm.load(saved)


@pytest.mark.parametrize("where", ["input", "output", "state", "range", "enumerated"])
@pytest.mark.parametrize("dim", [True, -1, 1.0, None, [], 2**63])
def test_bad_dimensions_in_the_program(saved, where, dim):
    def edit(h):
        fn = _fn(h)
        if where == "input":
            fn["inputs"][0]["shape"][0] = dim
        elif where == "output":
            fn["ops"][1]["outputs"][0]["shape"][0] = dim
        elif where == "state":
            fn["states"][0]["shape"] = [dim]
        elif where == "range":
            fn["dim_ranges"]["T"] = [dim, 8]
        else:
            fn["input_shapes"] = {"x": [[1, dim]]}
    _rewrite(saved, edit)
    with pytest.raises(pm.PackageError):
        pm.load(saved)


@pytest.mark.parametrize("nest", [100, 1000, 100_000])
@pytest.mark.parametrize("where", [b"metadata", b"attrs"])
def test_deep_nesting_is_refused(saved, nest, where):
    def deepen(header):
        key = b'"author"' if where == b"metadata" else b'"dtype":"float32"}'
        value = b"[" * nest + b"]" * nest
        if where == b"metadata":
            return header.replace(key, b'"deep":' + value + b',' + key, 1)
        return header.replace(key, b'"dtype":"float32","deep":' + value + b'}', 1)
    _rewrite(saved, raw_edit=deepen)
    with pytest.raises(pm.PackageError, match="nest"):
        pm.load(saved)


def test_huge_integer_literals_are_refused(saved):
    _rewrite(saved, raw_edit=lambda h: h.replace(b'"author"', b'"n":' + b"9" * 5000 + b',"author"'))
    with pytest.raises(pm.PackageError, match="not valid JSON"):
        pm.load(saved)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"1e400"])
def test_non_finite_numbers_are_refused(saved, literal):
    _rewrite(saved, raw_edit=lambda h: h.replace(b'"author"', b'"n":' + literal + b',"author"'))
    with pytest.raises(pm.PackageError, match="not valid JSON"):
        pm.load(saved)


def test_header_larger_than_the_limit_is_refused_before_reading(saved, monkeypatch):
    from pocketml.package import format
    monkeypatch.setattr(format, "MAX_HEADER", 64)
    with pytest.raises(pm.PackageError, match="larger than"):
        pm.load(saved)


@pytest.mark.parametrize("edit, match", [
    (lambda h: h["program"].update(functions={}), "'functions' must be a list"),
    (lambda h: _fn(h).update(ops=[[]]), "op #0: must be an object"),
    (lambda h: _fn(h)["ops"][0].update(attrs=[1]), "'attrs' must be an object"),
    (lambda h: _fn(h)["ops"][0].update(type=7), "'type' must be a string"),
    (lambda h: _fn(h)["ops"][1].update(inputs=["x", 3]), "names must be strings"),
    (lambda h: _fn(h)["ops"][1].update(inputs="xr"), "'inputs' must be a list"),
    (lambda h: _fn(h)["ops"][1].update(loc=["a"]), "'loc' must be a string"),
    (lambda h: _fn(h).update(outputs=[["y"]]), "names must be strings"),
    (lambda h: _fn(h).update(name=None), "'name' must be a string"),
    (lambda h: _fn(h).update(states={}), "'states' must be a list"),
    (lambda h: _fn(h)["states"][0].update(init=4), "'init' must be a string or null"),
    (lambda h: _fn(h).update(dim_ranges=[]), "'dim_ranges' must be an object"),
    (lambda h: _fn(h)["inputs"][0].update(dtype={"a": 1}), "unknown dtype"),
    (lambda h: _fn(h)["ops"][3]["attrs"].update(weight=["w"]), "weight must be a name"),
    (lambda h: _fn(h)["ops"][2]["attrs"].update(state={}), "no state"),
    (lambda h: _fn(h)["ops"][5].update(inputs=[None]), "required input"),
    (lambda h: h["program"]["functions"].append(_fn(h)), "defined twice"),
    (lambda h: h.update(metadata="me"), "metadata must be an object"),
    (lambda h: h.update(program=[]), "'program' must be an object"),
])
def test_wrong_types_anywhere_name_the_problem(saved, edit, match):
    _rewrite(saved, edit)
    with pytest.raises(pm.PackageError, match=match):
        pm.load(saved)


@pytest.mark.parametrize("end", ["Max()", "Min()", "T//0", "T%0", "max(T, key=1)", "T**2", "T/2",
                                 "T" + "+T" * 200, "-" * 40 + "T", "T*" * 40 + "T",
                                 "True", "1.5", "3", "U", "__import__('os')", "T\0", "T.real",
                                 "T if T else 1", "[T]", "T*9223372036854775808"])
def test_bad_expressions_in_attributes_are_refused_at_load(saved, end):
    _rewrite(saved, lambda h: _arange(h).update(end=end))
    with pytest.raises(pm.PackageError, match="attribute 'end'"):
        pm.load(saved)


@pytest.mark.parametrize("start", ["True", "1.5", 1.5, True, None, [0], "T"])
def test_non_integers_in_integer_attributes_are_refused(saved, start):
    _rewrite(saved, lambda h: _arange(h).update(start=start))
    if start == "T":  # a valid expression: arange(T, T) is empty, which the output type contradicts
        with pytest.raises(pm.Error):
            run(saved)
        return
    with pytest.raises(pm.PackageError, match="attribute 'start'"):
        pm.load(saved)


@pytest.mark.parametrize("end, want", [("Max(T, 2)", [0, 1, 2]), ("Min(T, 9)", [0, 1, 2]),
                                       ("(T+1)//1-1", [0, 1, 2])])
def test_valid_expressions_still_run(saved, end, want):
    _rewrite(saved, lambda h: _arange(h).update(end=end))
    np.testing.assert_array_equal(run(saved)["y"], [want])


def test_a_division_by_a_symbolic_zero_is_a_pocketml_error_at_run_time(saved):
    _rewrite(saved, lambda h: _arange(h).update(end="T%(T-T)"))
    m = pm.load(saved)
    with pytest.raises(pm.Error, match="divides by zero"):
        m.predict({"x": np.zeros((1, 3), np.float32)}, state=m.make_state())


def test_the_expression_parser_is_strict():
    assert evaluate("Max(1, seq-3)", {"seq": 2}) == 1
    for bad in ["Max()", "seq//0", "seq%0", "seq**2", "1.5", "True", "x" * (MAX_LENGTH + 1),
                "(" * 300 + "seq" + ")" * 300, "-" * 100 + "seq", "seq+" * 60 + "seq"]:
        assert not is_symbolic(bad, {"seq", "x" * (MAX_LENGTH + 1)})
        with pytest.raises(ValueError):
            evaluate(bad, {"seq": 1})
    with pytest.raises(ValueError, match="divides by zero"):
        evaluate("seq//(seq-1)", {"seq": 1})
    with pytest.raises(ValueError, match="overflows"):
        evaluate("seq*seq*seq*seq", {"seq": 2**20})


@pytest.mark.parametrize("shape, match", [([-4], "bad dimension"), ([2**62], "more than"),
                                          ([2**20, 2**20, 2**20], "more than")])
def test_oversized_or_negative_states_are_refused_at_load(saved, shape, match):
    def edit(h):
        _fn(h)["states"][0]["shape"] = shape
        for op in _fn(h)["ops"][2:]:
            for v in op["outputs"]:
                v["shape"] = shape
    _rewrite(saved, edit)
    with pytest.raises(pm.PackageError, match=match):
        pm.load(saved)


def test_a_state_too_large_for_memory_is_a_clear_error(saved, monkeypatch):
    m = pm.load(saved)

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate")
    monkeypatch.setattr(np, "zeros", no_memory)
    with pytest.raises(pm.PackageError, match="cannot allocate state 's'"):
        m.make_state()
