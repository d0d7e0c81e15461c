"""Conversion of pooling layers end to end."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pocketml as pm
from helpers import check_module
from nn_op_helpers import Fn, check_decomposed, multi, op_types

torch.manual_seed(0)


def pool2d_zoo():
    return multi(
        nn.MaxPool2d(3, 2, 1),
        nn.MaxPool2d(3, 2, 1, ceil_mode=True),
        nn.MaxPool2d(2),
        nn.MaxPool2d((3, 2), stride=(1, 2), padding=(1, 0), dilation=(2, 1), ceil_mode=True),
        nn.AvgPool2d(3, 2, 1),
        nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        nn.AvgPool2d(2, ceil_mode=True),
        nn.AvgPool2d(3, 2, 1, divisor_override=4),
        nn.AdaptiveAvgPool2d(1),
        nn.AdaptiveAvgPool2d((3, 4)),
        nn.AdaptiveAvgPool2d((None, 2)),
        nn.AdaptiveMaxPool2d((4, 3)),
        nn.AdaptiveMaxPool2d(1),
    )


def test_pool2d(tmp_path):
    m = check_module(pool2d_zoo(), torch.randn(2, 3, 9, 10), tmp_path)
    ops = op_types(m)
    assert ops.count("max_pool") == 4 and ops.count("avg_pool") == 4
    assert ops.count("adaptive_avg_pool") == 3 and ops.count("adaptive_max_pool") == 2


def test_pool1d_3d_and_unbatched(tmp_path):
    check_module(multi(nn.MaxPool1d(3, 2, 1, ceil_mode=True), nn.AvgPool1d(3, 2, 1, count_include_pad=False),
                       nn.AdaptiveAvgPool1d(4), nn.AdaptiveMaxPool1d(3), nn.AdaptiveAvgPool1d(1)),
                 torch.randn(2, 3, 11), tmp_path)
    check_module(multi(nn.MaxPool3d(2, ceil_mode=True), nn.AvgPool3d(3, 2, 1), nn.AdaptiveAvgPool3d((1, 2, 3))),
                 torch.randn(1, 2, 5, 6, 7), tmp_path)
    check_module(multi(nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(2)), torch.randn(3, 8, 9), tmp_path)


def test_decomposed_program():
    m = check_decomposed(pool2d_zoo(), torch.randn(1, 3, 9, 10))
    assert "max_pool" in op_types(m) and "avg_pool" in op_types(m)


def test_max_pool_indices_unsupported():
    with pytest.raises(pm.ConversionError, match="indices"):
        pm.convert(nn.MaxPool2d(2, return_indices=True), (torch.randn(1, 2, 4, 4),))


def test_max_pool_with_indices_unused(tmp_path):
    check_module(Fn(lambda x: F.max_pool2d(x, 2, return_indices=True)[0] + x[..., ::2, ::2]),
                 torch.randn(1, 2, 6, 6), tmp_path)
