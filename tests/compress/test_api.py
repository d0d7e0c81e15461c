"""pm.compress's contract around the numerics: paths, name checks, skipped weights, lossy warnings."""
import warnings

import numpy as np
import pytest
import torch

import pocketml as pm
from pocketml.compress.api import LOSSY_ERROR
from pocketml.compress.apply import compress_weight
from pocketml.errors import CompressionWarning


class Small(torch.nn.Module):
    """An embedding of 30 rows (no multiple of 16) and a linear layer of 32 output channels."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(30, 128)
        self.fc = torch.nn.Linear(128, 32)

    def forward(self, ids):
        return torch.relu(self.fc(self.emb(ids)))  # not an output head (those keep 8 bits)


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return pm.convert(Small().eval(), (torch.randint(0, 30, (1, 5)),))


def _compress(model, config):
    """(compressed model, its CompressionWarnings' messages)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = pm.compress(model, config, progress=False)
    return out, [str(w.message) for w in caught if issubclass(w.category, CompressionWarning)]


def test_entry_points_take_a_package_path(small, tmp_path):
    path = tmp_path / "small.pocket"
    small.save(path)
    for where in (path, str(path)):
        m, _ = _compress(where, pm.Quantize("int8"))
        assert {r["weight"]: r["mode"] for r in pm.compression_report(m)} == {
            "emb.weight": "quantize", "fc.weight": "quantize"}
    m.save(tmp_path / "int8.pocket")
    assert pm.compression_report(str(tmp_path / "int8.pocket"))[0]["mode"] == "quantize"
    dense = pm.decompress(tmp_path / "int8.pocket")
    assert all(r["mode"] == "dense" for r in pm.compression_report(dense))
    with pytest.raises(pm.ConfigError, match="expected a pm.Model or the path .* got Small"):
        pm.compress(Small(), pm.Quantize("int8"))


def test_an_op_name_that_matches_no_weight_is_an_error_naming_close_ones(small):
    with pytest.raises(pm.ConfigError, match=r"'fc.weigth', which is not a compressible weight.*"
                                             r"did you mean 'fc.weight'"):
        pm.compress(small, pm.OptimizationConfig(op_name_configs={"fc.weigth": pm.Quantize()}))
    with pytest.raises(pm.ConfigError, match="'decoder.bias', which is not .*compression_report"):
        pm.compress(small, {"op_name_configs": {"decoder.bias": None}})


def test_a_global_config_falls_back_on_weights_it_cannot_tile(small):
    spec = pm.Palettize(6, granularity="per_grouped_channel", group_size=16)
    m, warned = _compress(small, spec)  # as README's --granularity per_grouped_channel --group-size 16
    rows = {r["weight"]: r for r in pm.compression_report(m)}
    assert rows["fc.weight"]["mode"] == "palettize" and rows["fc.weight"]["note"] == ""
    assert rows["emb.weight"]["mode"] == "palettize" and not warned
    note = "fallback: group_size 16 does not divide 30, its size on axis 0: group_size 15"
    assert rows["emb.weight"]["note"] == note
    assert f"emb.weight: {note}" in pm.format_report(list(rows.values()))
    lut = [k for k in m.program.weights if k.startswith("emb.weight") and k.endswith("lut")]
    assert [m.program.weights[k].shape[0] for k in lut] == [2]  # 30 rows in 2 groups of 15
    # the other structured modes: int4 per block -> per channel, 2:4 -> 50 % unstructured
    for asked, mode, what in [(pm.Quantize("int4", granularity="per_block", block_size=7), "quantize",
                               "per_channel"),
                              (pm.Prune(n_m=(2, 7)), "prune", "unstructured 29% pruning")]:
        m, warned = _compress(small, asked)
        rows = {r["weight"]: r for r in pm.compression_report(m)}
        assert all(r["mode"] == mode for r in rows.values())
        assert not any("uncompressed" in w for w in warned)
        assert rows["emb.weight"]["note"].endswith(f": {what}") or rows["fc.weight"]["note"].endswith(f": {what}")
    with pytest.raises(pm.ConfigError, match=r"emb.weight \(strict\): group_size 16 does not divide 30"):
        pm.compress(small, pm.OptimizationConfig(spec, strict=True))
    assert pm.OptimizationConfig.from_dict({"strict": True}).strict


def test_a_global_config_skips_weights_nothing_near_fits_with_a_warning(small):
    spec = pm.Palettize(6, cluster_dim=4)  # vectors of 4 rows: 30 rows do not split
    m, warned = _compress(small, spec)
    rows = {r["weight"]: r for r in pm.compression_report(m)}
    assert rows["emb.weight"]["mode"] == "dense" and rows["emb.weight"]["bits_per_weight"] == 32
    assert rows["emb.weight"]["note"] == "skipped: cluster_dim 4 does not divide 30, its size on axis 0"
    warned = [w for w in warned if "uncompressed" in w]
    assert len(warned) == 1 and "1 weight(s) stay uncompressed" in warned[0]
    assert "emb.weight (cluster_dim 4 does not divide 30" in warned[0] and "op_name_configs" in warned[0]
    with pytest.raises(pm.ConfigError, match="fits none of the weights it applies to: emb.weight: cluster_dim 4"):
        pm.compress(small, pm.OptimizationConfig(op_type_configs={"embedding": spec}))  # nothing to do
    # named, the weight gets what it asked for or an error; here a fitting config of its own
    cfg = pm.OptimizationConfig(global_config=spec, op_name_configs={"emb.weight": pm.Palettize(6)})
    m, warned = _compress(small, cfg)
    assert not any("uncompressed" in w for w in warned)
    assert {r["mode"] for r in pm.compression_report(m)} == {"palettize"}
    with pytest.raises(pm.ConfigError, match=r"op_name_configs\['emb.weight'\]: cluster_dim 4"):
        pm.compress(small, pm.OptimizationConfig(op_name_configs={"emb.weight": spec}))


def test_the_lossy_threshold_separates_6_bit_from_4_bit_on_a_gaussian_matrix():
    w = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)

    def error(*specs):
        dense = compress_weight("w", w, specs, 0, 1).evaluate()
        return np.linalg.norm(dense - w) / np.linalg.norm(w)

    kept = [error(pm.Quantize("int8")), error(pm.Palettize(8)), error(pm.Palettize(6)),
            error(pm.Palettize(6, granularity="per_grouped_channel", group_size=16))]
    lost = [error(pm.Palettize(4)), error(pm.Palettize(4, granularity="per_grouped_channel", group_size=16)),
            error(pm.Quantize("int4", granularity="per_block", block_size=16)), error(pm.Prune(0.5)),
            error(pm.Prune(n_m=(2, 4)))]
    assert max(kept) < 0.03 and LOSSY_ERROR > 2 * max(kept)
    assert min(lost) > 0.075 and min(lost) > 1.25 * LOSSY_ERROR


