"""Program.merge: functions of several programs over one weights table, each array stored once."""
import numpy as np
import pytest

import pocketml as pm
from pocketml.ir import DType, Function, Op, Program, TensorType, Value
from pocketml.ir.program import State

T = TensorType(DType.float32, (2, 3))


def _adder(weights: dict[str, np.ndarray], state: State | None = None) -> Program:
    """y = x + every weight (+ the state's value, which is then set to y)."""
    ops, last = [], "x"
    for i, key in enumerate(weights):
        if state is not None and key == state.init:
            continue  # read by the state only
        ops += [Op("const", [], [Value(f"w{i}", T)], {"weight": key}),
                Op("add", [last, f"w{i}"], [Value(f"s{i}", T)])]
        last = f"s{i}"
    if state is not None:
        ops += [Op("read_state", [], [Value("old", T)], {"state": state.name}),
                Op("add", [last, "old"], [Value("y", T)]),
                Op("write_state", ["y"], [], {"state": state.name})]
    else:
        ops.append(Op("add", [last, "x"], [Value("y", T)]))
    fn = Function("main", [Value("x", T)], ops, ["y"], states=[state] if state else [])
    return Program({"main": fn}, dict(weights))


def _w(v: float) -> np.ndarray:
    return np.full((2, 3), v, np.float32)


def test_shared_and_equal_weights_are_stored_once_and_clashes_kept_apart(tmp_path):
    a = _adder({"shared": _w(1), "only_a": _w(2), "clash": _w(3)})
    b = _adder({"shared": _w(1), "same_as_only_a": _w(2), "clash": _w(5)})
    merged = Program.merge({"first": a, "second": b})
    assert list(merged.functions) == ["first", "second"]
    assert list(merged.weights) == ["shared", "only_a", "clash", "clash.second"]
    consts = {f: [op.attrs["weight"] for op in fn.ops if op.type == "const"] for f, fn in merged.functions.items()}
    assert consts == {"first": ["shared", "only_a", "clash"], "second": ["shared", "only_a", "clash.second"]}
    # the inputs are unchanged
    assert [op.attrs["weight"] for op in b.main.ops if op.type == "const"] == ["shared", "same_as_only_a", "clash"]
    assert b.main.name == "main"
    path = tmp_path / "merged.pocket"
    pm.Model(merged, {"note": "two"}).save(path)
    x = np.zeros((2, 3), np.float32)
    assert pm.load(path).predict({"x": x})["y"][0, 0] == 6  # the first function is the default
    assert pm.load(path, function="second").predict({"x": x})["y"][0, 0] == 8
    for f, program in (("first", a), ("second", b)):
        want = pm.Model(program).predict({"x": x})["y"]
        np.testing.assert_array_equal(pm.load(path, function=f).predict({"x": x})["y"], want)


def test_states_and_their_initial_values_follow():
    init = np.full((2, 3), 7, np.float32)
    a = _adder({"w": _w(1), "bias": _w(7)})
    b = _adder({"w": _w(1), "cache.init": init}, State("cache", T, "cache.init"))
    merged = Program.merge({"enc": a, "dec": b})
    assert list(merged.weights) == ["w", "bias"]  # the state's initial value equals "bias"
    assert merged.functions["dec"].states == [State("cache", T, "bias")]
    model = pm.Model(merged, function="dec")
    state = model.make_state()
    np.testing.assert_array_equal(state.read("cache"), init)
    x = np.zeros((2, 3), np.float32)
    assert model.predict({"x": x}, state=state)["y"][0, 0] == 8
    assert model.predict({"x": x}, state=state)["y"][0, 0] == 9
    assert b.main.states == [State("cache", T, "cache.init")]


def test_programs_of_several_functions_are_refused():
    a = _adder({"w": _w(1)})
    two = Program({"main": a.main, "other": a.main}, a.weights)
    with pytest.raises(pm.ConfigError, match="one function each"):
        Program.merge({"x": two})
