"""pocketml.inspect on a hand-built program: histogram, parameters, bytes, bits per element."""
import numpy as np

import pocketml as pm
from pocketml.inspect import format_summary, summary
from pocketml.ir import DType, Function, Op, Program, TensorType, Value


def mock_model():
    t = TensorType(DType.float32, (3, 4))
    main = Function("main", [Value("x", t)], [
        Op("const", [], [Value("w", t)], {"weight": "layer.weight"}),
        Op("add", ["x", "w"], [Value("h", t)]),
        Op("add", ["h", "w"], [Value("y", t)]),
    ], ["y"])
    other = Function("other", [Value("x", t)], [
        Op("const", [], [Value("p", TensorType(DType.uint8, (3,)))], {"weight": "packed"}),
        Op("identity", ["x"], [Value("y", t)]),
    ], ["y"])
    weights = {"layer.weight": np.ones((3, 4), np.float32), "packed": np.zeros(3, np.uint8),
               "unused": np.ones(100, np.float32)}
    return pm.Model(Program({"main": main, "other": other}, weights), {"author": "me"})


def test_summary_of_a_model():
    info = summary(mock_model())
    assert info["path"] is None and info["file_size"] is None
    assert info["function"] == "main" and info["functions"] == ["main", "other"]
    assert info["inputs"] == [{"name": "x", "dtype": "float32", "shape": [3, 4]}]
    assert info["ops"] == {"add": 2, "identity": 1} and info["num_ops"] == 3
    assert info["parameters"] == 12  # float weights only; the unused weight is not saved
    assert info["weight_bytes"] == 48 + 3
    assert {w["name"]: w["bits_per_element"] for w in info["weights"]} == \
        {"layer.weight": 32.0, "packed": 8.0}
    text = format_summary(info)
    assert "add       2" in text and "identity  1" in text and "(of main, other)" in text
    assert "layer.weight" in text and "author" in text


def test_summary_of_a_path(tmp_path):
    path = tmp_path / "m.pocket"
    mock_model().save(path)
    info = summary(path)
    assert info["file_size"] == path.stat().st_size and info["path"] == str(path)
    assert info["metadata"] == {"author": "me"}
    assert format_summary(path).startswith(f"package   {path}")
    assert "... and 1 smaller weight(s)" in format_summary(info, max_weights=1)
