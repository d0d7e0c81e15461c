"""Runtime: input checking, fp16 emulation, buffer release, and independence from torch."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pocketml as pm
from pocketml.ir import DType, Function, Op, Program, TensorType, Value


def add_model(shape=(2, "n"), dtype=DType.float32):
    t = TensorType(dtype, shape)
    fn = Function("main", [Value("a", t), Value("b", t)], [Op("add", ["a", "b"], [Value("sum", t)])], ["sum"])
    return pm.Model(Program({"main": fn}, {}))


def test_symbolic_dims_bind_per_call():
    m = add_model()
    for n in (1, 5):
        x = np.ones((2, n), np.float32)
        assert m.predict({"a": x, "b": x})["sum"].shape == (2, n)


@pytest.mark.parametrize("inputs, match", [
    ({"a": np.ones((2, 3), np.float32)}, r"missing input\(s\) \['b'\]"),
    ({"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32), "c": 1}, r"unknown input\(s\) \['c'\]"),
    ({"a": np.ones((2, 3), np.float64), "b": np.ones((2, 3), np.float32)}, "input 'a': expected dtype float32, got float64"),
    ({"a": np.ones((3, 3), np.float32), "b": np.ones((3, 3), np.float32)}, r"input 'a': expected shape \(2, 'n'\), got \(3, 3\)"),
    ({"a": np.ones((2, 3), np.float32), "b": np.ones((2, 4), np.float32)}, r"input 'b': expected shape \(2, 'n'\), got \(2, 4\)"),
    ({"a": np.ones((2,), np.float32), "b": np.ones((2, 3), np.float32)}, "rank 2"),
])
def test_bad_inputs_name_the_input_expected_and_given(inputs, match):
    with pytest.raises(pm.InputError, match=match):
        add_model().predict(inputs)


def test_inputs_must_be_a_dict():
    with pytest.raises(pm.InputError, match="dict"):
        add_model().predict([np.ones((2, 3), np.float32)])


def test_float16_emulation_rounds_activations():
    t = TensorType(DType.float32, (1,))
    fn = Function("main", [Value("a", t)], [
        Op("const", [], [Value("w", t)], {"weight": "w"}),
        Op("add", ["a", "w"], [Value("s", t)]),
    ], ["s"])
    prog = Program({"main": fn}, {"w": np.array([1e-4], np.float32)})
    x = {"a": np.array([1.0], np.float32)}
    assert pm.Model(prog).predict(x)["s"][0] == np.float32(1.0001)
    assert pm.Model(prog, compute_precision="float16").predict(x)["s"][0] == 1.0  # 1 + 1e-4 rounds to 1 in fp16
    with pytest.raises(pm.ConfigError, match="compute_precision"):
        pm.Model(prog, compute_precision="int3")


def test_activations_are_released_after_last_use():
    t = TensorType(DType.float32, (4,))
    ops = [Op("add", ["a", "a"], [Value("v0", t)])]
    for i in range(1, 6):
        ops.append(Op("add", [f"v{i - 1}", "a"], [Value(f"v{i}", t)]))
    m = pm.Model(Program({"main": Function("main", [Value("a", t)], ops, ["v5"])}, {}))
    live = []
    m._executor.run([np.ones(4, np.float32)], observe=lambda i, step, outs: live.append(step.release))
    # each intermediate is dropped by its only consumer; the input goes with the last op
    assert [len(r) for r in live] == [0, 1, 1, 1, 1, 2]
    np.testing.assert_array_equal(m.predict({"a": np.ones(4, np.float32)})["v5"], np.full(4, 7.0))


def test_runtime_path_never_imports_torch(tmp_path):
    torch = pytest.importorskip("torch")

    class M(torch.nn.Module):
        def forward(self, x, y):
            return x + y

    path = tmp_path / "m.pocket"
    pm.convert(M(), (torch.ones(2), torch.ones(2))).save(path)
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
        sys.meta_path.insert(0, Block())
        import numpy as np, pocketml as pm
        m = pm.load({str(path)!r})
        out = m.predict({{"x": np.ones(2, np.float32), "y": np.ones(2, np.float32)}})
        assert out["output"].tolist() == [2.0, 2.0], out
        import pocketml.runtime, pocketml.package, pocketml.inspect, pocketml.ir
        assert not any(k == "torch" or k.startswith("torch.") for k in sys.modules), "torch imported"
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
