"""pm.compress end to end: every mode round-trips through a package and runs like its dense form."""
import numpy as np
import pytest
import torch

import pocketml as pm
from pocketml.compress.apply import COMPRESSED_OPS

torch.manual_seed(0)
# 4-bit and pruning modes warn that they are lossy; tests of that warning catch it themselves
pytestmark = pytest.mark.filterwarnings("ignore::pocketml.errors.CompressionWarning")


class Net(torch.nn.Module):
    """Every compressible op type, with weights above the default 2048-element floor."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(64, 64)
        self.conv = torch.nn.Conv1d(64, 64, 3, padding=1)
        self.fc = torch.nn.Linear(64, 128)
        self.small = torch.nn.Linear(128, 8)  # 1024 elements: skipped by default
        self.proj = torch.nn.Parameter(torch.randn(128, 64) / 8)

    def forward(self, ids):
        h = self.emb(ids)                                   # (1, T, 64)
        h = self.conv(h.transpose(1, 2)).transpose(1, 2)    # (1, T, 64)
        h = torch.relu(self.fc(h))                          # (1, T, 128)
        return self.small(h), h @ self.proj


@pytest.fixture(scope="module")
def dense():
    return pm.convert(Net().eval(), (torch.randint(0, 64, (1, 12)),))


IDS = {"ids": np.random.default_rng(0).integers(0, 64, (1, 12))}

CONFIGS = {
    "int8 per_channel": pm.Quantize("int8"),
    "uint8 affine per_tensor": pm.Quantize("uint8", symmetric=False, granularity="per_tensor"),
    "int4 per_block 32": pm.Quantize("int4", granularity="per_block", block_size=32),
    "uint4 affine per_block 16": pm.Quantize("uint4", symmetric=False, granularity="per_block", block_size=16),
    "palettize 4 per_tensor": pm.Palettize(4),
    "palettize 6 g16": pm.Palettize(6, granularity="per_grouped_channel", group_size=16),
    "palettize 2 uniform": pm.Palettize(2, mode="uniform"),
    "palettize 3 vector": pm.Palettize(3, cluster_dim=2),
    "palettize 4 channel scale": pm.Palettize(4, per_channel_scale=True, lut_dtype="float32"),
    "prune 50%": pm.Prune(0.5),
    "prune 2:4": pm.Prune(n_m=(2, 4)),
    "prune block": pm.Prune(0.5, block_size=4),
    "prune + palettize": [pm.Prune(0.5), pm.Palettize(4)],
    "prune + quantize": [pm.Prune(n_m=(2, 4)), pm.Quantize("int8", granularity="per_tensor")],
    "palettize + int8 LUT": [pm.Palettize(4, granularity="per_grouped_channel", group_size=16),
                             pm.Quantize("int8", granularity="per_tensor")],
    "float16": pm.Quantize("float16"),
    "prune + float16": [pm.Prune(0.5), pm.Quantize("float16")],
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_mode_round_trips_and_runs_like_its_dense_form(dense, tmp_path, name):
    before = {k: np.array(v) for k, v in dense.program.weights.items()}
    m = pm.compress(dense, CONFIGS[name])
    assert {k: np.array(v) for k, v in dense.program.weights.items()}.keys() == before.keys()
    assert all(np.array_equal(before[k], dense.program.weights[k]) for k in before)  # input untouched
    types = [op.type for _, op in m.program.ops()]
    # emb, conv, fc, proj (not "small"); float16 weights are read through a cast
    assert sum(t in COMPRESSED_OPS + ("cast",) for t in types) >= 4
    m.save(tmp_path / "c.pocket")
    loaded = pm.load(tmp_path / "c.pocket", exact=True)  # fp32 activations: equal within fp32
    got = loaded.predict(IDS)
    want = pm.decompress(loaded).predict(IDS)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5 * np.abs(want[k]).max())
    rows = {r["weight"]: r for r in pm.compression_report(loaded)}
    assert rows["small.weight"]["mode"] == "dense" and rows["small.weight"]["bits_per_weight"] == 32
    for key in ("emb.weight", "conv.weight", "fc.weight", "proj"):
        assert rows[key]["mode"] != "dense"
        assert 0 <= rows[key]["rel_error"] < 0.9
        assert rows[key]["bits_per_weight"] < 32


def test_bits_per_weight_count_every_overhead(dense):
    rows = {r["weight"]: r for r in pm.compression_report(pm.compress(dense, pm.Quantize("int8")))}
    # fc.weight (128, 64): 8192 int8 + 128 float32 scales
    assert rows["fc.weight"]["bytes"] == 8192 + 128 * 4
    assert rows["fc.weight"]["bits_per_weight"] == pytest.approx(8 + 128 * 32 / 8192)
    rows = {r["weight"]: r for r in pm.compression_report(pm.compress(dense, pm.Palettize(4)))}
    # 4-bit indices packed two per byte + a 16-entry fp16 LUT
    assert rows["fc.weight"]["bytes"] == 8192 // 2 + 16 * 2
    rows = {r["weight"]: r for r in pm.compression_report(pm.compress(dense, pm.Prune(0.5)))}
    # a 1-bit mask + the kept float32 values
    assert rows["fc.weight"]["bytes"] == 8192 // 8 + 4096 * 4


def test_float16_halves_the_weights_and_refuses_values_it_cannot_hold(dense):
    rows = {r["weight"]: r for r in pm.compression_report(pm.compress(dense, pm.Quantize("float16")))}
    assert rows["fc.weight"]["bytes"] == 8192 * 2 and rows["fc.weight"]["bits_per_weight"] == 16
    assert rows["fc.weight"]["rel_error"] < 1e-3
    big = pm.convert(torch.nn.Linear(64, 64).eval(), (torch.randn(2, 64),))
    w = next(k for k in big.program.weights if k.endswith("weight"))
    big.program.weights[w] = np.full((64, 64), 1e5, np.float32)
    with pytest.raises(pm.ConfigError, match=r"weight: a value of magnitude 100000 does not fit float16"):
        pm.compress(big, pm.OptimizationConfig(global_config=pm.Quantize("float16"), min_weight_size=0))


def test_each_dense_weight_exists_only_around_its_use(dense):
    m = pm.compress(dense, pm.Palettize(4))
    ops = m.function.ops
    for i, op in enumerate(ops):
        if op.type in COMPRESSED_OPS:
            users = [j for j, o in enumerate(ops) if op.output.name in o.inputs]
            assert users and all(i < j <= i + 3 for j in users), (op.output.name, i, users)
    steps = m._executor.steps
    dense_slots = {s for st in steps if st.op_type in COMPRESSED_OPS for s in st.outputs}
    live = set()
    for st in steps:
        live |= set(st.outputs) & dense_slots
        assert len(live) <= 1 or st.op_type in ("cast", "mul")
        live -= set(st.release)


def test_config_precedence_and_size_floor_apply(dense):
    cfg = pm.OptimizationConfig(global_config=pm.Quantize("int8"),
                                op_type_configs={"embedding": None},
                                op_name_configs={"small.weight": pm.Palettize(2), "proj": pm.Prune(0.5)})
    rows = {r["weight"]: r["mode"] for r in pm.compression_report(pm.compress(dense, cfg))}
    assert rows == {"emb.weight": "dense", "conv.weight": "quantize", "fc.weight": "quantize",
                    "small.weight": "palettize", "proj": "prune"}
    rows = {r["weight"]: r["mode"] for r in pm.compression_report(
        pm.compress(dense, {"global_config": {"palettize": {"nbits": 4}}, "min_weight_size": 0}))}
    assert rows.pop("small.weight") == rows.pop("proj") == "quantize"  # output heads: int8 (test below)
    assert set(rows.values()) == {"palettize"}


class TiedLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(96, 64)
        self.mix = torch.nn.Linear(64, 64)

    def forward(self, ids):
        return torch.nn.functional.linear(torch.relu(self.mix(self.emb(ids))), self.emb.weight)  # tied head


def test_output_heads_keep_8_bits_under_a_global_config_below_8_bits():
    """As llama.cpp keeps output.weight at 6-8 bits: a tied embedding or a linear whose result is
    an output gets int8 from a global 4-bit config, noted; an explicit config decides itself."""
    tied = pm.convert(TiedLM().eval(), (torch.randint(0, 96, (1, 7)),))
    rows = {r["weight"]: r for r in pm.compression_report(pm.compress(tied, pm.Palettize(4)))}
    assert rows["mix.weight"]["mode"] == "palettize" and rows["mix.weight"]["note"] == ""
    assert rows["emb.weight"]["mode"] == "quantize" and rows["emb.weight"]["note"].startswith("an output head: int8")
    assert 8 < rows["emb.weight"]["bits_per_weight"] < 9
    for cfg in (pm.OptimizationConfig(pm.Palettize(4), op_type_configs={"embedding": pm.Palettize(4)}),
                pm.OptimizationConfig(op_name_configs={"emb.weight": pm.Palettize(4)})):
        assert {r["weight"]: r["mode"] for r in pm.compression_report(pm.compress(tied, cfg))}["emb.weight"] == "palettize"
    rows = {r["weight"]: r for r in pm.compression_report(pm.compress(tied, pm.Palettize(8)))}
    assert rows["emb.weight"]["mode"] == "palettize"  # 8 bits: as asked


def test_decompress_restores_dense_weights_with_their_names(dense):
    m = pm.decompress(pm.compress(dense, pm.Palettize(8)))
    assert not any(op.type in COMPRESSED_OPS for _, op in m.program.ops())
    for key in ("emb.weight", "fc.weight"):
        assert m.program.weights[key].dtype == np.float32
    assert "compression" not in m.metadata


def test_impossible_shapes_are_clear_errors_for_the_weight_named_or_when_strict(dense):
    for spec, match in ((pm.Palettize(4, granularity="per_grouped_channel", group_size=7), "group_size 7"),
                        (pm.Quantize("int4", granularity="per_block", block_size=48), "block_size 48"),
                        (pm.Prune(n_m=(3, 5)), "m = 5 of n:m 3:5")):
        with pytest.raises(pm.ConfigError, match=rf"op_name_configs\['fc.weight'\]: {match} does not divide"):
            pm.compress(dense, pm.OptimizationConfig(op_name_configs={"fc.weight": spec}))
        with pytest.raises(pm.ConfigError, match=rf"\(strict\): {match} does not divide"):
            pm.compress(dense, pm.OptimizationConfig(spec, strict=True))
        rows = {r["weight"]: r for r in pm.compression_report(pm.compress(dense, spec))}
        assert rows["fc.weight"]["note"].startswith(f"fallback: {match} does not divide")
