"""Conversion of convolutions end to end (torch module -> package -> NumPy runtime)."""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import pocketml as pm
from helpers import check_module
from nn_op_helpers import Fn, check_decomposed, multi, op_types

torch.manual_seed(0)


def conv2d_zoo():
    return multi(
        nn.Conv2d(4, 6, 3, padding=1),
        nn.Conv2d(4, 6, 3, stride=2, bias=False),                          # stride, no bias
        nn.Conv2d(4, 6, 4, padding="same", dilation=2),                    # 'same', even kernel (asym. pads)
        nn.Conv2d(4, 6, (3, 2), padding="valid"),
        nn.Conv2d(4, 6, 3, padding=(2, 1), dilation=(2, 1), groups=2),     # groups, per-dim dilation
        nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4),                 # depthwise
        nn.Conv2d(4, 8, 5, padding=2, groups=4, bias=False),               # depthwise, multiplier 2
        nn.Conv2d(4, 3, 1),                                                # pointwise
        nn.Conv2d(4, 5, (1, 3), stride=(2, 1), padding=(0, 1)),
    )


def conv_transpose2d_zoo():
    return multi(
        nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1),
        nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, bias=False),
        nn.ConvTranspose2d(4, 2, 3, stride=(2, 1), dilation=2),
        nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1),
        nn.ConvTranspose2d(4, 4, 3, stride=2, groups=4),                   # depthwise transposed
    )


def test_conv2d(tmp_path):
    m = check_module(conv2d_zoo(), torch.randn(2, 4, 9, 9), tmp_path, atol=2e-5)
    assert op_types(m).count("conv") == 9


def test_conv_transpose2d(tmp_path):
    m = check_module(conv_transpose2d_zoo(), torch.randn(1, 4, 5, 6), tmp_path, atol=2e-5)
    assert op_types(m).count("conv_transpose") == 5


def test_conv1d_and_3d(tmp_path):
    check_module(multi(nn.Conv1d(4, 6, 3, stride=2, padding=1),
                       nn.Conv1d(4, 6, 5, padding="same", dilation=3, groups=2),
                       nn.ConvTranspose1d(4, 2, 3, stride=2, output_padding=1)),
                 torch.randn(2, 4, 11), tmp_path, atol=2e-5)
    check_module(multi(nn.Conv3d(2, 4, 3, padding=(1, 0, 1), stride=(1, 2, 1)),
                       nn.ConvTranspose3d(2, 4, 3, stride=2, padding=1)),
                 torch.randn(1, 2, 5, 6, 5), tmp_path, atol=2e-5)


def test_decomposed_programs():
    """Programs already decomposed to aten.convolution lower too."""
    m = check_decomposed(conv2d_zoo(), torch.randn(1, 4, 9, 9), atol=2e-5)
    assert op_types(m).count("conv") == 9
    m = check_decomposed(conv_transpose2d_zoo(), torch.randn(1, 4, 5, 6), atol=2e-5)
    assert op_types(m).count("conv_transpose") == 5


def test_functional_conv_with_runtime_weights(tmp_path):
    """Weights can be model inputs rather than parameters."""
    def f(x, w, y, wt):
        return (F.conv2d(x, w, stride=2, padding=1, groups=2),
                F.conv_transpose1d(y, wt, stride=3, padding=1, output_padding=2))
    check_module(Fn(f), (torch.randn(1, 4, 8, 8), torch.randn(6, 2, 3, 3), torch.randn(1, 4, 8),
                         torch.randn(4, 3, 4)), tmp_path, atol=2e-5)


def test_unbatched_conv(tmp_path):
    check_module(nn.Conv1d(4, 6, 3, padding=1), torch.randn(4, 10), tmp_path, atol=2e-5)


def test_dynamic_batch_and_size():
    """An ExportedProgram with symbolic batch and spatial dims converts once and runs at other sizes."""
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1).eval()
    dims = {0: torch.export.Dim("b"), 2: torch.export.Dim("h", min=4, max=64),
            3: torch.export.Dim("w", min=4, max=64)}
    ep = torch.export.export(conv, (torch.randn(2, 3, 16, 16),), dynamic_shapes=(dims,))
    m = pm.convert(ep)
    for shape in [(1, 3, 9, 13), (3, 3, 20, 8)]:
        x = torch.randn(shape)
        got = m.predict({m.input_names[0]: x.numpy()})[m.output_names[0]]
        np.testing.assert_allclose(got, conv(x).detach().numpy(), atol=2e-5)
