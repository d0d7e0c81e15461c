"""_native.rms_norm / layer_norm (src/native/kernels/norm) against the NumPy references
(ir/ops/norm.py) over the last axis: with and without weight/bias, awkward sizes, 1 and 2 threads,
in place; bad inputs raise, never crash."""

import numpy as np
import pytest

from pocketml import _native
from pocketml.ir.ops.norm import layer_norm, rms_norm

SHAPES = [(1,), (7,), (1, 576), (3, 5, 33), (2, 1, 1000), (600, 512)]  # the last: several threads


def data(shape, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    d = shape[-1]
    x = (rng.standard_normal(shape) * 3 + offset).astype(np.float32)
    return x, rng.standard_normal(d).astype(np.float32), rng.standard_normal(d).astype(np.float32)


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_rms_norm(shape, threads):
    x, w, _ = data(shape)
    for weight in (w, None):
        for eps in (1e-6, 1e-5, 0.5):
            out = np.empty_like(x)
            _native.rms_norm(x, weight, eps, out, threads)
            close(out, rms_norm([x, weight], {"axes": [-1], "eps": eps}))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_layer_norm(shape, threads):
    x, w, b = data(shape, offset=5.0)  # a mean far from 0
    for weight, bias in ((w, b), (w, None), (None, b), (None, None)):
        out = np.empty_like(x)
        _native.layer_norm(x, weight, bias, 1e-5, out, threads)
        close(out, layer_norm([x, weight, bias], {"axes": [-1], "eps": 1e-5}))


def test_in_place_and_constant_rows():
    x, w, b = data((4, 9))
    x[1] = 2.5  # zero variance: eps alone
    expect = layer_norm([x, w, b], {"axes": [-1], "eps": 1e-5})
    y = x.copy()
    _native.layer_norm(y, w, b, 1e-5, y)
    close(y, expect)
    expect = rms_norm([x, w], {"axes": [-1], "eps": 1e-6})
    _native.rms_norm(x, w, 1e-6, x)
    close(x, expect)


def test_bad_inputs_raise():
    x, w, b = data((3, 8))
    out = np.empty_like(x)
    with pytest.raises(TypeError):
        _native.rms_norm(x.astype(np.float64), w, 1e-5, out)
    with pytest.raises(TypeError):
        _native.rms_norm(x, w.astype(np.float16), 1e-5, out)
    with pytest.raises(ValueError):
        _native.rms_norm(x, w[:7], 1e-5, out)
    with pytest.raises(ValueError):
        _native.rms_norm(x, w[None], 1e-5, out)
    with pytest.raises(ValueError):
        _native.rms_norm(x, w, 1e-5, out[:2])
    with pytest.raises(ValueError):
        _native.rms_norm(x.T, None, 1e-5, out.T.copy())  # not contiguous
    with pytest.raises(ValueError):
        _native.rms_norm(x, w, -1.0, out)
    with pytest.raises(ValueError):
        _native.rms_norm(x, w, float("nan"), out)
    with pytest.raises(ValueError):
        _native.layer_norm(x, w, b[:3], 1e-5, out)
    with pytest.raises(ValueError):
        _native.layer_norm(np.zeros((), np.float32), None, None, 1e-5, np.zeros((), np.float32))
    with pytest.raises(ValueError):
        _native.layer_norm(x, None, None, 1e-5, out, -2)
