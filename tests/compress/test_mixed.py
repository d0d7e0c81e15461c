"""Mixed precision to a size budget (pocketml.compress.mixed)."""
import numpy as np
import pytest
import torch

import pocketml as pm
from pocketml.compress.mixed import parse_size

pytestmark = pytest.mark.filterwarnings("ignore::pocketml.errors.CompressionWarning")


class Tower(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(64, 128)
        self.b = torch.nn.Linear(128, 128)
        self.c = torch.nn.Linear(128, 64)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


@pytest.fixture(scope="module")
def tower():
    return pm.convert(Tower().eval(), (torch.randn(8, 64),))


def weight_bytes(model):
    return sum(a.nbytes for a in model.program.weights.values())


def test_parse_size():
    assert parse_size("60MB") == 60_000_000 and parse_size("1.5 MiB") == 1.5 * 2**20 and parse_size(4096) == 4096
    with pytest.raises(pm.ConfigError, match="target_size"):
        parse_size("sixty")


def test_mixed_precision_meets_the_size_with_least_loss(tower):
    rng = np.random.default_rng(0)
    cal = [{"x": rng.standard_normal((8, 64)).astype(np.float32)} for _ in range(4)]
    cands = [pm.Quantize("int8"), pm.Quantize("int4", granularity="per_block", block_size=32)]
    hi = weight_bytes(pm.compress(tower, pm.OptimizationConfig(op_type_configs={"linear": cands[0]})))
    lo = weight_bytes(pm.compress(tower, pm.OptimizationConfig(op_type_configs={"linear": cands[1]})))
    target = lo + (hi - lo) // 3
    m = pm.compress(tower, target_size=target, candidates=cands, calibration=cal, progress=False)
    assert weight_bytes(m) <= target
    recipe = m.metadata["compression_recipe"]
    sizes = [s for s, _ in recipe["curve"]]
    losses = [l for _, l in recipe["curve"]]
    assert sizes == sorted(sizes, reverse=True) and losses == sorted(losses) and sizes[-1] <= target
    modes = {k: v[0]["quantize"]["dtype"] for k, v in recipe["config"]["op_name_configs"].items()}
    assert sorted(modes.values()) == ["int4", "int8", "int8"] or sorted(modes.values()) == ["int4", "int4", "int8"]
    again = pm.compress(tower, recipe["config"])  # the recipe is a reusable config
    assert {r["weight"]: r["bits_per_weight"] for r in pm.compression_report(again)} == \
        {r["weight"]: r["bits_per_weight"] for r in pm.compression_report(m)}
    with pytest.raises(pm.ConfigError, match="below what the candidates reach"):
        pm.compress(tower, target_size=lo // 2, candidates=cands)
    with pytest.raises(pm.ConfigError, match="not both"):
        pm.compress(tower, pm.Quantize("int8"), target_size="1MB")
    with pytest.raises(pm.ConfigError, match="target_size= for mixed"):
        pm.compress(tower)
    # without calibration data the weights' own errors decide; the default candidates
    m = pm.compress(tower, target_size=hi, progress=False)
    assert weight_bytes(m) <= hi
