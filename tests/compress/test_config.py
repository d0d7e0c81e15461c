"""Compression configs: validation before any work, precedence, dict and YAML forms."""
import pytest

import pocketml as pm
from pocketml.compress.config import as_specs


@pytest.mark.parametrize("make, match", [
    (lambda: pm.Palettize(nbits=5), "nbits must be one of"),
    (lambda: pm.Palettize(mode="random"), "mode must be"),
    (lambda: pm.Palettize(mode="custom"), "needs custom=fn"),
    (lambda: pm.Palettize(granularity="per_row"), "granularity"),
    (lambda: pm.Palettize(group_size=0), "group_size"),
    (lambda: pm.Quantize(dtype="int3"), "dtype must be one of"),
    (lambda: pm.Quantize(granularity="per_block", block_size=0), "block_size"),
    (lambda: pm.Prune(sparsity=1.0), r"sparsity must be in \[0, 1\)"),
    (lambda: pm.Prune(sparsity=-0.1), r"sparsity must be in \[0, 1\)"),
    (lambda: pm.Prune(n_m=(3, 2)), "0 < n <= m"),
    (lambda: pm.Prune(threshold=-1.0), "threshold must be >= 0"),
    (lambda: as_specs([pm.Quantize(), pm.Palettize()]), "unsupported joint compression Quantize then Palettize"),
    (lambda: as_specs([pm.Palettize(), pm.Quantize(dtype="int4")]), "quantizing a LUT"),
    (lambda: as_specs([pm.Prune(), pm.Quantize(granularity="per_channel")]), "per_tensor"),
    (lambda: as_specs("int8"), "is Palettize, Quantize, Prune"),
    (lambda: pm.OptimizationConfig(op_type_configs={"lstm": pm.Quantize()}), "unknown op type"),
    (lambda: pm.OptimizationConfig.from_dict({"global": {}}), "unknown config key"),
    (lambda: pm.OptimizationConfig.from_dict({"global_config": {"palettise": {}}}), "each compression spec"),
    (lambda: pm.OptimizationConfig.from_dict({"global_config": {"quantize": {"bits": 4}}}), "its options are"),
    # wrong types, as YAML gives them, are ConfigErrors naming where they are
    (lambda: pm.OptimizationConfig.from_dict({"global_config": {"quantize": {"symmetric": "no"}}}),
     "global_config: Quantize symmetric must be true or false"),
    (lambda: pm.OptimizationConfig.from_dict({"global_config": {"palettize": {"nbits": "4"}}}), "nbits must be"),
    (lambda: pm.OptimizationConfig.from_dict({"global_config": {"palettize": {"nbits": True}}}), "nbits must be"),
    (lambda: pm.OptimizationConfig.from_dict({"global_config": {"palettize": 4}}), "palettize takes a mapping"),
    (lambda: pm.OptimizationConfig.from_dict({"op_name_configs": {"a.weight": {"prune": {"sparsity": "half"}}}}),
     r"op_name_configs\['a.weight'\]: Prune sparsity must be in"),
    (lambda: pm.OptimizationConfig.from_dict({"global_config": {"prune": {"n_m": "2-4"}}}), 'n_m must be "n:m"'),
    (lambda: pm.OptimizationConfig.from_dict({"global_config": {"prune": {"n_m": [2]}}}), "n_m must be"),
    (lambda: pm.OptimizationConfig.from_dict({"global_config": {"prune": {"threshold": "small"}}}), "threshold must be >= 0"),
    (lambda: pm.OptimizationConfig.from_dict({"op_type_configs": ["linear"]}), "op_type_configs must be a mapping"),
    (lambda: pm.OptimizationConfig.from_dict({"min_weight_size": "2k"}), "min_weight_size must be an int"),
    (lambda: pm.OptimizationConfig.from_dict(["palettize"]), "must be a mapping"),
    (lambda: pm.OptimizationConfig(op_name_configs=["a.weight"]), "op_name_configs must map names"),
    (lambda: pm.Palettize(cluster_dim=3, granularity="per_grouped_channel", group_size=16), "multiple of cluster_dim"),
])
def test_invalid_configs_fail_before_any_work(make, match):
    with pytest.raises(pm.ConfigError, match=match):
        make()


