"""layer_norm / rms_norm / group_norm / batch_norm against torch."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nn_op_helpers import infer_op, rand, run_op
from pocketml.ir.types import DType, TensorType

rng = np.random.default_rng(4)
T = torch.from_numpy


def _x(shape=(2, 6, 5, 7)):
    return (rng.standard_normal(shape) * 3 + 10).astype(np.float32)  # offset mean: tests the centring


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(k, affine):
    x = _x()
    shape = x.shape[-k:]
    w, b = (rand(rng, shape), rand(rng, shape)) if affine else (None, None)
    out, = run_op("layer_norm", [x, w, b], axes=list(range(-k, 0)), eps=1e-5)
    ref = F.layer_norm(T(x), shape, None if w is None else T(w), None if b is None else T(b)).numpy()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_layer_norm_weight_only_and_positive_axes():
    x = _x((3, 4, 8))
    w = rand(rng, (8,))
    out, = run_op("layer_norm", [x, w, None], axes=[2], eps=1e-3)
    np.testing.assert_allclose(out, F.layer_norm(T(x), (8,), T(w), None, eps=1e-3).numpy(), atol=1e-5)


@pytest.mark.parametrize("affine", [True, False])
def test_rms_norm(affine):
    x = _x((2, 5, 16))
    w = rand(rng, (16,)) if affine else None
    out, = run_op("rms_norm", [x, w], axes=[-1], eps=1e-6)
    np.testing.assert_allclose(out, F.rms_norm(T(x), (16,), None if w is None else T(w), 1e-6).numpy(), atol=1e-5)
    out, = run_op("rms_norm", [x, None], axes=[-2, -1], eps=float(np.finfo(np.float32).eps))
    np.testing.assert_allclose(out, F.rms_norm(T(x), (5, 16)).numpy(), atol=1e-5)


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(2, 6, 5, 7), (2, 6, 9), (3, 6)])
def test_group_norm(groups, affine, shape):
    if len(shape) == 2 and groups == 6:
        return  # one value per group: torch's E[x^2]-E[x]^2 variance is pure rounding noise there
    x = _x(shape)
    w, b = (rand(rng, 6), rand(rng, 6)) if affine else (None, None)
    out, = run_op("group_norm", [x, w, b], groups=groups, eps=1e-5)
    ref = F.group_norm(T(x), groups, None if w is None else T(w), None if b is None else T(b)).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_instance_norm_is_group_norm_per_channel():
    x = _x()
    out, = run_op("group_norm", [x, None, None], groups=6)
    np.testing.assert_allclose(out, F.instance_norm(T(x)).numpy(), atol=1e-5)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(2, 6, 5, 7), (4, 6, 9), (5, 6)])
def test_batch_norm_inference(affine, shape):
    x = _x(shape)
    mean, var = rand(rng, 6) + 10, rng.random(6).astype(np.float32) + 0.5
    w, b = (rand(rng, 6), rand(rng, 6)) if affine else (None, None)
    out, = run_op("batch_norm", [x, mean, var, w, b], eps=1e-3)
    ref = F.batch_norm(T(x), T(mean), T(var), None if w is None else T(w), None if b is None else T(b),
                       eps=1e-3).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_batch_norm_batch_statistics():
    x = _x()
    w, b = rand(rng, 6), rand(rng, 6)
    out, = run_op("batch_norm", [x, None, None, w, b])
    ref = F.batch_norm(T(x), None, None, T(w), T(b), training=True).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_norm_infer_errors():
    f = DType.float32
    with pytest.raises(ValueError):
        infer_op("group_norm", [TensorType(f, (1, 6, 4)), None, None], groups=4)
    with pytest.raises(ValueError):
        infer_op("batch_norm", [TensorType(f, (1, 6, 4)), TensorType(f, (5,)), TensorType(f, (5,)), None, None])
    with pytest.raises(ValueError):
        infer_op("layer_norm", [TensorType(f, (1, 6, 4)), TensorType(f, (5,)), None])
    with pytest.raises(ValueError):
        infer_op("layer_norm", [TensorType(DType.int64, (1, 6, 4)), None, None])
    t, = infer_op("layer_norm", [TensorType(f, ("b", "t", 4)), TensorType(f, (4,)), TensorType(f, (4,))])
    assert t.shape == ("b", "t", 4)


def test_float16():
    x = _x((2, 6, 5)).astype(np.float16)
    for name, arrays, attrs, ref in [
            ("layer_norm", [x, None, None], {}, F.layer_norm(T(x).float(), (5,))),
            ("group_norm", [x, None, None], {"groups": 3}, F.group_norm(T(x).float(), 3)),
            ("rms_norm", [x, None], {}, F.rms_norm(T(x).float(), (5,), eps=1e-6))]:
        out, = run_op(name, arrays, **attrs)
        assert out.dtype == np.float16
        np.testing.assert_allclose(out.astype(np.float32), ref.numpy(), atol=5e-3, rtol=5e-3)
