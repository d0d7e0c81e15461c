"""resize against F.interpolate."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nn_op_helpers import infer_op, rand, run_op
from pocketml.ir.types import DType, TensorType

rng = np.random.default_rng(2)
T = torch.from_numpy
MODES = [("nearest", "nearest"), ("nearest-exact", "nearest_exact"), ("bilinear", "linear"), ("bicubic", "cubic")]
KWARGS = [dict(scale_factor=2), dict(scale_factor=2.5), dict(scale_factor=0.6), dict(size=(5, 13)),
          dict(size=(14, 18)), dict(scale_factor=(1.3, 3.7)), dict(size=(7, 9)), dict(size=(1, 1))]


def _attrs(kw, n=2):
    if "size" in kw:
        s = kw["size"]
        return dict(sizes=list(s) if isinstance(s, tuple) else [s] * n)
    sf = kw["scale_factor"]
    return dict(scales=[float(v) for v in sf] if isinstance(sf, tuple) else [float(sf)] * n)


@pytest.mark.parametrize("torch_mode,mode", MODES)
@pytest.mark.parametrize("kw", KWARGS)
@pytest.mark.parametrize("align_corners", [False, True])
def test_resize_2d(torch_mode, mode, kw, align_corners):
    if mode.startswith("nearest") and align_corners:
        return
    x = rand(rng, (2, 3, 7, 9))
    out, = run_op("resize", [x], mode=mode, align_corners=align_corners, **_attrs(kw))
    ref = F.interpolate(T(x), mode=torch_mode, align_corners=None if mode.startswith("nearest") else align_corners,
                        **kw).numpy()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("torch_mode,mode", [("nearest", "nearest"), ("linear", "linear"),
                                             ("nearest-exact", "nearest_exact")])
@pytest.mark.parametrize("kw", [dict(scale_factor=2), dict(scale_factor=2.5), dict(size=5), dict(size=16)])
def test_resize_1d(torch_mode, mode, kw):
    x = rand(rng, (2, 3, 7))
    out, = run_op("resize", [x], mode=mode, **_attrs(kw, 1))
    np.testing.assert_allclose(out, F.interpolate(T(x), mode=torch_mode, **kw).numpy(), atol=1e-5)


@pytest.mark.parametrize("align_corners", [False, True])
def test_resize_3d(align_corners):
    x = rand(rng, (1, 2, 3, 4, 5))
    out, = run_op("resize", [x], mode="linear", scales=[2.0, 1.5, 2.0], align_corners=align_corners)
    ref = F.interpolate(T(x), scale_factor=(2, 1.5, 2), mode="trilinear", align_corners=align_corners).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)
    out, = run_op("resize", [x], mode="nearest", sizes=[5, 7, 3])
    np.testing.assert_array_equal(out, F.interpolate(T(x), size=(5, 7, 3), mode="nearest").numpy())


def test_resize_int_nearest():
    x = rng.integers(0, 100, (1, 1, 4, 5)).astype(np.int64)
    out, = run_op("resize", [x], mode="nearest", scales=[2.0, 3.0])
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, F.interpolate(T(x).float(), scale_factor=(2, 3)).numpy().astype(np.int64))


def test_resize_infer():
    t, = infer_op("resize", [TensorType(DType.float32, ("n", 3, 7, "w"))], scales=[2.0, 2.0])
    assert t.shape[:3] == ("n", 3, 14) and isinstance(t.shape[3], str)
    t, = infer_op("resize", [TensorType(DType.float32, ("n", 3, "h", "w"))], sizes=[5, 6], mode="linear")
    assert t.shape == ("n", 3, 5, 6)
    with pytest.raises(ValueError):
        infer_op("resize", [TensorType(DType.float32, (1, 3, 4, 4))], mode="area", sizes=[2, 2])


def test_float16():
    x = rand(rng, (1, 2, 5, 6)).astype(np.float16)
    out, = run_op("resize", [x], mode="linear", scales=[2.0, 2.0])
    assert out.dtype == np.float16
    ref = F.interpolate(T(x).float(), scale_factor=2, mode="bilinear").numpy()
    np.testing.assert_allclose(out.astype(np.float32), ref, atol=5e-3)
