"""find_nonfinite: which inputs/outputs hold NaN/Inf and the op that first produced them."""
import numpy as np
import pytest

import pocketml as pm
from pocketml.ir import DType, Function, Op, Program, TensorType, Value
from pocketml.validation import find_nonfinite

T = TensorType(DType.float32, (2, 3))


def model(ops, weights=None, precision="float32"):
    fn = Function("main", [Value("x", T)], ops, [ops[-1].outputs[0].name])
    return pm.Model(Program({"main": fn}, weights or {}), compute_precision=precision)


def log_model():
    return model([Op("exp", ["x"], [Value("e", T)]),
                  Op("sub", ["e", "x"], [Value("d", T)]),
                  Op("log", ["x"], [Value("l", T)], loc="model.log (m.py:5)"),
                  Op("add", ["d", "l"], [Value("y", T)])])


def test_finite_runs_give_an_empty_report():
    r = find_nonfinite(log_model(), {"x": np.ones((2, 3), np.float32)})
    assert not r and r.origin is None and r.to_text() == "all inputs and outputs are finite"


def test_the_op_that_made_nan_from_clean_inputs_is_found():
    x = np.ones((2, 3), np.float32)
    x[1, 2] = -1
    r = find_nonfinite(log_model(), {"x": x})
    assert r and r.inputs == {}
    assert r.outputs == {"y": "1 NaN of 6 values, first at index (1, 2)"}
    o = r.origin
    assert (o.op_index, o.op_type, o.loc, o.output, o.kind) == (2, "log", "model.log (m.py:5)", "l", "NaN")
    assert r.lines()[-1] == "NaN first appears in 'l', the output of log at model.log (m.py:5)"
    np.testing.assert_array_equal(r.prediction["y"], log_model().predict({"x": x})["y"])


def test_nan_inputs_are_reported_as_the_source():
    x = np.ones((2, 3), np.float32)
    x[0, 1], x[1, 0] = np.nan, np.inf
    r = find_nonfinite(log_model(), {"x": x})
    assert r.inputs == {"x": "1 NaN, 1 +Inf of 6 values, first at index (0, 1)"}
    assert "y" in r.outputs and r.origins == []  # the NaN came in with x
    x[0, 1] = 1
    r = find_nonfinite(log_model(), {"x": x})  # inf - inf = NaN in `sub`, from the input's Inf
    assert [(o.op_type, o.kind, o.nonfinite_inputs) for o in r.origins] == [("sub", "NaN", ["e", "x"])]


def test_a_fully_masked_softmax_row_is_the_origin_not_the_mask():
    mask = np.zeros((2, 3), np.float32)
    mask[1] = -np.inf
    m = model([Op("const", [], [Value("mask", T)], {"weight": "mask"}),
               Op("add", ["x", "mask"], [Value("masked", T)]),
               Op("softmax", ["masked"], [Value("p", T)], {"axis": -1}, loc="attn (a.py:9)")],
              {"mask": mask})
    r = find_nonfinite(m, {"x": np.zeros((2, 3), np.float32)})
    assert r.inputs == {} and list(r.outputs) == ["p"]
    assert r.origin.to_text() == "NaN first appears in 'p', the output of softmax at attn (a.py:9) " \
                                 "from ±Inf in 'masked'"


def test_fp16_overflow_is_found():
    m = model([Op("mul", ["x", "x"], [Value("sq", T)]),
               Op("relu", ["sq"], [Value("y", T)])], precision="float16")
    x = np.full((2, 3), 300, np.float32)  # 90000 > fp16's 65504
    r = find_nonfinite(m, {"x": x})
    assert r.outputs == {"y": "6 +Inf of 6 values, first at index (0, 0)"}
    assert (r.origin.op_type, r.origin.kind, r.origin.output) == ("mul", "Inf", "sq")
    assert not find_nonfinite(model(m.function.ops), {"x": x})  # fine in float32


def test_bad_inputs_still_raise_input_errors():
    with pytest.raises(pm.InputError, match="input 'x'"):
        find_nonfinite(log_model(), {"x": np.ones((2, 3), np.float64)})


def test_validate_reports_where_nonfinite_values_came_from():
    torch = pytest.importorskip("torch")

    class M(torch.nn.Module):
        def forward(self, x):
            return torch.log(x) * 2

    m = pm.convert(M(), (torch.ones(3),))
    report = pm.validate(m, M(), (torch.tensor([-1.0, 1.0, 2.0]),))
    assert report.nonfinite[0] == "output 'output' holds 1 NaN of 3 values, first at index (0,)"
    assert report.nonfinite[1].startswith("NaN first appears in ")
    assert "the output of log" in report.nonfinite[1]
    assert "non-finite values:" in report.to_text() and report.to_dict()["nonfinite"] == report.nonfinite
    clean = pm.validate(m, M(), [(torch.tensor([1.0, 2.0, 3.0]),), (torch.tensor([np.nan, 1, 1]),)])
    assert clean.nonfinite[0] == "sample 1: input 'x' holds 1 NaN of 3 values, first at index (0,)"


def test_stateful_models_run_on_the_given_or_a_fresh_state():
    torch = pytest.importorskip("torch")

    class Acc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("total", torch.zeros(3))

        def forward(self, x):
            self.total.add_(x)
            return self.total * 1

    m = pm.convert(Acc(), (torch.ones(3),))
    assert not find_nonfinite(m, {"x": np.ones(3, np.float32)})  # a fresh state each time
    state = m.make_state()
    find_nonfinite(m, {"x": np.array([np.inf, 0, 0], np.float32)}, state=state)
    r = find_nonfinite(m, {"x": np.array([-np.inf, 0, 0], np.float32)}, state=state)
    assert r.inputs == {"x": "1 -Inf of 3 values, first at index (0,)"}
    assert r.outputs == {"output": "1 NaN of 3 values, first at index (0,)"}  # inf + -inf
    assert [o.kind for o in r.origins] == ["NaN"]
