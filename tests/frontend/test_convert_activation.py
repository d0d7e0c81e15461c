"""End-to-end conversion of activation functions (modules and functional forms)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import check_module

import pocketml as pm

g = torch.Generator().manual_seed(1)


def randn(*shape, dtype=torch.float32):
    return (torch.randn(*shape, generator=g) * 4).to(dtype)


class Acts(nn.Module):
    """Every activation module and functional form, one output each."""

    def __init__(self):
        super().__init__()
        self.mods = nn.ModuleList([
            nn.ReLU(), nn.ReLU6(), nn.Hardtanh(-2, 3), nn.LeakyReLU(0.2), nn.ELU(0.7), nn.SELU(), nn.CELU(0.6),
            nn.GELU(), nn.GELU(approximate="tanh"), nn.SiLU(), nn.Sigmoid(), nn.Hardsigmoid(), nn.Hardswish(),
            nn.Softplus(), nn.Softplus(2.0, 5.0), nn.Mish(), nn.LogSigmoid(), nn.Tanh(), nn.Softsign(),
            nn.Tanhshrink(), nn.Threshold(0.1, 20.0), nn.PReLU(), nn.PReLU(3), nn.Hardshrink(), nn.Softshrink(),
        ])
        with torch.no_grad():
            self.mods[-3].weight.copy_(torch.tensor([0.1, 0.2, 0.3]))

    def forward(self, x, i):
        outs = [m(x) for m in self.mods]
        outs += [torch.sigmoid(i), F.relu(i), F.silu(x.half()), F.gelu(x.half()), torch.relu_(x.clone())]
        return tuple(outs)


def test_all_activations(tmp_path):
    x = randn(2, 3, 8)
    x[0, 0, :4] = torch.tensor([0.0, 25.0, -25.0, 3.0])
    i = torch.randint(-5, 5, (2, 3), generator=g)
    check_module(Acts(), (x, i), tmp_path, atol=1e-5, rtol=1e-5)


class PReLU4d(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.PReLU(4), nn.PReLU(1)
        with torch.no_grad():
            self.a.weight.uniform_(-0.5, 0.5)

    def forward(self, x, v):
        return self.a(x), self.b(x), self.b(v)


def test_prelu_shapes(tmp_path):
    check_module(PReLU4d(), (randn(2, 4, 3, 5), randn(7)), tmp_path)


def test_activations_stay_whole():
    seq = nn.Sequential(nn.GELU(), nn.SiLU(), nn.Hardswish(), nn.Mish(), nn.PReLU(), nn.ReLU6(), nn.Hardsigmoid(),
                        nn.Softplus(), nn.LogSigmoid(), nn.SELU())
    m = pm.convert(seq, (randn(2, 5),))
    assert [o.type for o in m.program.main.ops if o.type != "const"] == [
        "gelu", "silu", "hardswish", "mish", "prelu", "clip", "hardsigmoid", "softplus", "log_sigmoid", "elu"]
