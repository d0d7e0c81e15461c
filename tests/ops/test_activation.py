"""Activation ops: NumPy references against torch, and type inference against computed results."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from helpers import infer, run

rng = np.random.default_rng(1)
T = torch.from_numpy


def close(got, want, rtol, atol):
    want = want.numpy()
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol)


def sample(dtype, shape=(4, 33)):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x.reshape(-1)[:12] = [0, -0.0, 3, -3, 6, -6, 25, -25, 100, -100, np.inf, -np.inf]
    return x


CASES = [
    ("relu", {}, F.relu),
    ("leaky_relu", {"alpha": 0.2}, lambda t: F.leaky_relu(t, 0.2)),
    ("leaky_relu", {}, F.leaky_relu),
    ("elu", {}, F.elu),
    ("elu", {"alpha": 0.5}, lambda t: F.elu(t, 0.5)),
    ("elu", {"alpha": 1.6732632423543772, "scale": 1.0507009873554805}, F.selu),
    ("elu", {"alpha": 0.7, "input_scale": 1 / 0.7}, lambda t: F.celu(t, 0.7)),
    ("gelu", {}, F.gelu),
    ("gelu", {"approximate": "tanh"}, lambda t: F.gelu(t, approximate="tanh")),
    ("sigmoid", {}, torch.sigmoid),
    ("silu", {}, F.silu),
    ("hardsigmoid", {}, F.hardsigmoid),
    ("hardswish", {}, F.hardswish),
    ("softplus", {}, F.softplus),
    ("softplus", {"beta": 2.0, "threshold": 5.0}, lambda t: F.softplus(t, 2.0, 5.0)),
    ("mish", {}, F.mish),
    ("log_sigmoid", {}, F.logsigmoid),
]


@pytest.mark.parametrize("op, attrs, fn", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_activation_matches_torch(op, attrs, fn, dtype):
    x = sample(dtype)
    tol = (2e-6, 1e-6) if dtype == np.float32 else (2e-3, 1e-3)
    got, want = run(op, [x], **attrs), fn(T(x))
    if op == "gelu":  # torch's gelu(±inf) depends on the CPU's vector path (inf on AMD EPYC, nan on Xeon)
        assert got.reshape(-1)[10] == np.inf
        got, want = np.delete(got.reshape(-1), [10, 11]), T(np.delete(want.numpy().reshape(-1), [10, 11]))
    close(got, want, *tol)


def test_activation_nan_propagates():
    x = np.array([np.nan, 1.0], np.float32)
    for op, attrs, fn in CASES:
        assert np.isnan(run(op, [x], **attrs)[0]) == bool(torch.isnan(fn(T(x)))[0]), op


def test_relu_integers():
    x = rng.integers(-5, 5, (3, 4))
    np.testing.assert_array_equal(run("relu", [x]), F.relu(T(x)).numpy())
    with pytest.raises(TypeError):
        infer("relu", [("bool", (3,))])


def test_float_activations_reject_integers():
    for op in ("gelu", "sigmoid", "silu", "elu", "softplus", "mish", "leaky_relu"):
        with pytest.raises(TypeError):
            infer(op, [("int64", (3,))])


@pytest.mark.parametrize("shape, channels", [((2, 3, 4, 5), 3), ((2, 3, 4, 5), 1), ((2, 6), 6), ((7,), 1),
                                             ((2, 4, 9), 4), ((), 1)])
def test_prelu_matches_torch(shape, channels):
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.random(channels).astype(np.float32)
    close(run("prelu", [x, w]), F.prelu(T(x), T(w)), 1e-6, 1e-7)


def test_prelu_checks_weight():
    with pytest.raises(TypeError):
        infer("prelu", [("float32", (2, 3, 4)), ("float32", (4,))])
    with pytest.raises(TypeError):
        infer("prelu", [("float32", (2, 3)), ("float16", (3,))])
    assert infer("prelu", [("float32", ("b", 3, "t")), ("float32", (3,))])[0].shape == ("b", 3, "t")


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=0, max_size=4), st.sampled_from(CASES))
def test_shapes_fuzz(shape, case):
    op, attrs, fn = case
    x = rng.standard_normal(shape).astype(np.float32)
    close(run(op, [x], **attrs), fn(T(x)), 2e-6, 1e-6)
