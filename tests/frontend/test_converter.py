"""The converter itself: names, errors with source locations, metadata, dynamic shapes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pocketml as pm
from helpers import check_module


class TwoUnsupported(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = torch.nn.Linear(4, 4)

    def forward(self, x):
        y = torch.special.i0(self.inner(x))  # line A: no lowering
        return torch.atan2(y, x)  # line B: no lowering


def test_every_unsupported_op_is_listed_with_module_path_and_line():
    with pytest.raises(pm.ConversionError) as e:
        pm.convert(TwoUnsupported(), (torch.randn(2, 4),))
    msg = str(e.value)
    assert "2 op(s) have no pocketml lowering" in msg
    assert "aten.i0.default" in msg and "aten.atan2.default" in msg
    assert "test_converter.py:17" in msg and "test_converter.py:18" in msg
    assert "supported_targets" in msg  # says how to work around


def test_names_come_from_signature_and_dict_outputs_and_can_be_overridden(tmp_path):
    class M(torch.nn.Module):
        def forward(self, tokens, scale):
            return {"doubled": tokens * 2, "scaled": tokens * scale}

    m = check_module(M(), (torch.randn(3), torch.randn(3)), tmp_path)
    assert m.input_names == ["tokens", "scale"] and m.output_names == ["doubled", "scaled"]
    m = pm.convert(M(), (torch.randn(3), torch.randn(3)), input_names=["a", "b"], output_names=["p", "q"])
    assert m.input_names == ["a", "b"] and m.output_names == ["p", "q"]
    with pytest.raises(pm.ConversionError, match="input_names has 1 names but the model takes 2"):
        pm.convert(M(), (torch.randn(3), torch.randn(3)), input_names=["a"])


def test_output_that_is_an_input_or_repeated_gets_its_own_name():
    class M(torch.nn.Module):
        def forward(self, x):
            y = x + 1
            return x, y, y

    m = pm.convert(M(), (torch.randn(2),))
    x = np.array([1.0, 2.0], np.float32)
    out = m.predict({"x": x})
    assert list(out) == ["output_0", "output_1", "output_2"]
    np.testing.assert_array_equal(out["output_0"], x)
    np.testing.assert_array_equal(out["output_2"], x + 1)


def test_metadata_is_recorded_and_checked(tmp_path):
    class M(torch.nn.Module):
        def forward(self, x):
            return x * 2

    m = pm.convert(M(), (torch.randn(2),), metadata={"author": "Ada", "license": "MIT",
                                                      "input_descriptions": {"x": "a vector"}})
    m.save(tmp_path / "m.pocket")
    meta = pm.load(tmp_path / "m.pocket").metadata
    assert meta["author"] == "Ada" and meta["input_descriptions"] == {"x": "a vector"}
    assert meta["source_framework"] == "pytorch" and meta["source_framework_version"].startswith("2.13")
    assert meta["pocketml_version"] == pm.__version__ and "conversion_date" in meta
    with pytest.raises(pm.ConversionError, match="input_descriptions.*'y'"):
        pm.convert(M(), (torch.randn(2),), metadata={"input_descriptions": {"y": "?"}})


def test_bad_model_arguments():
    with pytest.raises(pm.ConversionError, match="needs example_inputs"):
        pm.convert(torch.nn.ReLU())
    with pytest.raises(pm.ConversionError, match="expected a torch.nn.Module.*got function; wrap a function"):
        pm.convert(lambda x: x, (torch.randn(1),))
    with pytest.raises(pm.ConversionError, match="expected a torch.nn.Module.*got numpy.ndarray$"):
        pm.convert(np.zeros(3), (torch.randn(1),))

    class CallOnly(torch.nn.Module):
        def __call__(self, x):
            return x * 2

    spec = [pm.TensorType("x", (pm.RangeDim(1, 8),))]  # torch.export would blame dynamic_shapes
    for module in (CallOnly(), torch.nn.Module()):
        for kwargs in ({"example_inputs": (torch.randn(2),)}, {"inputs": spec}):
            with pytest.raises(pm.ConversionError, match=r"has no forward\(\) method"):
                pm.convert(module, **kwargs)

    class Bad(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow cannot be exported
                return x
            return -x

    with pytest.raises(pm.ConversionError, match="torch.export could not trace"):
        pm.convert(Bad(), (torch.randn(2),))


def test_in_place_input_updates_are_refused_clearly():
    class Bump(torch.nn.Module):
        def forward(self, x):
            x.add_(1)
            return x * 2

    with pytest.raises(pm.ConversionError, match="updates its inputs or parameters in place"):
        pm.convert(Bump(), (torch.randn(2),))


class TinyDecoder(torch.nn.Module):
    """Token embedding + positional slice + causal attention: the shape games of real decoders."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(50, 16)
        self.pos = torch.nn.Parameter(torch.randn(64, 16))
        self.qkv = torch.nn.Linear(16, 48)

    def forward(self, ids):
        b, t = ids.shape
        h = self.emb(ids) + self.pos[:t]
        q, k, v = self.qkv(h).view(b, t, 3, 2, 8).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        pos = torch.arange(t).float().view(1, t, 1)
        return a.transpose(1, 2).reshape(b, t, 16) + pos


