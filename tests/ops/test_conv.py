"""conv / conv_transpose references against torch."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from nn_op_helpers import infer_op, rand, run_op
from pocketml.ir.types import DType, TensorType

rng = np.random.default_rng(0)
T = torch.from_numpy
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONVT = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _conv(x, w, b, stride, pad, dil, groups):
    n = x.ndim - 2
    out, = run_op("conv", [x, w, b], strides=[stride] * n, pads=[pad] * (2 * n), dilations=[dil] * n,
                  groups=groups)
    ref = CONV[n](T(x), T(w), None if b is None else T(b), stride, pad, dil, groups).numpy()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("xs,ws,stride,pad,dil,groups,bias", [
    ((2, 4, 9, 9), (6, 4, 3, 3), 1, 1, 1, 1, True),        # plain 3x3 same
    ((2, 4, 9, 10), (6, 4, 3, 3), 2, 0, 1, 1, False),      # stride, no padding, no bias
    ((2, 4, 9, 9), (6, 2, 3, 3), 2, 2, 2, 2, True),        # groups + dilation
    ((2, 4, 11, 9), (8, 1, 3, 3), 2, 1, 1, 4, True),       # depthwise with multiplier 2
    ((1, 4, 9, 9), (4, 1, 5, 5), 1, 2, 1, 4, False),       # depthwise 5x5
    ((1, 4, 9, 9), (4, 1, 3, 3), 1, 2, 2, 4, True),        # dilated depthwise
    ((2, 4, 9, 9), (6, 4, 1, 1), 1, 0, 1, 1, True),        # pointwise
    ((2, 4, 9, 9), (6, 4, 1, 1), 2, 1, 1, 1, True),        # strided pointwise with padding
    ((2, 3, 17), (5, 3, 4), 3, 1, 1, 1, True),             # 1d
    ((2, 4, 17), (4, 1, 3), 1, 2, 2, 4, True),             # 1d depthwise dilated
    ((1, 4, 5, 6, 7), (6, 2, 3, 3, 3), 1, 1, 1, 2, True),  # 3d grouped
    ((1, 2, 5, 5), (3, 2, 5, 5), 1, 0, 1, 1, True),        # kernel == input
])
def test_conv(xs, ws, stride, pad, dil, groups, bias):
    _conv(rand(rng, xs), rand(rng, ws), rand(rng, ws[0]) if bias else None, stride, pad, dil, groups)


def test_conv_asymmetric_pads_and_per_dim_attrs():
    x, w = rand(rng, (1, 3, 8, 9)), rand(rng, (4, 3, 3, 2))
    out, = run_op("conv", [x, w, None], strides=[2, 1], pads=[0, 1, 2, 1], dilations=[1, 2])
    ref = F.conv2d(F.pad(T(x), (2, 1, 0, 1)), T(w), None, (2, 1), 0, (1, 2)).numpy()
    np.testing.assert_allclose(out, ref, atol=2e-5)


def test_conv_defaults():
    x, w = rand(rng, (1, 3, 6, 6)), rand(rng, (2, 3, 3, 3))
    out, = run_op("conv", [x, w, None])
    np.testing.assert_allclose(out, F.conv2d(T(x), T(w)).numpy(), atol=2e-5)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), cin_g=st.integers(1, 3), cout_g=st.integers(1, 3), groups=st.integers(1, 3),
       k=st.integers(1, 4), stride=st.integers(1, 3), pad=st.integers(0, 2), dil=st.integers(1, 2),
       size=st.integers(6, 11), bias=st.booleans())
def test_conv_fuzz(n, cin_g, cout_g, groups, k, stride, pad, dil, size, bias):
    if size + 2 * pad < dil * (k - 1) + 1:
        return
    x = rand(rng, (2, cin_g * groups) + (size,) * n)
    w = rand(rng, (cout_g * groups, cin_g) + (k,) * n)
    _conv(x, w, rand(rng, cout_g * groups) if bias else None, stride, pad, dil, groups)


def _convt(x, w, b, stride, pad, dil, groups, opad):
    n = x.ndim - 2
    out, = run_op("conv_transpose", [x, w, b], strides=[stride] * n, pads=[pad] * (2 * n),
                  dilations=[dil] * n, groups=groups, output_padding=[opad] * n)
    ref = CONVT[n](T(x), T(w), None if b is None else T(b), stride, pad, opad, groups, dil).numpy()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("xs,ws,stride,pad,dil,groups,opad,bias", [
    ((2, 4, 5, 5), (4, 3, 3, 3), 1, 0, 1, 1, 0, True),
    ((2, 4, 5, 5), (4, 3, 3, 3), 2, 1, 1, 1, 1, True),     # stride 2 + output_padding
    ((2, 4, 5, 6), (4, 3, 4, 4), 2, 1, 1, 1, 0, False),    # the usual x2 upsampler
    ((2, 4, 5, 5), (4, 3, 3, 3), 2, 1, 2, 2, 1, True),     # groups + dilation
    ((1, 4, 5, 5), (4, 1, 3, 3), 2, 0, 1, 4, 1, True),     # depthwise transposed
    ((2, 4, 7), (4, 3, 4), 3, 2, 1, 1, 2, False),          # 1d
    ((1, 4, 3, 4, 5), (4, 2, 2, 3, 3), 2, 0, 1, 2, 0, True),  # 3d
])
def test_conv_transpose(xs, ws, stride, pad, dil, groups, opad, bias):
    b = rand(rng, ws[1] * groups) if bias else None
    _convt(rand(rng, xs), rand(rng, ws), b, stride, pad, dil, groups, opad)


def test_conv_infer_symbolic_and_errors():
    t, = infer_op("conv", [TensorType(DType.float32, ("n", 4, "h", 32)), TensorType(DType.float32, (8, 4, 1, 3)),
                           None], strides=[1, 2], pads=[0, 0, 1, 1])
    assert t.shape[:3] == ("n", 8, "h") and t.shape[3] == 16
    t, = infer_op("conv_transpose", [TensorType(DType.float32, ("n", 4, 8)), TensorType(DType.float32, (4, 2, 3)),
                                     None], strides=[2], pads=[1, 1], output_padding=[1], groups=2)
    assert t.shape == ("n", 4, 16)
    with pytest.raises(ValueError):
        infer_op("conv", [TensorType(DType.float32, (1, 5, 8, 8)), TensorType(DType.float32, (8, 4, 3, 3)), None])
    with pytest.raises(ValueError):
        infer_op("conv", [TensorType(DType.float32, (1, 4, 2, 2)), TensorType(DType.float32, (8, 4, 3, 3)), None])


def test_conv_speed_depthwise_and_stem():
    """The reference must be fast enough for real CNNs (EfficientNet-Lite0 at 224x224)."""
    import time
    x = rand(rng, (1, 32, 112, 112))
    t0 = time.perf_counter()
    run_op("conv", [x, rand(rng, (32, 1, 3, 3)), None], pads=[1, 1, 1, 1], groups=32)
    run_op("conv", [rand(rng, (1, 3, 224, 224)), rand(rng, (32, 3, 3, 3)), None], strides=[2, 2], pads=[0, 1, 0, 1])
    run_op("conv", [x, rand(rng, (16, 32, 1, 1)), None])
    assert time.perf_counter() - t0 < 2.0


def test_float16_computes_in_float32():
    x, w = rand(rng, (1, 4, 8, 8)).astype(np.float16), rand(rng, (6, 2, 3, 3)).astype(np.float16)
    out, = run_op("conv", [x, w, None], pads=[1, 1, 1, 1], groups=2)
    assert out.dtype == np.float16
    ref = F.conv2d(T(x).float(), T(w).float(), padding=1, groups=2).half().numpy()
    np.testing.assert_allclose(out.astype(np.float32), ref.astype(np.float32), atol=1e-2, rtol=1e-3)
    out, = run_op("conv_transpose", [x, rand(rng, (4, 3, 2, 2)).astype(np.float16), None], strides=[2, 2])
    assert out.dtype == np.float16 and out.shape == (1, 3, 16, 16)
