"""passes/last_position.py: a causal LM's logits for the last position only."""
import numpy as np
import torch

import pocketml as pm
from pocketml.ir.verify import verify
from pocketml.passes.last_position import last_position


class LM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(50, 16)
        self.mix = torch.nn.Linear(16, 16)
        self.head = torch.nn.Linear(16, 50)

    def forward(self, ids):
        h = self.emb(ids)
        h = h + torch.cumsum(self.mix(h), dim=1)  # positions depend on earlier ones
        return self.head(torch.tanh(h))


def lm():
    torch.manual_seed(0)
    return pm.convert(LM().eval(), (torch.zeros(2, 5, dtype=torch.long),), output_names=["logits"],
                      inputs=[pm.TensorType("ids", (2, pm.RangeDim(1, 32, name="seq")), dtype="int64")])


def test_last_position_logits_equal_the_full_ones_last_row():
    m = lm()
    p = last_position(m.program, m.function.name)
    verify(p)
    cut = pm.Model(p, m.metadata)
    ids = {"ids": np.random.default_rng(1).integers(0, 50, (2, 9)).astype(np.int64)}
    full, last = m.predict(ids)["logits"], cut.predict(ids)["logits"]
    assert full.shape == (2, 9, 50) and last.shape == (2, 1, 50)
    np.testing.assert_allclose(last[:, 0], full[:, -1], rtol=1e-5, atol=1e-6)
    assert len(m.program.functions[m.function.name].ops) + 1 == len(p.functions[m.function.name].ops)


def test_not_applicable_gives_none():
    m = lm()
    assert last_position(m.program, m.function.name, output="nope") is None
    assert last_position(m.program, m.function.name, axis=2) is None  # the feature axis
