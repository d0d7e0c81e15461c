"""_native.conv (src/native/kernels/conv) against the NumPy reference (ir/ops/conv.py): depthwise,
pointwise and unfolded (im2col) convolutions, 1-D and 2-D, over awkward shapes (channels and
widths not multiples of the vector width, 1x1 to 7x7 kernels, strides, dilations, asymmetric
padding, several images), with the clip epilogue, every instruction set the CPU has and the
portable kernels, 1 and 2 threads; bad arguments raise, never crash."""
import numpy as np
import pytest

from pocketml import _native
from pocketml.ir.ops.conv import conv as reference

# (x shape, weight shape, strides, pads, dilations, groups)
CASES = [
    ((1, 3, 17, 15), (8, 3, 3, 3), [2, 2], [0, 1, 0, 1], [1, 1], 1),          # a stem: im2col
    ((2, 8, 9, 11), (8, 1, 5, 5), [1, 1], [2, 2, 2, 2], [1, 1], 8),           # depthwise 5x5
    ((1, 19, 23, 37), (19, 1, 3, 3), [2, 2], [0, 1, 0, 1], [1, 1], 19),       # depthwise stride 2
    ((1, 5, 9, 11), (5, 1, 3, 3), [2, 3], [1, 2, 0, 1], [2, 1], 5),           # strides 2x3, dilated
    ((1, 3, 40, 70), (3, 1, 7, 7), [1, 1], [3, 3, 3, 3], [1, 1], 3),          # 7x7, several row blocks
    ((1, 4, 7, 7), (4, 1, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 4),            # depthwise 1x1
    ((1, 24, 7, 7), (50, 24, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),         # pointwise, 49 pixels
    ((3, 33, 13, 17), (70, 33, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),       # pointwise, 3 images
    ((1, 6, 13, 13), (9, 2, 3, 3), [1, 1], [1, 1, 1, 1], [2, 2], 3),          # grouped, dilated
    ((1, 8, 6, 6), (16, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 8),           # channel multiplier
    ((1, 16, 8, 8), (8, 16, 2, 2), [2, 2], [0, 0, 0, 0], [1, 1], 1),          # patchify
    ((1, 2, 5, 5), (3, 2, 5, 5), [1, 1], [0, 0, 0, 0], [1, 1], 1),            # one output pixel
    ((1, 600, 20), (17, 600, 3), [1], [1, 1], [1], 1),                        # 1-D, K > one panel
    ((2, 7, 31), (9, 7, 5), [2], [2, 1], [2], 1),                             # 1-D strided, dilated
    ((1, 10, 29), (10, 1, 3), [1], [1, 1], [1], 10),                          # 1-D depthwise
    ((1, 4, 40, 1), (6, 4, 7, 1), [1, 1], [3, 3, 0, 0], [1, 1], 1),           # (k, 1) over (H, 1): 1-D
    ((2, 3, 50, 1), (5, 3, 9, 1), [2, 1], [4, 4, 0, 0], [2, 1], 1),           # the same strided, dilated
    ((1, 2, 30, 1), (4, 2, 5, 1), [1, 1], [2, 2, 1, 1], [1, 1], 1),           # padded along W: stays 2-D
    ((1, 3, 201, 4097), (4, 3, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 1),       # unfolded in bands of rows
    ((2, 16, 4, 4), (24, 16, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 1),         # 4 output pixels: patches as rows
    ((1, 8, 3, 5), (16, 4, 3, 3), [1, 1], [0, 0, 0, 0], [1, 1], 2),           # the same, grouped
    ((3, 64, 9), (32, 64, 3), [2], [1, 1], [1], 1),                           # the same, 1-D (Silero's tail)
    ((1, 129, 4), (128, 129, 3), [1], [1, 1], [1], 1),                        # 4 pixels, K not a vector multiple
    ((2, 37, 14, 14), (39, 37, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),       # 196 = 4 x 48 + 4: dot products
    ((1, 21, 50), (7, 21, 3), [1], [1, 1], [1], 1),                           # 50 = 48 + 2, K = 63
    ((1, 200, 301), (24, 200, 3), [2], [1, 1], [1], 1),                       # 1-D stride 2 (Whisper's second)
    ((2, 5, 64), (6, 5, 4), [3], [0, 2], [2], 1),                             # 1-D stride 3, dilated
    ((1, 8, 33), (8, 2, 3), [2], [1, 0], [1], 4),                             # 1-D stride 2, grouped
]


def _data(xs, ws, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws).astype(np.float32),
            rng.standard_normal(ws[0]).astype(np.float32))


def _attrs(st, pads, dil, g):
    return {"strides": st, "pads": pads, "dilations": dil, "groups": g}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_the_reference(simd_level, case, threads):
    xs, ws, st, pads, dil, g = case
    x, w, b = _data(xs, ws)
    for bias, lo, hi in ((b, None, None), (None, 0.0, 6.0), (b, 0.0, None), (b, None, -0.5)):
        want = reference([x, w, bias], _attrs(st, pads, dil, g))
        if lo is not None or hi is not None:
            want = np.clip(want, lo, hi)
        out = np.full(want.shape, np.nan, np.float32)
        _native.conv(x, w, bias, out, st, pads, dil, g, lo, hi, threads)
        scale = float(np.abs(want).max()) or 1.0
        np.testing.assert_allclose(out, want, rtol=0, atol=2e-6 * scale * np.sqrt(np.prod(ws[1:])))


def test_threads_give_the_same_bits():
    x, w, b = _data((1, 32, 30, 30), (48, 32, 1, 1))
    outs = []
    for threads in (1, 2):
        out = np.empty((1, 48, 30, 30), np.float32)
        _native.conv(x, w, b, out, [1, 1], [0, 0, 0, 0], [1, 1], 1, None, None, threads)
        outs.append(out)
    np.testing.assert_array_equal(*outs)


def test_nan_and_infinity_propagate(simd_level):
    x, w, b = _data((1, 4, 6, 6), (4, 1, 3, 3))
    x[0, 1, 2, 2] = np.nan
    x[0, 2, 3, 3] = np.inf
    for groups, wt in ((4, w), (1, np.ones((4, 4, 3, 3), np.float32))):
        want = np.clip(reference([x, wt, b], _attrs([1, 1], [1, 1, 1, 1], [1, 1], groups)), 0, 6)
        out = np.empty_like(want)
        _native.conv(x, wt, b, out, [1, 1], [1, 1, 1, 1], [1, 1], groups, 0.0, 6.0)
        np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
        ok = ~np.isnan(want)
        np.testing.assert_allclose(out[ok], want[ok], atol=1e-5)


def test_bad_arguments_raise():
    x, w, b = _data((1, 4, 6, 6), (8, 4, 3, 3))
    out = np.empty((1, 8, 4, 4), np.float32)
    args = ([1, 1], [0, 0, 0, 0], [1, 1], 1)
    _native.conv(x, w, b, out, *args)
    with pytest.raises(TypeError):
        _native.conv(x.astype(np.float64), w, b, out, *args)
    with pytest.raises(ValueError, match="shape"):
        _native.conv(x, w, b, np.empty((1, 8, 5, 4), np.float32), *args)
    with pytest.raises(ValueError, match="channels"):
        _native.conv(x, w, b, out, [1, 1], [0, 0, 0, 0], [1, 1], 2)
    with pytest.raises(ValueError, match="bias"):
        _native.conv(x, w, b[:3], out, *args)
    with pytest.raises(ValueError, match="larger"):
        _native.conv(np.ascontiguousarray(x[..., :2, :2]), w, b, out, *args)
    with pytest.raises(ValueError):
        _native.conv(x, w, b, out, [0, 1], [0, 0, 0, 0], [1, 1], 1)
    with pytest.raises(ValueError):
        _native.conv(x, w, b, out, [1, 1], [0, 0, -1, 0], [1, 1], 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        _native.conv(x[..., ::2], w, b, out, *args)


# (x shape, C_mid, depthwise kernel, strides, pads): the band path from C_mid x H x W >= 2^18
PAIRS = [
    ((1, 5, 9, 11), 7, (3, 3), [1, 1], [1, 1, 1, 1]),               # small: the two convolutions
    ((2, 16, 72, 72), 64, (3, 3), [2, 2], [0, 1, 0, 1]),            # bands, TF "same" stride 2
    ((1, 8, 64, 70), 72, (5, 5), [1, 1], [2, 2, 2, 2]),             # bands, 5x5 stride 1
    ((1, 3, 50, 90), 61, (3, 5), [2, 1], [1, 1, 0, 3]),             # odd channels, asymmetric
    ((1, 24, 4096), 80, (1, 7), [1], [3, 3]),                       # 1-D
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", PAIRS, ids=str)
def test_pointwise_depthwise_equals_the_two_convolutions(simd_level, case, threads):
    """The fused pair equals the reference and, bit for bit, the two native convolutions."""
    xs, cmid, k, st, pads = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal(xs).astype(np.float32)
    spatial = len(xs) - 2
    w1 = (rng.standard_normal((cmid, xs[1]) + (1,) * spatial) * 0.5).astype(np.float32)
    w2 = rng.standard_normal((cmid, 1) + k[-spatial:]).astype(np.float32)
    b1, b2 = rng.standard_normal(cmid).astype(np.float32), rng.standard_normal(cmid).astype(np.float32)
    one, zero = [1] * spatial, [0] * (2 * spatial)
    mid = np.clip(reference([x, w1, b1], _attrs(one, zero, one, 1)), 0, 6)
    want = np.clip(reference([mid, w2, b2], _attrs(st, pads, one, cmid)), None, 4.0)
    out = np.full(want.shape, np.nan, np.float32)
    _native.pointwise_depthwise(x, w1, b1, w2, b2, out, st, pads, one, 0.0, 6.0, None, 4.0, threads)
    np.testing.assert_allclose(out, want, rtol=0, atol=2e-5 * float(np.abs(want).max()))
    m = np.empty(mid.shape, np.float32)
    _native.conv(x, w1, b1, m, one, zero, one, 1, 0.0, 6.0, threads)
    sep = np.empty_like(out)
    _native.conv(m, w2, b2, sep, st, pads, one, cmid, None, 4.0, threads)
    np.testing.assert_array_equal(out, sep)


def test_pointwise_depthwise_refuses_other_pairs():
    x = np.ones((1, 4, 8, 8), np.float32)
    w1, w2 = np.ones((6, 4, 1, 1), np.float32), np.ones((6, 1, 3, 3), np.float32)
    out = np.empty((1, 6, 6, 6), np.float32)
    _native.pointwise_depthwise(x, w1, None, w2, None, out, [1, 1], [0, 0, 0, 0], [1, 1])
    with pytest.raises(ValueError, match="1x1"):
        _native.pointwise_depthwise(x, np.ones((6, 4, 3, 3), np.float32), None, w2, None, out, [1, 1],
                                    [1, 1, 1, 1], [1, 1])
    with pytest.raises(ValueError):  # w2 over 5 channels, not the 6 of w1's output
        _native.pointwise_depthwise(x, w1, None, np.ones((5, 1, 3, 3), np.float32), None, out, [1, 1],
                                    [0, 0, 0, 0], [1, 1])
    with pytest.raises(ValueError, match="bias"):
        _native.pointwise_depthwise(x, w1, np.ones(5, np.float32), w2, None, out, [1, 1], [0, 0, 0, 0], [1, 1])
