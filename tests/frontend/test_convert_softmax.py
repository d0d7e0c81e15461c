"""Conversion of softmax / log_softmax end to end."""
import torch
import torch.nn.functional as F
from torch import nn

from helpers import check_module
from nn_op_helpers import Fn, check_decomposed, multi, op_types


def softmax_zoo():
    return multi(nn.Softmax(-1), nn.Softmax(1), nn.LogSoftmax(-1), nn.LogSoftmax(0),
                 Fn(lambda x: F.softmax(x, dim=2, dtype=torch.float32)),
                 Fn(lambda x: torch.log_softmax(x, -2)))


def test_softmax(tmp_path):
    m = check_module(softmax_zoo(), torch.randn(2, 3, 4, 5) * 10, tmp_path)
    ops = op_types(m)
    assert ops.count("softmax") == 3 and ops.count("log_softmax") == 3


def test_decomposed_program():
    m = check_decomposed(softmax_zoo(), torch.randn(2, 3, 4, 5) * 10)
    assert "softmax" in op_types(m) and "log_softmax" in op_types(m)