def test_compress_warns_when_a_weight_is_compressed_in_the_range_that_breaks_models():
    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 64))
    torch.manual_seed(0)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    dense = pm.convert(model.eval(), (torch.randn(1, 256),))
    for gentle in (pm.Quantize("int8"), pm.Palettize(8), pm.Palettize(6),
                   pm.Palettize(6, granularity="per_grouped_channel", group_size=16)):
        assert _compress(dense, gentle)[1] == [], gentle
    for lossy in (pm.Palettize(4), pm.Quantize("int4", granularity="per_block", block_size=32),
                  pm.Prune(n_m=(2, 4)), [pm.Prune(0.5), pm.Palettize(6)]):
        m, warned = _compress(dense, lossy)
        worst = max(pm.compression_report(m), key=lambda r: r["rel_error"])
        assert len(warned) == 1, lossy
        assert warned[0].startswith(f"{worst['weight']} has a relative error of {worst['rel_error']:.3f}")
        assert "6 or 8 bits" in warned[0] and "calibration=samples" in warned[0]


@pytest.mark.parametrize("recorded", [7, "x", [1], {"fc.weight": 3}, {"fc.weight": {"mode": 1}},
                                      {"fc.weight": {"mode": "lut", "rel_error": "big"}},
                                      {"fc.weight": {"rel_error": True}}, {"fc.weight": {"skipped": []}}])
def test_report_ignores_compression_metadata_of_another_shape(small, recorded):
    """Anyone can write metadata: a record of the wrong shape is left out, never a crash."""
    model = pm.Model(small.program, {**small.metadata, "compression": recorded})
    rows = {r["weight"]: r for r in pm.compression_report(model)}
    assert rows["fc.weight"]["mode"] == "dense" and rows["fc.weight"]["rel_error"] == 0.0