def test_dynamic_shapes_make_one_package_serve_many_sizes(tmp_path):
    module = TinyDecoder().eval()
    batch, seq = torch.export.Dim("batch", max=8), torch.export.Dim("seq", min=2, max=64)
    m = pm.convert(module, (torch.randint(0, 50, (2, 5)),), dynamic_shapes=({0: batch, 1: seq},))
    assert m.inputs["ids"].shape == ("batch", "seq")
    m.save(tmp_path / "m.pocket")
    m = pm.load(tmp_path / "m.pocket")
    for shape in [(1, 2), (3, 17), (2, 64)]:
        ids = torch.randint(0, 50, shape)
        with torch.no_grad():
            want = module(ids).numpy()
        got = m.predict({"ids": ids.numpy()})["output"]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_symbolic_expressions_are_parsed_safely():
    from pocketml.ir.symbolic import evaluate, is_symbolic, resolve

    assert evaluate("2*seq+1", {"seq": 5}) == 11
    assert evaluate("(seq+63)//64", {"seq": 65}) == 2
    assert evaluate("Max(1, seq-3)", {"seq": 2}) == 1
    assert is_symbolic("seq", {"seq"}) and not is_symbolic("nearest", {"seq"})
    assert not is_symbolic("__import__('os')", {"os"})
    assert resolve([1, "seq", -1], {"seq": 7}, {"seq"}) == [1, 7, -1]
    with pytest.raises(ValueError, match="not bound"):
        evaluate("other", {"seq": 1})


def test_output_names_may_swap_with_intermediate_names():
    class M(torch.nn.Module):
        def forward(self, x):
            return x * 3, x + 1

    m = pm.convert(M(), (torch.randn(2),), output_names=["add", "mul"])  # the IR's own value names
    out = m.predict({"x": np.ones(2, np.float32)})
    np.testing.assert_array_equal(out["add"], [3, 3])
    np.testing.assert_array_equal(out["mul"], [2, 2])
    with pytest.raises(pm.ConversionError, match="distinct"):
        pm.convert(M(), (torch.randn(2),), output_names=["x", "y"])


def test_converting_emits_no_warnings_of_torch_internals():
    """torch.export's deprecation notices about its own code are hidden around pocketml's calls
    (pyproject's filterwarnings ignores FutureWarning, hence the filter here)."""
    import warnings

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 4)
            self.register_buffer("count", torch.zeros(1))

        def forward(self, x):
            self.count.add_(1)
            return torch.relu(self.fc(x)) + self.count

    exported = torch.export.export(M(), (torch.randn(2, 3),))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm.convert(torch.nn.Linear(3, 4), (torch.randn(2, 3),))
        pm.convert(M(), inputs=[pm.TensorType("x", (pm.RangeDim(1, 8), 3))])
        pm.convert(exported)
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []
