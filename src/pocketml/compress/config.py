"""Compression configs: what to do to each weight, resolved op name > op type > global.

Every config is validated when it is made, so an impossible request fails before any work.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Callable, Mapping, Sequence, Union

from ..errors import ConfigError

PALETTE_BITS = (1, 2, 3, 4, 6, 8)
QUANT_DTYPES = ("int8", "uint8", "int4", "uint4", "float16")
QUANT_ALGORITHMS = ("search", "minmax", "gptq")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Palettize:
    """Replace weights by indices into a look-up table of 2**nbits values (or vectors)."""
    nbits: int = 4
    mode: str = "kmeans"  # kmeans | uniform | unique | custom
    granularity: str = "per_tensor"  # per_tensor | per_grouped_channel
    group_size: int = 16  # output channels sharing one LUT (per_grouped_channel)
    cluster_dim: int = 1  # > 1: vector palettization
    per_channel_scale: bool = False
    lut_dtype: str = "float16"  # float16 | float32 (int8: follow with Quantize, a joint mode)
    custom: Callable | None = field(default=None, compare=False)  # w -> (lut, indices), mode="custom"
    gptq: bool = False  # indices by GPTQ against calibration data (k-means tables, cluster_dim 1)

    def __post_init__(self):
        _check(_is_int(self.nbits) and self.nbits in PALETTE_BITS,
               f"Palettize nbits must be one of {PALETTE_BITS}, got {self.nbits!r}")
        _check(self.mode in ("kmeans", "uniform", "unique", "custom"),
               f"Palettize mode must be kmeans, uniform, unique or custom, got {self.mode!r}")
        _check(self.mode != "custom" or callable(self.custom), "Palettize mode 'custom' needs custom=fn")
        _check(self.granularity in ("per_tensor", "per_grouped_channel"),
               f"Palettize granularity must be per_tensor or per_grouped_channel, got {self.granularity!r}")
        _check(_is_int(self.group_size) and self.group_size >= 1,
               f"Palettize group_size must be a positive int, got {self.group_size!r}")
        _check(_is_int(self.cluster_dim) and self.cluster_dim >= 1,
               f"Palettize cluster_dim must be a positive int, got {self.cluster_dim!r}")
        _check(self.granularity != "per_grouped_channel" or self.group_size % self.cluster_dim == 0,
               f"Palettize group_size {self.group_size} must be a multiple of cluster_dim {self.cluster_dim}")
        _check(isinstance(self.per_channel_scale, bool),
               f"Palettize per_channel_scale must be true or false, got {self.per_channel_scale!r}")
        _check(self.lut_dtype in ("float16", "float32"),
               f"Palettize lut_dtype must be float16 or float32, got {self.lut_dtype!r}")
        _check(isinstance(self.gptq, bool), f"Palettize gptq must be true or false, got {self.gptq!r}")
        _check(not self.gptq or (self.mode == "kmeans" and self.cluster_dim == 1),
               "Palettize gptq=True takes mode 'kmeans' with cluster_dim 1")


@dataclass(frozen=True)
class Quantize:
    """Linear quantization: w ≈ (q - zero_point) * scale. dtype "float16" stores the weight as
    float16 instead (a cast, half the size of float32; the other fields do not apply).

    algorithm: "search" picks each block's scale (and, affine, a float offset) that minimises its
    error, weighted by the activations' second moments when calibration data is given; "minmax"
    maps each block's extremes to the range's ends; "gptq" (needs calibration data) rounds column
    by column, correcting the columns left for each one's error (`damping`: added to H's
    diagonal, relative to its mean; `act_order`: columns in decreasing activation energy, grids
    fitted up front). activations "int8" (needs calibration data): the layer's input is
    quantized too, to int8 per tensor with a calibrated scale (W8A8: `fake_quantize` before the
    layer; the scale the one that minimises the activations' squared error). awq (needs
    calibration data; linear layers): activation-aware scaling, the layers reading one input
    store W * s and read x / s, s searched on their calibrated output error (`awq.py`)."""
    dtype: str = "int8"  # int8 | uint8 | int4 | uint4 | float16
    symmetric: bool = True
    granularity: str = "per_channel"  # per_tensor | per_channel | per_block
    block_size: int = 32  # along the input axis (per_block)
    algorithm: str = "search"  # search | minmax | gptq
    damping: float = 0.1  # gptq (gptq.DAMPING)
    act_order: bool = False  # gptq
    activations: str | None = None  # None | int8
    awq: bool = False

    def __post_init__(self):
        _check(isinstance(self.symmetric, bool), f"Quantize symmetric must be true or false, got {self.symmetric!r}")
        _check(self.dtype in QUANT_DTYPES, f"Quantize dtype must be one of {QUANT_DTYPES}, got {self.dtype!r}")
        _check(self.granularity in ("per_tensor", "per_channel", "per_block"),
               f"Quantize granularity must be per_tensor, per_channel or per_block, got {self.granularity!r}")
        _check(_is_int(self.block_size) and self.block_size >= 1,
               f"Quantize block_size must be a positive int, got {self.block_size!r}")
        _check(self.algorithm in QUANT_ALGORITHMS,
               f"Quantize algorithm must be one of {QUANT_ALGORITHMS}, got {self.algorithm!r}")
        _check(_is_number(self.damping) and 0 < self.damping <= 1,
               f"Quantize damping must be in (0, 1], got {self.damping!r}")
        _check(isinstance(self.act_order, bool), f"Quantize act_order must be true or false, got {self.act_order!r}")
        _check(self.algorithm != "gptq" or (self.granularity != "per_tensor" and self.dtype != "float16"),
               "Quantize algorithm 'gptq' takes an integer dtype per_channel or per_block")
        _check(self.activations in (None, "int8"), f"Quantize activations must be None or 'int8', got {self.activations!r}")
        _check(isinstance(self.awq, bool), f"Quantize awq must be true or false, got {self.awq!r}")
        _check(not (self.awq and (self.activations or self.dtype == "float16")),
               "Quantize awq=True takes an integer dtype without activations='int8' (which scales its inputs itself)")

    @property
    def nbits(self) -> int:
        return 4 if self.dtype.endswith("4") else 8


@dataclass(frozen=True)
class Prune:
    """Zero weights; stored as a bit mask plus the kept values."""
    sparsity: float | None = 0.5  # magnitude pruning to this fraction of zeros
    threshold: float | None = None  # instead: zero every |w| <= threshold
    n_m: tuple[int, int] | None = None  # instead: n zeros in every m along the input axis (2:4)
    block_size: int = 1  # > 1: prune whole blocks along the input axis
    sparsegpt: bool = False  # masks and kept values by SparseGPT against calibration data

    def __post_init__(self):
        if self.n_m is not None:
            _check(isinstance(self.n_m, (tuple, list)) and len(self.n_m) == 2
                   and all(_is_int(x) for x in self.n_m) and 0 < self.n_m[0] <= self.n_m[1],
                   f"Prune n_m must be (n, m) with 0 < n <= m, got {self.n_m!r}")
            object.__setattr__(self, "n_m", tuple(self.n_m))
        elif self.threshold is not None:
            _check(_is_number(self.threshold) and self.threshold >= 0,
                   f"Prune threshold must be >= 0, got {self.threshold!r}")
        else:
            _check(_is_number(self.sparsity) and 0 <= self.sparsity < 1,
                   f"Prune sparsity must be in [0, 1), got {self.sparsity!r}")
        _check(_is_int(self.block_size) and self.block_size >= 1,
               f"Prune block_size must be a positive int, got {self.block_size!r}")
        _check(isinstance(self.sparsegpt, bool), f"Prune sparsegpt must be true or false, got {self.sparsegpt!r}")
        _check(not self.sparsegpt or (self.threshold is None and self.block_size == 1),
               "Prune sparsegpt=True takes n_m or sparsity (single weights, no threshold)")


Spec = Union[Palettize, Quantize, Prune]
Specs = tuple  # a resolved config: specs applied in order (one for a single mode, several = joint)
_KINDS = {"palettize": Palettize, "quantize": Quantize, "prune": Prune}


def as_specs(config) -> Specs | None:
    """None, one spec, or a sequence of specs (joint) -> a tuple of specs, validated as a chain."""
    if config is None:
        return None
    specs = tuple(config) if isinstance(config, (list, tuple)) else (config,)
    for s in specs:
        _check(isinstance(s, (Palettize, Quantize, Prune)),
               f"a compression config is Palettize, Quantize, Prune or a list of them; got {s!r}")
    kinds = [type(s).__name__ for s in specs]
    allowed = (["Palettize"], ["Quantize"], ["Prune"], ["Prune", "Palettize"], ["Prune", "Quantize"],
               ["Palettize", "Quantize"])
    _check(kinds in [list(a) for a in allowed],
           f"unsupported joint compression {' then '.join(kinds)}; supported: prune then palettize, "
           "prune then quantize, palettize then quantize (its LUT)")
    if kinds == ["Palettize", "Quantize"]:
        _check(specs[1].dtype in ("int8", "uint8") and specs[1].granularity == "per_tensor",
               "quantizing a LUT supports int8/uint8 per_tensor")
    if kinds[0] == "Prune" and len(specs) == 2:
        g = specs[1].granularity
        _check(g == "per_tensor" or getattr(specs[1], "dtype", None) == "float16",
               f"after pruning, the kept values are compressed per_tensor; got {g!r}")
    return specs


@dataclass
class OptimizationConfig:
    """Which weights get which compression: op_name_configs > op_type_configs > global_config.

    Names are weight names (e.g. "encoder.layer.0.attention.self.query.weight"); op types are IR
    op types (linear, conv, conv_transpose, embedding, matmul). A value of None leaves that weight
    uncompressed. Weights smaller than `min_weight_size` elements are skipped. A global or op-type
    config whose groups, blocks or n:m pattern do not tile a weight falls back to the nearest mode
    that does (`apply.fallback`), noted in the report; `strict=True` makes that an error.
    """
    global_config: Spec | Sequence[Spec] | None = None
    op_type_configs: Mapping[str, Spec | Sequence[Spec] | None] = field(default_factory=dict)
    op_name_configs: Mapping[str, Spec | Sequence[Spec] | None] = field(default_factory=dict)
    min_weight_size: int = 2048
    strict: bool = False

    def __post_init__(self):
        from .apply import WEIGHT_AXES
        for key in ("op_type_configs", "op_name_configs"):
            value = getattr(self, key)
            _check(isinstance(value, Mapping) and all(isinstance(k, str) for k in value),
                   f"{key} must map names to configs, got {value!r}")
        self.global_config = as_specs(self.global_config)
        unknown = set(self.op_type_configs) - set(WEIGHT_AXES)
        _check(not unknown, f"op_type_configs names unknown op type(s) {sorted(unknown)}; "
                            f"compressible op types: {sorted(WEIGHT_AXES)}")
        self.op_type_configs = {k: as_specs(v) for k, v in self.op_type_configs.items()}
        self.op_name_configs = {k: as_specs(v) for k, v in self.op_name_configs.items()}
        _check(_is_int(self.min_weight_size) and self.min_weight_size >= 0,
               f"min_weight_size must be an int >= 0, got {self.min_weight_size!r}")
        _check(isinstance(self.strict, bool), f"strict must be true or false, got {self.strict!r}")

    def uses_gptq(self) -> bool:
        return any(getattr(s, "algorithm", None) == "gptq" or getattr(s, "gptq", False)
                   or getattr(s, "sparsegpt", False) for s in self.all_specs())

    def quantizes_activations(self) -> bool:
        return any(getattr(s, "activations", None) for s in self.all_specs())

    def uses_awq(self) -> bool:
        return any(getattr(s, "awq", False) for s in self.all_specs())

    def all_specs(self):
        """Every spec the config holds, at any level."""
        for v in (self.global_config, *self.op_type_configs.values(), *self.op_name_configs.values()):
            yield from v or ()

    def resolve(self, weight_name: str, op_type: str, size: int) -> Specs | None:
        if weight_name in self.op_name_configs:
            return self.op_name_configs[weight_name]
        if size < self.min_weight_size:
            return None
        if op_type in self.op_type_configs:
            return self.op_type_configs[op_type]
        return self.global_config

    @classmethod
    def from_dict(cls, d: Mapping) -> "OptimizationConfig":
        """From plain data, e.g. {"global_config": {"palettize": {"nbits": 4}},
        "op_type_configs": {"embedding": None}, "op_name_configs": {"lm_head.weight":
        [{"prune": {"n_m": [2, 4]}}, {"quantize": {"dtype": "int8"}}]}, "min_weight_size": 2048}."""
        _check(isinstance(d, Mapping), f"a compression config must be a mapping, got {type(d).__name__}")
        unknown = set(d) - {"global_config", "op_type_configs", "op_name_configs", "min_weight_size", "strict"}
        _check(not unknown, f"unknown config key(s) {sorted(unknown)}")
        maps = {}
        for key in ("op_type_configs", "op_name_configs"):
            m = d.get(key) or {}
            _check(isinstance(m, Mapping), f"{key} must be a mapping of names to specs, got {m!r}")
            maps[key] = {k: _spec_from(v, f"{key}[{k!r}]") for k, v in m.items()}
        return cls(global_config=_spec_from(d.get("global_config"), "global_config"), **maps,
                   min_weight_size=d.get("min_weight_size", 2048), strict=d.get("strict", False))

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "OptimizationConfig":
        import yaml
        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except OSError as e:
            raise ConfigError(f"cannot read config {str(path)!r}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"config {str(path)!r} is not UTF-8 text: {e}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config {str(path)!r} is not valid YAML: {e}") from None
        return cls.from_dict(data or {})

    def to_dict(self) -> dict:
        def specs(v):
            return None if v is None else [{type(s).__name__.lower(): _spec_dict(s)} for s in v]
        return {"global_config": specs(self.global_config),
                "op_type_configs": {k: specs(v) for k, v in self.op_type_configs.items()},
                "op_name_configs": {k: specs(v) for k, v in self.op_name_configs.items()},
                "min_weight_size": self.min_weight_size, "strict": self.strict}


def _spec_dict(s) -> dict:
    return {f.name: getattr(s, f.name) for f in fields(s) if f.name != "custom"}


def _spec_from(v, where: str):
    """{"palettize": {...}} / [{...}, {...}] / None -> spec(s); `where` names it in errors."""
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return [_spec_from(x, where) for x in v]
    _check(isinstance(v, Mapping) and len(v) == 1 and next(iter(v)) in _KINDS,
           f"{where}: each compression spec is one of {{palettize: {{...}}}}, {{quantize: {{...}}}}, "
           f"{{prune: {{...}}}}; got {v!r}")
    kind, params = next(iter(v.items()))
    names = [f.name for f in fields(_KINDS[kind]) if f.name != "custom"]
    _check(params is None or isinstance(params, Mapping),
           f"{where}: {kind} takes a mapping of options {names}, got {params!r}")
    params = dict(params or {})
    if kind == "prune" and isinstance(params.get("n_m"), str):  # "2:4"
        try:
            params["n_m"] = tuple(int(x) for x in params["n_m"].split(":"))
        except ValueError:
            raise ConfigError(f"{where}: prune n_m must be \"n:m\" or [n, m], got {params['n_m']!r}") from None
    for key in ("sparsity", "threshold"):  # YAML 1.1 reads 1e-3 (no dot) as a string
        if kind == "prune" and isinstance(params.get(key), str):
            try:
                params[key] = float(params[key])
            except ValueError:
                pass  # the spec's own check names it
    unknown = sorted(set(params) - set(names))
    _check(not unknown, f"{where}: {kind} has no option(s) {unknown}; its options are {names}")
    try:
        return _KINDS[kind](**params)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


__all__ = ["OptimizationConfig", "Palettize", "Prune", "Quantize", "as_specs"]
