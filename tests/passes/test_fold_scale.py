"""fold_scale: a linear layer's output times a constant scalar becomes the layer with its weight
and bias scaled (LoRA's `lora_B(lora_A(x)) * scaling`, attention's q * scale), equal to PyTorch's
within a rounding; a non-scalar factor is left a mul."""
import numpy as np
import torch

import pocketml as pm


class Scaled(torch.nn.Module):
    def __init__(self, k):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(16, 8), torch.nn.Linear(16, 8, bias=False)
        self.k = k

    def forward(self, x):
        y = self.b(x)
        return self.a(x) * self.k + self.k * self.b(x) + y, y  # y also an output: not folded


def ops(model):
    return [op.type for op in model.function.ops if op.type != "const"]


def test_scaled_linears_fold_into_their_weights():
    x = torch.randn(4, 16)
    for k in (0.125, 0.3):
        m = pm.convert(Scaled(k).eval(), (x,))
        assert ops(m).count("mul") == 0 and ops(m).count("linear") == 3
        with torch.no_grad():
            want = [t.numpy() for t in Scaled(k).eval()(x)]
        got = m.predict({m.input_names[0]: x.numpy()})
        for w, g in zip(want, got.values()):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


class Vector(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(16, 8)
        self.register_buffer("v", torch.linspace(0.5, 2.0, 8))

    def forward(self, x):
        return self.a(x) * self.v


def test_a_non_scalar_factor_stays_a_mul():
    m = pm.convert(Vector().eval(), (torch.randn(2, 16),))
    assert "mul" in ops(m)
