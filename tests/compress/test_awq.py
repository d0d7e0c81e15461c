"""Activation-aware scaling (Quantize(awq=True), compress/awq.py): where a block of inputs shares
one scale and a few of its columns carry large activations but small weights (which the block's
grid rounds away), the layers reading the input store W * s and read x / s, which lowers their
output error at 4 bits; one scaling op per input, shared by its layers; none where scaling does
not help; it needs calibration data and excludes W8A8."""
import numpy as np
import pytest
import torch

import pocketml as pm
from pocketml.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore::pocketml.errors.CompressionWarning")


SALIENT = np.arange(0, 96, 8)  # inputs with 30x the activations and a tenth of the weights


class TwoHeads(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(96, 64), torch.nn.Linear(96, 48)
        with torch.no_grad():
            self.a.weight[:, SALIENT] /= 10
            self.b.weight[:, SALIENT] /= 10

    def forward(self, x):
        return self.a(x) + self.b(x)[..., :1]


def batch(rng, n=4, salient=30.0):
    x = rng.standard_normal((n, 96)).astype(np.float32)
    x[:, SALIENT] *= salient
    return {"x": x}


@pytest.fixture(scope="module")
def model():
    return pm.convert(TwoHeads().eval(), (torch.randn(4, 96),))


def test_awq_lowers_the_output_error_with_one_scaling_per_input(model):
    rng = np.random.default_rng(0)
    cal, held = [batch(rng) for _ in range(32)], [batch(rng) for _ in range(32)]
    out = lambda m: np.concatenate([m.predict(h)[m.output_names[0]] for h in held])  # noqa: E731
    want = out(model)
    errors = {}
    for awq in (False, True):
        m = pm.compress(model, pm.Quantize("int4", granularity="per_block", block_size=32, awq=awq),
                        calibration=cal, progress=False)
        errors[awq] = np.linalg.norm(out(m) - want) / np.linalg.norm(want)
        muls = [op for op in m.function.ops if op.type == "mul"]
        assert len(muls) == (1 if awq else 0)  # both layers read the one scaled input
        assert all(m.metadata["compression"][k].get("awq", False) == awq for k in ("a.weight", "b.weight"))
    assert errors[True] < 0.8 * errors[False], errors


def test_no_scaling_where_it_does_not_help(model):
    rng = np.random.default_rng(0)
    cal = [batch(rng, salient=1.0) for _ in range(32)]  # every input alike: nothing to protect
    m = pm.compress(model, pm.Quantize("int4", granularity="per_block", awq=True), calibration=cal, progress=False)
    assert not any(op.type == "mul" for op in m.function.ops)


def test_awq_needs_calibration_and_excludes_w8a8(model):
    with pytest.raises(ConfigError, match="calibration"):
        pm.compress(model, pm.Quantize("int4", granularity="per_block", awq=True))
    with pytest.raises(ConfigError, match="awq"):
        pm.Quantize("int8", activations="int8", awq=True)
    with pytest.raises(ConfigError, match="awq"):
        pm.Quantize("int4", awq="yes")
    assert pm.OptimizationConfig.from_dict(pm.OptimizationConfig(pm.Quantize("int4", awq=True)).to_dict()) \
        .global_config[0].awq
