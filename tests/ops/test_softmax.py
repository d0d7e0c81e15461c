"""softmax / log_softmax against torch."""
import numpy as np
import pytest
import torch

from nn_op_helpers import rand, run_op

rng = np.random.default_rng(3)


@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
@pytest.mark.parametrize("op,fn", [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)])
def test_softmax(op, fn, axis):
    x = rand(rng, (3, 4, 5), scale=30)  # large logits: needs the max-subtraction
    out, = run_op(op, [x], axis=axis)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, fn(torch.from_numpy(x), axis).numpy(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("op,fn", [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)])
def test_softmax_inf(op, fn):
    x = rand(rng, (3, 5))
    x[0, :] = -np.inf
    x[1, 2] = -np.inf
    out, = run_op(op, [x], axis=-1)
    ref = fn(torch.from_numpy(x), -1).numpy()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(ref))
    ok = np.isfinite(ref)
    np.testing.assert_allclose(out[ok], ref[ok], atol=1e-6)


def test_softmax_scalar_and_fp16():
    out, = run_op("softmax", [np.array(3.0, dtype=np.float32)], axis=0)
    assert out.shape == () and out == 1
    x = rand(rng, (2, 7)).astype(np.float16)
    out, = run_op("softmax", [x], axis=1)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out, torch.softmax(torch.from_numpy(x).float(), 1).numpy(), atol=1e-3)
