"""Flexible input shapes: pm.TensorType with RangeDim / EnumeratedShapes, bounds checked at run time."""
import numpy as np
import pytest
import torch

import pocketml as pm


class Mix(torch.nn.Module):
    def forward(self, tokens, image):
        return tokens.float().sum(-1, keepdim=True) * 2 + image.mean()


@pytest.fixture(scope="module")
def model():
    return pm.convert(Mix(), inputs=[
        pm.TensorType("tokens", (1, pm.RangeDim(1, 64, default=8, name="seq")), dtype=np.int64),
        pm.TensorType("image", pm.EnumeratedShapes([(1, 3, 8, 8), (1, 3, 16, 16)], default=(1, 3, 8, 8))),
    ])


def test_declared_types_names_and_bounds(model):
    assert model.input_names == ["tokens", "image"]
    assert model.inputs["tokens"].shape == (1, "seq")
    fn = model.program.main
    assert fn.dim_ranges["seq"] == [1, 64]
    assert fn.input_shapes == {"image": [[1, 3, 8, 8], [1, 3, 16, 16]]}


@pytest.mark.parametrize("n,size", [(1, 8), (64, 16), (17, 8)])
def test_every_allowed_shape_matches_torch(model, n, size):
    t = np.arange(n, dtype=np.int64)[None]
    img = np.random.default_rng(n).standard_normal((1, 3, size, size)).astype(np.float32)
    want = Mix()(torch.from_numpy(t), torch.from_numpy(img)).numpy()
    np.testing.assert_allclose(model.predict({"tokens": t, "image": img})["output"], want, rtol=1e-6)


def test_out_of_range_and_unlisted_shapes_are_rejected(model, tmp_path):
    img = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(pm.InputError, match=r"dimension 'seq' \('tokens' axis 1\) is 65.*\[1, 64\]"):
        model.predict({"tokens": np.zeros((1, 65), np.int64), "image": img})
    with pytest.raises(pm.InputError, match=r"shape \(1, 3, 12, 12\) is not one of"):
        model.predict({"tokens": np.zeros((1, 4), np.int64), "image": np.zeros((1, 3, 12, 12), np.float32)})
    model.save(tmp_path / "m.pocket")  # the bounds travel in the package
    with pytest.raises(pm.InputError, match="outside the model's range"):
        pm.load(tmp_path / "m.pocket").predict({"tokens": np.zeros((1, 65), np.int64), "image": img})


def test_shared_dimension_name_is_one_symbol():
    class Add(torch.nn.Module):
        def forward(self, a, b):
            return a + b

    seq = pm.RangeDim(2, 32, name="seq")
    m = pm.convert(Add(), inputs=[pm.TensorType("a", (seq, 4)), pm.TensorType("b", (seq, 4))])
    assert m.inputs["a"].shape == m.inputs["b"].shape == ("seq", 4)
    with pytest.raises(pm.InputError):
        m.predict({"a": np.zeros((3, 4), np.float32), "b": np.zeros((5, 4), np.float32)})


def test_unbounded_range_has_no_upper_check():
    m = pm.convert(torch.nn.ReLU(), inputs=[pm.TensorType("x", (pm.RangeDim(1),))])
    assert m.program.main.dim_ranges["x_0"][1] is None
    assert m.predict({"x": np.ones(5000, np.float32)})["output"].shape == (5000,)


@pytest.mark.parametrize("make,match", [
    (lambda: pm.RangeDim(5, 2), "lower <= upper"),
    (lambda: pm.RangeDim(1, 8, default=9), "default 9 is outside"),
    (lambda: pm.RangeDim(1, 8, name="not a name"), "identifier"),
    (lambda: pm.EnumeratedShapes([]), "one or more shapes"),
    (lambda: pm.EnumeratedShapes([(1, 2), (1, 2, 3)]), "one rank"),
    (lambda: pm.EnumeratedShapes([(1, 2)], default=(2, 2)), "not among"),
])
def test_bad_declarations_are_config_errors(make, match):
    with pytest.raises(pm.ConfigError, match=match):
        make()


def test_inputs_and_dynamic_shapes_are_exclusive():
    with pytest.raises(pm.ConversionError, match="either inputs"):
        pm.convert(torch.nn.ReLU(), inputs=[pm.TensorType("x", (2,))], input_names=["x"])


def test_one_name_with_two_ranges_is_refused():
    class Add(torch.nn.Module):
        def forward(self, a, b):
            return a.sum() + b.sum()

    with pytest.raises(pm.ConversionError, match="'n' is declared with two different ranges"):
        pm.convert(Add(), inputs=[pm.TensorType("a", (pm.RangeDim(1, 8, name="n"),)),
                                  pm.TensorType("b", (pm.RangeDim(1, 9, name="n"),))])
