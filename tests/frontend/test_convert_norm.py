"""Conversion of normalization layers end to end."""
import torch
import torch.nn.functional as F
from torch import nn

from helpers import check_module
from nn_op_helpers import Fn, check_decomposed, multi, op_types

torch.manual_seed(0)


def _randomize_stats(m):
    """Give batch-norm layers non-trivial running statistics and affine parameters."""
    for mod in m.modules():
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d)):
            if mod.running_mean is not None:
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2)
            if mod.weight is not None:
                with torch.no_grad():
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.uniform_(-1, 1)
        elif isinstance(mod, (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)) and getattr(mod, "weight", None) is not None:
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5)
                if getattr(mod, "bias", None) is not None:
                    mod.bias.uniform_(-1, 1)
    return m


def norm4d_zoo():
    return _randomize_stats(multi(
        nn.BatchNorm2d(6),
        nn.BatchNorm2d(6, affine=False, eps=1e-3),
        nn.GroupNorm(3, 6),
        nn.GroupNorm(2, 6, affine=False),
        nn.InstanceNorm2d(6),
        nn.InstanceNorm2d(6, affine=True),
        nn.InstanceNorm2d(6, track_running_stats=True),
        nn.LayerNorm(7),
        nn.LayerNorm((5, 7), elementwise_affine=False),
        nn.LayerNorm(7, bias=False),
        nn.RMSNorm(7),
        nn.RMSNorm((5, 7), eps=1e-5, elementwise_affine=False),
    ))


def test_norms_4d(tmp_path):
    x = torch.randn(2, 6, 5, 7) * 3 + 2
    m = check_module(norm4d_zoo(), x, tmp_path)
    ops = op_types(m)
    # inference batch norms (running statistics) become a mul and an add (passes/fold_conv.py)
    assert ops.count("batch_norm") == 0 and ops.count("mul") == 3 and ops.count("group_norm") == 4
    assert ops.count("layer_norm") == 3 and ops.count("rms_norm") == 2


def test_norms_3d_and_functional(tmp_path):
    x = torch.randn(4, 6, 9) * 2 - 1
    check_module(_randomize_stats(multi(nn.BatchNorm1d(6), nn.GroupNorm(3, 6), nn.LayerNorm(9),
                                        Fn(lambda t: F.layer_norm(t, (6, 9), eps=1e-6)),
                                        Fn(lambda t: F.rms_norm(t, (9,))),
                                        Fn(lambda t: F.group_norm(t, 2, eps=1e-3)))),
                 x, tmp_path)
    check_module(_randomize_stats(nn.BatchNorm1d(6)), torch.randn(5, 6), tmp_path)


def test_decomposed_program():
    m = check_decomposed(norm4d_zoo(), torch.randn(2, 6, 5, 7) * 3 + 2)
    ops = op_types(m)
    assert "batch_norm" in ops and "group_norm" in ops and "layer_norm" in ops
