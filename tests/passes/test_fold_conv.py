"""fold_conv: batch norms after convolutions become their weights, zero pads their padding; the
folded program equals torch and the unfolded one; anything else is left alone."""
import numpy as np
import torch
import torch.nn.functional as F

from helpers import check_module, op_types
from pocketml.model import Model
from pocketml.passes import eliminate_dead_code, fold_constants, run_passes

torch.manual_seed(0)


def _bn(c):
    bn = torch.nn.BatchNorm2d(c)
    with torch.no_grad():  # running statistics and an affine map far from the identity
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 3)
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-1, 1)
    return bn


class ConvBnPad(torch.nn.Module):
    """TF-style "same" padding before a strided conv, a bias-free depthwise conv, a conv with a
    bias: each followed by a batch norm and ReLU6."""

    def __init__(self):
        super().__init__()
        self.stem, self.bn0 = torch.nn.Conv2d(3, 8, 3, stride=2, bias=False), _bn(8)
        self.dw, self.bn1 = torch.nn.Conv2d(8, 8, 5, padding=1, groups=8, bias=False), _bn(8)
        self.pw, self.bn2 = torch.nn.Conv2d(8, 6, 1), _bn(6)

    def forward(self, x):
        x = F.relu6(self.bn0(self.stem(F.pad(x, (0, 1, 0, 1)))))
        x = F.relu6(self.bn1(self.dw(F.pad(x, (1, 1, 1, 1)))))
        return self.bn2(self.pw(x))


def test_batch_norm_and_pad_fold_into_conv(tmp_path):
    x = torch.randn(2, 3, 17, 15)
    model = check_module(ConvBnPad(), x, tmp_path, atol=2e-5, rtol=1e-4)
    types = op_types(model)
    assert "batch_norm" not in types and "pad" not in types and types.count("conv") == 3
    convs = [op for op in model.program.main.ops if op.type == "conv"]
    assert [op.attrs["pads"] for op in convs] == [[0, 1, 0, 1], [2, 2, 2, 2], [0, 0, 0, 0]]
    assert all(op.inputs[2] is not None for op in convs)  # each got the batch norm's shift as bias


def test_unfoldable_left_alone(tmp_path):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(4, 4, 3), _bn(4)

        def forward(self, x):
            y = self.conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))  # not a zero pad
            z = self.conv(F.pad(x, (1, 1, 1, 1), value=1.0))  # a non-zero constant
            return self.bn(y), y, z  # y also read elsewhere: its batch norm stays apart (a mul, an add)

    model = check_module(M(), torch.randn(1, 4, 6, 6), tmp_path)
    types = op_types(model)
    assert types.count("mul") == 1 and types.count("add") == 1 and types.count("pad") == 2


def test_shared_weight_kept(tmp_path):
    """Two convs share one weight, each with its own batch norm: each gets its own folded copy."""
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn1, self.bn2 = torch.nn.Conv2d(3, 5, 3), _bn(5), _bn(5)

        def forward(self, x, y):
            return self.bn1(self.conv(x)), self.bn2(self.conv(y))

    model = check_module(M(), (torch.randn(1, 3, 8, 8), torch.randn(1, 3, 9, 7)), tmp_path, atol=2e-5)
    assert "batch_norm" not in op_types(model)


def test_folded_equals_unfolded():
    from pocketml.frontend.torch import export, to_program
    from pocketml.passes.fold_conv import fold_conv

    x = torch.randn(1, 3, 20, 20)
    program = to_program(export(ConvBnPad().eval(), (x,)))
    base = run_passes(program, (eliminate_dead_code, fold_constants))  # in place: predict before folding
    assert "batch_norm" in [op.type for op in base.main.ops]
    want = Model(base).predict({"x": x.numpy()})
    folded = run_passes(program, (eliminate_dead_code, fold_constants, fold_conv, eliminate_dead_code))
    assert not {"batch_norm", "pad"} & {op.type for op in folded.main.ops}
    got = Model(folded).predict({"x": x.numpy()})
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5)


def test_batch_norm_after_an_activation_becomes_mul_and_add_bit_for_bit():
    """CREPE's conv -> ReLU -> batch norm: the norm cannot fold into the conv; it becomes a mul
    and an add by per-channel constants, the reference's own arithmetic."""
    from pocketml.frontend.torch import export, to_program
    from pocketml.passes.fold_conv import fold_conv

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(3, 6, 3), _bn(6)

        def forward(self, x):
            return self.bn(F.relu(self.conv(x)))

    x = torch.randn(2, 3, 9, 8)
    program = to_program(export(M().eval(), (x,)))
    base = run_passes(program, (eliminate_dead_code, fold_constants))
    want = Model(base).predict({"x": x.numpy()})
    lowered = run_passes(program, (eliminate_dead_code, fold_constants, fold_conv, eliminate_dead_code))
    types = [op.type for op in lowered.main.ops if op.type != "const"]
    assert "batch_norm" not in types and types.count("mul") == 1 and types.count("add") == 1, types
    got = Model(lowered).predict({"x": x.numpy()})
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