def test_resolution_is_name_then_type_then_global_with_a_size_floor():
    cfg = pm.OptimizationConfig(
        global_config=pm.Palettize(nbits=4),
        op_type_configs={"embedding": None, "conv": pm.Quantize()},
        op_name_configs={"head.weight": [pm.Prune(n_m=(2, 4)), pm.Quantize(granularity="per_tensor")],
                         "tiny.weight": pm.Quantize(dtype="int4", granularity="per_tensor")})
    assert cfg.resolve("head.weight", "linear", 10**6) == (pm.Prune(n_m=(2, 4)), pm.Quantize(granularity="per_tensor"))
    assert cfg.resolve("tiny.weight", "linear", 10)[0].dtype == "int4"  # a name beats the size floor
    assert cfg.resolve("x.weight", "linear", 10) is None  # below min_weight_size
    assert cfg.resolve("x.weight", "embedding", 10**6) is None
    assert cfg.resolve("x.weight", "conv", 10**6) == (pm.Quantize(),)
    assert cfg.resolve("x.weight", "linear", 10**6) == (pm.Palettize(nbits=4),)


def test_dict_and_yaml_forms(tmp_path):
    text = """
global_config:
  palettize: {nbits: 6, granularity: per_grouped_channel, group_size: 8}
op_type_configs:
  embedding: null
op_name_configs:
  lm_head.weight:
    - prune: {n_m: "2:4"}
    - quantize: {dtype: int8, granularity: per_tensor}
min_weight_size: 100
"""
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    cfg = pm.OptimizationConfig.from_yaml(path)
    assert cfg.global_config == (pm.Palettize(nbits=6, granularity="per_grouped_channel", group_size=8),)
    assert cfg.op_type_configs == {"embedding": None}
    assert cfg.op_name_configs["lm_head.weight"][0] == pm.Prune(n_m=(2, 4))
    assert cfg.min_weight_size == 100
    again = pm.OptimizationConfig.from_dict(cfg.to_dict())
    assert again.global_config == cfg.global_config and again.op_name_configs == cfg.op_name_configs
    with pytest.raises(pm.ConfigError, match="cannot read"):
        pm.OptimizationConfig.from_yaml(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("global_config: [unclosed")
    with pytest.raises(pm.ConfigError, match="not valid YAML"):
        pm.OptimizationConfig.from_yaml(tmp_path / "bad.yaml")


def test_yaml_errors_name_the_file(tmp_path):
    (tmp_path / "typo.yaml").write_text("global_config:\n  quantize: {dtype: int8, granularity: per_row}\n")
    with pytest.raises(pm.ConfigError, match="global_config: Quantize granularity must be"):
        pm.OptimizationConfig.from_yaml(tmp_path / "typo.yaml")
    (tmp_path / "exp.yaml").write_text("global_config: {prune: {threshold: 1e-3}}\n")  # YAML 1.1: a string
    assert pm.OptimizationConfig.from_yaml(tmp_path / "exp.yaml").global_config == (pm.Prune(threshold=1e-3),)
    (tmp_path / "top.yaml").write_text("globl_config: {}\n")
    with pytest.raises(pm.ConfigError, match=r"unknown config key\(s\) \['globl_config'\]"):
        pm.OptimizationConfig.from_yaml(tmp_path / "top.yaml")
    with pytest.raises(pm.ConfigError, match="cannot read"):
        pm.OptimizationConfig.from_yaml(tmp_path)  # a folder


def test_the_documented_examples_load(tmp_path):
    """docs/COMPRESSION.md's examples are the schema's reference: they must stay loadable."""
    import pathlib
    import re
    doc = pathlib.Path(__file__).parents[2] / "docs" / "COMPRESSION.md"
    blocks = re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S)
    assert blocks
    for i, text in enumerate(blocks):
        (tmp_path / f"{i}.yaml").write_text(text)
        cfg = pm.OptimizationConfig.from_yaml(tmp_path / f"{i}.yaml")
        assert cfg.global_config is not None
    cfg = pm.OptimizationConfig.from_yaml(tmp_path / "0.yaml")  # the full example
    assert cfg.op_type_configs and cfg.op_name_configs
    assert any(v is not None and len(v) == 2 for v in cfg.op_name_configs.values())  # a joint mode
