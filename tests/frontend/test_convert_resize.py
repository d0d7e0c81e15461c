"""Conversion of F.interpolate / nn.Upsample end to end."""
import torch
import torch.nn.functional as F
from torch import nn

from helpers import check_module
from nn_op_helpers import Fn, check_decomposed, op_types


def interp(**kw):
    return Fn(lambda x: F.interpolate(x, **kw))


def resize2d_zoo():
    from nn_op_helpers import multi
    return multi(
        nn.Upsample(scale_factor=2),
        nn.Upsample(scale_factor=2, mode="bilinear"),
        nn.Upsample(size=(5, 13), mode="bilinear", align_corners=True),
        interp(scale_factor=2.5, mode="nearest"),
        interp(scale_factor=(1.5, 0.5), mode="bilinear"),
        interp(size=(11, 7), mode="nearest-exact"),
        interp(scale_factor=1.7, mode="bilinear", recompute_scale_factor=True),
        interp(size=(9, 14), mode="bicubic"),
        interp(scale_factor=2, mode="bicubic", align_corners=True),
        interp(size=(3, 4), mode="bilinear"),                        # downsampling
    )


def test_resize2d(tmp_path):
    m = check_module(resize2d_zoo(), torch.randn(2, 3, 6, 7), tmp_path)
    assert op_types(m).count("resize") == 10


def test_resize1d_3d(tmp_path):
    from nn_op_helpers import multi
    check_module(multi(interp(scale_factor=2, mode="nearest"), interp(size=11, mode="linear"),
                       interp(scale_factor=2.5, mode="linear", align_corners=True),
                       interp(size=4, mode="nearest-exact")), torch.randn(2, 3, 7), tmp_path)
    check_module(multi(interp(scale_factor=2, mode="nearest"), interp(size=(4, 5, 6), mode="trilinear"),
                       interp(scale_factor=(1, 2, 1.5), mode="trilinear", align_corners=True)),
                 torch.randn(1, 2, 3, 4, 5), tmp_path)


def test_decomposed_program():
    from nn_op_helpers import multi
    check_decomposed(multi(nn.Upsample(scale_factor=2), nn.Upsample(size=(5, 13), mode="bilinear", align_corners=True),
                           interp(size=(4, 9), mode="bicubic"), interp(size=(11, 7), mode="nearest-exact")),
                     torch.randn(1, 3, 6, 7))


class UpPool(torch.nn.Module):
    def forward(self, x):
        up = F.interpolate(x, scale_factor=2, mode="bilinear")
        return F.max_pool2d(up, 3, 2, 1, ceil_mode=True), F.interpolate(x, scale_factor=1.5, mode="nearest")


def test_dynamic_spatial_dims():
    """Scale-factor resizing and pooling of symbolic spatial dims convert once, run at any size."""
    import numpy as np
    import pocketml as pm
    dims = {2: torch.export.Dim("h", min=2, max=64), 3: torch.export.Dim("w", min=2, max=64)}
    module = UpPool().eval()
    m = pm.convert(torch.export.export(module, (torch.randn(1, 2, 8, 8),), dynamic_shapes=(dims,)))
    for shape in [(1, 2, 5, 7), (1, 2, 12, 3)]:
        x = torch.randn(shape)
        got = m.predict({m.input_names[0]: x.numpy()})
        for name, want in zip(m.output_names, module(x)):
            np.testing.assert_allclose(got[name], want.numpy(), atol=1e-5)
