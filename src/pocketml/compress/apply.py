"""The compression pass: replace the const weights of linear/conv/embedding/matmul ops by
compressed-weight ops (lut_to_dense, dequantize, sparse_to_dense) over packed constants.

Each compressed chain is placed right before the first op that uses the weight, so the runtime
holds a weight's dense form only while that op runs. The encoders live in `palettize`, `quantize`
and `prune`; the stored formats in `pocketml.formats`.
"""
from __future__ import annotations

import copy
import difflib
import math
from dataclasses import replace
import os
import sys

import numpy as np

from ..errors import ConfigError
from ..formats import pack_bits, pack_quantized, sparsify
from ..ir import registry
from ..ir.program import Function, Op, Program, Value
from ..ir.types import DType, TensorType
from .awq import best_scales
from .calibration import Calibrated, Weighted, smoothed
from .config import OptimizationConfig, Palettize, Prune, Quantize, Specs, as_specs
from .gptq import palettize_gptq, quantize_gptq, sparsegpt
from .palettize import palettize
from .prune import prune_magnitude, prune_nm, prune_threshold
from .quantize import quantize

# op type -> (weight input index, output-channel axis, input axis), as each op declares it
WEIGHT_AXES = {name: op.weight for name, op in registry.all_ops().items() if op.weight is not None}
COMPRESSED_OPS = ("lut_to_dense", "dequantize", "sparse_to_dense")


class _Chain:
    """Ops and weights that rebuild one weight; the last op defines `out`."""

    def __init__(self, key: str):
        self.key = key
        self.ops: list[Op] = []
        self.weights: dict[str, np.ndarray] = {}

    def const(self, suffix: str, array: np.ndarray) -> Value:
        key = f"{self.key}.{suffix}"
        self.weights[key] = np.ascontiguousarray(array).reshape(array.shape)
        v = Value(key.replace(".", "_"), TensorType.of(self.weights[key]))
        self.ops.append(Op("const", [], [v], {"weight": key}))
        return v

    def op(self, type: str, inputs: list[Value | None], attrs: dict, suffix: str) -> Value:
        opdef = registry.get(type)
        t = opdef.infer([None if v is None else v.type for v in inputs], opdef.with_defaults(attrs))[0]
        v = Value(f"{self.key}.{suffix}".replace(".", "_"), t)
        self.ops.append(Op(type, [None if i is None else i.name for i in inputs], [v], attrs))
        return v

    def evaluate(self) -> np.ndarray:
        env: dict[str, np.ndarray] = {}
        for op in self.ops:
            if op.type == "const":
                env[op.output.name] = self.weights[op.attrs["weight"]]
                continue
            opdef = registry.get(op.type)
            out = opdef.compute([None if n is None else env[n] for n in op.inputs], opdef.with_defaults(op.attrs))
            env[op.output.name] = np.asarray(out[0])
        return env[self.ops[-1].output.name]


def _palettize(chain: _Chain, w: np.ndarray, spec: Palettize, axis: int, lut_quant: Quantize | None,
               suffix: str = "", calibrated: Calibrated | None = None) -> Value:
    importance = None if calibrated is None else calibrated.importance(w.shape)
    weights = None
    if importance is not None and spec.mode == "kmeans":  # sensitivity-weighted k-means
        weights = np.broadcast_to(importance, w.shape)
    try:
        if spec.gptq and _gram(calibrated):
            p = palettize_gptq(w, calibrated.stats, spec, axis, importance)
        else:
            p = palettize(w, spec.nbits, mode=spec.mode, granularity=spec.granularity,
                          group_size=spec.group_size, axis=axis, cluster_dim=spec.cluster_dim,
                          per_channel_scale=spec.per_channel_scale, custom=spec.custom, weights=weights)
    except ValueError as e:
        raise ConfigError(f"{chain.key}: cannot palettize {list(w.shape)}: {e}. Choose parameters that "
                          "fit, or give this weight (op_name_configs) or its op type (op_type_configs) "
                          "a config of its own") from None
    idx = chain.const(f"{suffix}indices", pack_bits(p.indices, spec.nbits))
    if lut_quant is not None:
        q = quantize(p.lut, lut_quant.dtype, symmetric=lut_quant.symmetric, granularity="per_tensor",
                     algorithm=lut_quant.algorithm)
        lut = _dequantize_op(chain, q, lut_quant.dtype, p.lut.shape, f"{suffix}lut_")
    else:
        lut = chain.const(f"{suffix}lut", p.lut.astype(spec.lut_dtype))
    out = chain.op("lut_to_dense", [idx, lut], {"nbits": spec.nbits, "shape": list(w.shape),
                                                "vector_axis": p.vector_axis}, f"{suffix}palettized")
    if out.type.dtype != DType.float32:
        out = chain.op("cast", [out], {"dtype": "float32"}, f"{suffix}palettized_f32")
    if p.scale is not None:
        out = chain.op("mul", [out, chain.const(f"{suffix}channel_scale", p.scale.astype(np.float32))], {},
                       f"{suffix}scaled")
    return out


def _dequantize_op(chain: _Chain, q, dtype: str, shape, suffix: str, half: bool = False) -> Value:
    """`half`: scales (and float zero points) stored as float16, the scales read through a cast
    so the weight is still computed in float32 (as llama.cpp's Q4_0/Q4_1 store theirs)."""
    zp = q.zero_point
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        s16 = q.scale.astype(np.float16)
        half = half and bool(np.all(np.isfinite(s16)) and np.all(s16 > 0))  # else float32 scales
        if half and zp is not None and zp.dtype.kind == "f":  # the same offset (-zp * scale) on the rounded scale
            zp = zp.astype(np.float64) * q.scale / s16.astype(np.float64)
            z16 = zp.astype(np.float16)  # a block of nearly equal values has a huge zero point
            zp = z16 if np.all(np.isfinite(z16)) else zp.astype(np.float32)
    if half:
        scale = chain.op("cast", [chain.const(f"{suffix}scale", s16)], {"dtype": "float32"}, f"{suffix}scale_f32")
    else:
        scale = chain.const(f"{suffix}scale", q.scale)
    ins = [chain.const(f"{suffix}data", pack_quantized(q.data, dtype)), scale]
    ins.append(None if zp is None else chain.const(f"{suffix}zero_point", zp))
    return chain.op("dequantize", ins, {"dtype": dtype, "shape": list(shape)}, f"{suffix}dequantized")


def _quantize(chain: _Chain, w: np.ndarray, spec: Quantize, axis: int, in_axis: int, suffix: str = "",
              calibrated: Calibrated | None = None) -> Value:
    if spec.dtype == "float16":
        big = float(np.abs(w).max(initial=0.0))
        if not big <= float(np.finfo(np.float16).max):
            raise ConfigError(f"{chain.key}: a value of magnitude {big:g} does not fit float16 (max 65504); "
                              "leave this weight in float32 (op_name_configs: None) or quantize it to int8")
        half = chain.const(f"{suffix}fp16", w.astype(np.float16))
        return chain.op("cast", [half], {"dtype": "float32"}, f"{suffix}dequantized")
    algorithm, importance = spec.algorithm, None
    if calibrated is not None:
        importance = calibrated.importance(w.shape)
    try:
        if algorithm == "gptq" and _gram(calibrated):
            q = quantize_gptq(w, calibrated.stats, spec.dtype, spec.symmetric, spec.granularity,
                              spec.block_size, axis, in_axis, spec.damping, spec.act_order)
        else:  # GPTQ without the inputs' H (an embedding, a huge input): the weighted search
            q = quantize(w, spec.dtype, symmetric=spec.symmetric, granularity=spec.granularity,
                         axis=axis, block_size=spec.block_size, input_axis=in_axis,
                         algorithm="search" if algorithm == "gptq" else algorithm, importance=importance)
    except ValueError as e:
        raise ConfigError(f"{chain.key}: cannot quantize {list(w.shape)}: {e}. Choose parameters that "
                          "fit, or give this weight (op_name_configs) or its op type (op_type_configs) "
                          "a config of its own") from None
    return _dequantize_op(chain, q, spec.dtype, w.shape, suffix, half=spec.granularity == "per_block")


def _prune_mask(w: np.ndarray, spec: Prune, in_axis: int) -> np.ndarray:
    if spec.n_m is not None:
        return prune_nm(w, spec.n_m[0], spec.n_m[1], axis=in_axis)
    if spec.threshold is not None:
        return prune_threshold(w, spec.threshold)
    return prune_magnitude(w, spec.sparsity, block_size=spec.block_size, axis=in_axis)


def _gram(calibrated) -> bool:
    """Whether calibrated (a Calibrated, Weighted or None) holds its inputs' whole H."""
    return calibrated is not None and calibrated.stats is not None and calibrated.stats.gram is not None


def compress_weight(key: str, w: np.ndarray, specs: Specs, out_axis: int, in_axis: int,
                    calibrated: Calibrated | Weighted | None = None) -> _Chain:
    """The chain of ops rebuilding `w` compressed by `specs` (one spec, or a joint pair), using
    the calibration statistics of its inputs where given."""
    chain = _Chain(key)
    first, rest = specs[0], specs[1:]
    if isinstance(first, Palettize):
        _palettize(chain, w, first, out_axis, rest[0] if rest else None, calibrated=calibrated)
    elif isinstance(first, Quantize):
        _quantize(chain, w, first, out_axis, in_axis, calibrated=calibrated)
    else:
        try:
            if first.sparsegpt and _gram(calibrated) and w.ndim == 2:
                w, mask = sparsegpt(w, calibrated.stats, first.n_m, first.sparsity, out_axis)
            else:  # SparseGPT takes linear and matmul weights; convolutions get magnitude pruning
                mask = _prune_mask(w, first, in_axis)
        except ValueError as e:
            raise ConfigError(f"{key}: cannot prune {list(w.shape)}: {e}") from None
        sparse = sparsify(w, mask)
        mask_v = chain.const("mask", sparse.mask_packed)
        values = sparse.values.astype(np.float32)
        if not rest:
            vals = chain.const("values", values)
        elif isinstance(rest[0], Palettize):
            vals = _palettize(chain, values, rest[0], 0, None, "values_")
        else:
            vals = _quantize(chain, values, rest[0], 0, 0, "values_")
        chain.op("sparse_to_dense", [mask_v, vals], {"shape": list(w.shape)}, "dense")
    return chain


def misfit(shape, specs: Specs, out_axis: int, in_axis: int) -> str | None:
    """Why the group/block/n:m structure of `specs` cannot tile a weight of `shape`, if it cannot."""
    first = specs[0]
    checks = []  # (what, size, axis it must divide)
    if isinstance(first, Palettize):
        checks.append((f"cluster_dim {first.cluster_dim}", first.cluster_dim, out_axis))
        if first.granularity == "per_grouped_channel":
            checks.append((f"group_size {first.group_size}", first.group_size, out_axis))
    elif isinstance(first, Quantize) and first.granularity == "per_block" and first.dtype != "float16":
        checks.append((f"block_size {first.block_size}", first.block_size, in_axis))
    elif isinstance(first, Prune) and first.n_m is not None:
        n, m = first.n_m
        checks.append((f"m = {m} of n:m {n}:{m}", m, in_axis))
    elif isinstance(first, Prune) and first.threshold is None:
        checks.append((f"block_size {first.block_size}", first.block_size, in_axis))
    for what, size, axis in checks:
        if shape[axis] % size:
            return f"{what} does not divide {shape[axis]}, its size on axis {axis}"
    return None


def fallback(specs: Specs, shape, out_axis: int, in_axis: int) -> tuple[Specs | None, str]:
    """The nearest specs that tile a weight `specs` do not fit, and what changed (llama.cpp and
    torchao also fall back per tensor): a grouped LUT -> the largest group size <= the asked one
    that divides the channels (per tensor if that is 1); int4/int8 per block -> per channel;
    n:m pruning -> unstructured at the same sparsity; pruning blocks -> single weights. None
    (dense) when nothing near fits (vectors of cluster_dim channels)."""
    first, rest = specs[0], tuple(specs[1:])
    new = None
    if isinstance(first, Palettize) and first.cluster_dim == 1 and first.granularity == "per_grouped_channel":
        n = shape[out_axis]
        g = max(d for d in range(1, first.group_size + 1) if n % d == 0)
        new = replace(first, group_size=g) if g > 1 else replace(first, granularity="per_tensor")
        what = f"group_size {g}" if g > 1 else "per_tensor"
    elif isinstance(first, Quantize) and first.granularity == "per_block":
        new, what = replace(first, granularity="per_channel"), "per_channel"
    elif isinstance(first, Prune) and first.n_m is not None:
        n, m = first.n_m
        new, what = replace(first, n_m=None, sparsity=n / m), f"unstructured {n / m:.0%} pruning"
    elif isinstance(first, Prune) and first.threshold is None and first.block_size > 1:
        new, what = replace(first, block_size=1), "block_size 1"
    if new is None or misfit(shape, (new,) + rest, out_axis, in_axis):
        return None, "dense"
    return (new,) + rest, what


def _check_names(config: OptimizationConfig, weights: set[str]) -> None:
    """A name in op_name_configs that matches no compressible weight is a typo, not a no-op."""
    for name in config.op_name_configs:
        if name in weights:
            continue
        close = difflib.get_close_matches(name, sorted(weights), n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise ConfigError(f"op_name_configs names {name!r}, which is not a compressible weight of this "
                          f"model; {hint}pm.compression_report(model) lists the weight names")


def _candidates(fn: Function) -> dict[str, tuple[Op, str, int, int]]:
    """const value name -> (its const op, consumer op type, output axis, input axis)."""
    producers = fn.producers()
    out = {}
    for op in fn.ops:
        spec = WEIGHT_AXES.get(op.type)
        if spec is None or spec[0] >= len(op.inputs) or op.inputs[spec[0]] is None:
            continue
        src = producers.get(op.inputs[spec[0]])
        if src is None or src.type != "const" or not src.output.type.dtype.is_float or src.output.name in out:
            continue
        rank = src.output.type.rank
        if rank < 2:
            continue
        out[src.output.name] = (src, op.type, spec[1] % rank, spec[2] % rank)
    return out


def _heads(fn: Function) -> set[str]:
    """Keys of the function's output heads: a weight an embedding shares with a linear/matmul
    (tied embeddings), or one a linear/matmul reads whose result is a function output."""
    producers = fn.producers()
    users: dict[str, set[str]] = {}
    heads = set()
    for op in fn.ops:
        spec = WEIGHT_AXES.get(op.type)
        if spec is None or spec[0] >= len(op.inputs) or op.inputs[spec[0]] is None:
            continue
        src = producers.get(op.inputs[spec[0]])
        if src is None or src.type != "const":
            continue
        users.setdefault(src.attrs["weight"], set()).add(op.type)
        if op.type in ("linear", "matmul") and op.outputs[0].name in fn.outputs:
            heads.add(src.attrs["weight"])
    return heads | {k for k, types in users.items() if "embedding" in types and types & {"linear", "matmul"}}


def _below_8_bits(specs: Specs) -> bool:
    """Palettization or quantization below 8 bits, or pruning (the modes that break a head)."""
    return any(isinstance(s, Prune) or isinstance(s, (Palettize, Quantize)) and s.nbits < 8 for s in specs)


HEAD_SPEC = (Quantize("int8"),)  # what an output head gets under a global config below 8 bits


def resolve_weight(config: OptimizationConfig, key: str, shape, op_type: str, out_axis: int, in_axis: int,
                   is_head: bool) -> tuple[Specs | None, bool, str | None, str | None]:
    """(specs, head, fallback, skipped) of one weight under `config`: the specs it gets (None:
    dense), whether it got HEAD_SPEC as an output head, the fallback taken where the config's
    structure does not tile it, and why it stays dense where nothing near fits. A named or strict
    config that does not fit is a ConfigError."""
    specs = config.resolve(key, op_type, math.prod(shape))
    head = specs is not None and specs is config.global_config and is_head and _below_8_bits(specs)
    if head:  # as llama.cpp keeps output.weight at 6-8 bits: the head's error reaches every logit
        specs = HEAD_SPEC
    why = specs and misfit(shape, specs, out_axis, in_axis)
    if why and (key in config.op_name_configs or config.strict):
        where = f"op_name_configs[{key!r}]" if key in config.op_name_configs else f"{key} (strict)"
        raise ConfigError(f"{where}: {why}; choose parameters that fit its shape {list(shape)}")
    if not why:
        return specs, head, None, None
    specs, what = fallback(specs, shape, out_axis, in_axis)  # a global or op-type config: the nearest fit
    return specs, head, f"{why}: {what}", why if specs is None else None


def planned_specs(program: Program, config: OptimizationConfig) -> dict[str, tuple[Specs, str, int, int]]:
    """weight key -> (specs, consumer op type, output axis, input axis) for every weight that
    `compress_program` would compress under `config` (training-time compression mirrors it)."""
    config = resolve_config(config)
    heads = set().union(*(_heads(fn) for fn in program.functions.values()))
    out = {}
    for fn in program.functions.values():
        for const_op, op_type, out_axis, in_axis in _candidates(fn).values():
            key = const_op.attrs["weight"]
            if key in out:
                continue
            shape = tuple(np.shape(program.weights[key]))
            specs = resolve_weight(config, key, shape, op_type, out_axis, in_axis, key in heads)[0]
            if specs is not None:
                out[key] = (specs, op_type, out_axis, in_axis)
    return out


def compress_program(program: Program, config: OptimizationConfig, progress: bool | None = None,
                     calibration: dict[str, Calibrated] | None = None,
                     sensitivity: dict[str, np.ndarray] | None = None) -> tuple[Program, dict]:
    """A new program with compressed weights (the input is not modified) and a per-weight record;
    `calibration`: weight key -> its inputs' statistics (`calibration.collect`); `sensitivity`:
    weight key -> per-element weights (the weight's shape) replacing the inputs' energy."""
    sensitivity = sensitivity or {}
    calibration = dict(calibration or {})  # (smoothing replaces entries: the caller's stay)
    new = Program(copy.deepcopy(program.functions), dict(program.weights))
    record: dict[str, dict] = {}
    chains: dict[str, _Chain | None] = {}  # by weight key: shared weights are compressed once
    work = [(fn, name, c) for fn in new.functions.values() for name, c in _candidates(fn).items()]
    heads = set().union(*(_heads(fn) for fn in new.functions.values()))
    _check_names(config, {c[0].attrs["weight"] for _, _, c in work})
    show = sys.stderr.isatty() if progress is None else progress
    iterator = work
    if show and len(work) > 4:
        from rich.progress import track
        iterator = track(work, description="compressing", transient=True, console=None)
    smooth = _smoothing(program, config, calibration, work)  # W8A8 linear layers: key -> (s, x, scale, zp)
    for key, (s, *_) in smooth.items():
        if s is not None:
            calibration[key] = smoothed(calibration[key], s)
    quantized_inputs: list[tuple] = []  # (fn, weight value, (step, zero point), smoothing): W8A8 layers
    for fn, value_name, (const_op, op_type, out_axis, in_axis) in iterator:
        key = const_op.attrs["weight"]
        if key not in chains:
            w = np.asarray(program.weights[key], dtype=np.float32)
            if smooth.get(key, (None,))[0] is not None:
                w = w * smooth[key][0]
            specs, head, fell_back, skipped = resolve_weight(config, key, w.shape, op_type, out_axis, in_axis,
                                                             key in heads)
            if skipped:
                record[key] = {"mode": "dense", "skipped": skipped}
            cal = calibration.get(key)
            if key in sensitivity:  # of the weight as stored: w * s smoothed divides it by s^2
                sens = np.asarray(sensitivity[key], np.float32)
                cal = Weighted(sens if smooth.get(key, (None,))[0] is None else sens / np.square(smooth[key][0]), cal)
            chains[key] = None if specs is None else compress_weight(key, w, specs, out_axis, in_axis, cal)
            stored = program.weights[key].dtype
            if chains[key] is not None and stored != np.float32:  # e.g. a float16 model
                chains[key].op("cast", [chains[key].ops[-1].outputs[0]], {"dtype": stored.name}, "cast")
            if chains[key] is not None:
                dense = chains[key].evaluate()
                nbytes = sum(a.nbytes for a in chains[key].weights.values())
                record[key] = {
                    "mode": " + ".join(type(s).__name__.lower() for s in specs),
                    "config": [repr(s) for s in specs],
                    "bits_per_weight": 8.0 * nbytes / w.size,
                    "bytes": nbytes,
                    "rel_error": float(np.linalg.norm(dense - w) / max(np.linalg.norm(w), 1e-30)),
                }
                if fell_back:
                    record[key]["fallback"] = fell_back
                if key in calibration or key in sensitivity:
                    record[key]["calibrated"] = True
                if head:
                    record[key]["recipe"] = ("an output head: int8 under a global config below 8 bits "
                                             "or pruning (op_type_configs or op_name_configs choose otherwise)")
                # (an embedding has no input activation: its rows are looked up)
                if op_type in ("linear", "matmul", "conv") and any(getattr(s, "activations", None) for s in specs):
                    if key not in calibration:
                        raise ConfigError(f"{key}: activation quantization (Quantize(activations='int8')) "
                                          "needs calibration data that reaches the layer's input")
                    sm = smooth.get(key)
                    step, zp = sm[2:] if sm else calibration[key].stats.activation_grid()
                    record[key]["activations"] = {"dtype": "int8" if zp is None else "uint8", "scale": step,
                                                  "zero_point": zp, "smoothed": bool(sm and sm[0] is not None)}
        sm = smooth.get(key)
        if key in record and "activations" in record[key]:
            act = record[key]["activations"]
            quantized_inputs.append((fn, value_name, (act["scale"], act["zero_point"]),
                                     sm[:2] if sm and sm[0] is not None else None))
        elif key in record and sm and sm[0] is not None:  # AWQ: x / s only
            record[key]["awq"] = True
            quantized_inputs.append((fn, value_name, None, sm[:2]))
        chain = chains[key]
        if chain is not None:
            _splice(fn, const_op, value_name, chain)
    skipped = [k for k, r in record.items() if "skipped" in r]
    if skipped and len(skipped) == len(record):  # a useless package is no result; say why
        more = f" (and {len(skipped) - 1} more weights)" if len(skipped) > 1 else ""
        raise ConfigError(f"the config fits none of the weights it applies to: {skipped[0]}: "
                          f"{record[skipped[0]]['skipped']}{more}; choose parameters that fit")
    new.weights.update({k: v for c in chains.values() if c is not None for k, v in c.weights.items()})
    made: dict = {}
    for fn, value_name, grid, sm in quantized_inputs:
        _quantize_input(new, fn, value_name, grid, sm, made)
    from ..passes import eliminate_dead_code, run_passes
    return run_passes(new, (eliminate_dead_code,)), record


def _splice(fn: Function, const_op: Op, value_name: str, chain: _Chain) -> None:
    """Replace `const_op` by the chain, placed before the weight's first user; the chain's last
    op takes over the const's value name so users are unchanged."""
    ops = copy.deepcopy(chain.ops)
    taken = set(fn.values())
    renames = {}
    for op in ops:
        for v in op.outputs:
            name, i = v.name, 1
            while name in taken:
                name, i = f"{v.name}_{i}", i + 1
            renames[v.name] = name
            v.name = name
            taken.add(name)
        op.inputs = [renames.get(n, n) if n is not None else None for n in op.inputs]
        op.loc = const_op.loc
    old_last = ops[-1].outputs[0].name
    ops[-1].outputs[0].name = value_name
    for op in ops:
        op.inputs = [value_name if n == old_last else n for n in op.inputs]
    fn.ops.remove(const_op)
    first_use = next(i for i, op in enumerate(fn.ops) if value_name in op.inputs)
    fn.ops[first_use:first_use] = ops


SMOOTHING_ROWS = 1024  # calibration rows on which each layer's smoothing is chosen


def _smoothing(program: Program, config: OptimizationConfig, calibration: dict, work: list) -> dict:
    """Weight key -> (s or None, the activation's name, its 8-bit step, zero point or None) for the
    linear layers whose input is quantized (W8A8) and which alone use their weight: one per-column
    s and grid for every such layer reading x (SmoothQuant, `_best_smoothing`): x / s has its
    outlier columns tamed, the layers' weights W * s absorb them, and 8 bits per tensor suit x / s
    far better than x. Layers quantized with `awq=True` get an s of their own (`awq.best_scales`)
    and no grid (step and zero point None)."""
    if not config.quantizes_activations() and not config.uses_awq():
        return {}
    uses: dict[str, int] = {}
    for fn, value_name, (const_op, *_) in work:
        n = sum(value_name in op.inputs for op in fn.ops)
        uses[const_op.attrs["weight"]] = uses.get(const_op.attrs["weight"], 0) + n
    groups: dict[tuple, list[str]] = {}
    for fn, value_name, (const_op, op_type, _, _) in work:
        key = const_op.attrs["weight"]
        specs = config.resolve(key, op_type, program.weights[key].size)
        c = calibration.get(key)
        if op_type != "linear" or c is None or c.target.op_type != "linear":
            continue
        awq = next((s for s in specs or () if getattr(s, "awq", False)), None)
        w8a8 = c.stats.amax is not None and any(getattr(s, "activations", None) for s in specs or ())
        if not w8a8 and (awq is None or c.stats.gram is None):
            continue
        groups.setdefault((fn.name, c.target.value, awq), []).append(key)
    out = {}
    for (_, value, awq), keys in groups.items():
        if any(uses[k] != 1 for k in keys):  # a tied or shared weight: its other users read x
            continue
        weights = [np.asarray(program.weights[k], np.float32) for k in keys]
        stats = calibration[keys[0]].stats
        # AWQ: x / s alone, no 8-bit grid (see awq.py)
        choice = (best_scales(stats, weights, awq), None, None) if awq else _best_smoothing(stats, weights)
        out.update({k: (*choice, value) for k in keys})
    return {k: (s, value, scale, zp) for k, (s, scale, zp, value) in out.items()}


def _best_smoothing(stats, weights: list[np.ndarray]) -> tuple[np.ndarray | None, float, int | None]:
    """(s, the step, the zero point) of x / s at 8 bits: of s_j = max|x_j|^a / max|W_j|^(1 - a),
    a in 0, 0.1, ..., 1, or none (s None); clipping points max|x / s| * t, t in 0.5 ... 1; int8
    around 0 (zero point None) or uint8 from min(x / s, 0): the choice whose layers' outputs on
    the calibration sample come closest to float32's, with W * s at int8 per channel (SmoothQuant,
    its alpha and the activation grid searched per layer on the output error). With fewer
    calibration rows than input columns (a classifier on 32 pictures), a search would fit those
    rows rather than the inputs to come: no smoothing, the whole calibrated range."""
    x = stats.sample
    if len(x) > SMOOTHING_ROWS:
        x = x[np.sort(np.random.default_rng(0).choice(len(x), SMOOTHING_ROWS, replace=False))]
    x = x.astype(np.float32)
    a = stats.amax.astype(np.float64)
    if stats.rows < x.shape[1]:
        top = max(float(a.max()), 1e-30)
        return (None, float(np.float32(top / 255)), 0) if x.min(initial=0.0) >= 0 else (None, float(np.float32(top / 127)), None)
    w = np.concatenate(weights)
    ref = x @ w.T
    wmax = np.abs(w).max(axis=0).astype(np.float64)
    best, choice = np.inf, (None, 1.0, None)
    for alpha in [None, *np.linspace(0.0, 1.0, 11)]:
        s = np.ones(x.shape[1], np.float32)
        if alpha is not None:
            s = np.where((a > 0) & (wmax > 0), np.maximum(a, 1e-30) ** alpha / np.maximum(wmax, 1e-30) ** (1 - alpha), 1.0)
            s = np.clip(s, 1e-4, 1e4).astype(np.float32)
        ws = w * s
        step = np.maximum(np.abs(ws).max(axis=1, keepdims=True), 1e-30) / 127
        wq = np.round(ws / step) * step
        xs = x / s
        top, low = float((a / s).max()), float(min(xs.min(initial=0.0), 0.0))
        for t in np.linspace(0.5, 1.0, 8):
            for affine in (False, True):
                if not affine:  # int8 around 0
                    scale, zp = np.float32(max(top * t, 1e-30) / 127), None
                    xq = np.clip(np.round(xs / scale), -127, 127) * scale
                else:  # uint8 over [low, top * t]
                    scale = np.float32(max(top * t - low, 1e-30) / 255)
                    zp = int(np.clip(np.round(-low / scale), 0, 255))
                    xq = (np.clip(np.round(xs / scale) + zp, 0, 255) - zp) * scale
                err = float(np.square(xq @ wq.T - ref).sum())
                if err < best:
                    best, choice = err, (None if alpha is None else s, float(scale), zp)
    return choice


def _quantize_input(program: Program, fn: Function, weight: str, grid: tuple, smooth, made: dict) -> None:
    """The activation each layer multiplying `weight` reads goes through fake_quantize (after a
    multiplication by 1 / s where smoothed; grid None: that multiplication alone, AWQ's), one op
    per activation and scale right before its first such reader, shared by the layers that read
    it (`made`: those made so far)."""
    values = fn.values()

    def fresh(name: str) -> str:
        new, i = name, 1
        while new in values:
            new, i = f"{name}_{i}", i + 1
        return new

    for op in list(fn.ops):
        if op.type not in ("linear", "matmul", "conv") or len(op.inputs) < 2 or op.inputs[1] != weight \
                or op.inputs[0] is None:
            continue
        x = op.inputs[0]
        fq = made.get((fn.name, x, grid))
        if fq is None:
            ops, src = [], x
            if smooth is not None:
                key = f"{fn.name}.{smooth[1]}.smoothing"
                program.weights[key] = (1.0 / smooth[0]).astype(np.float32)
                const = Op("const", [], [Value(fresh(f"{x}_smoothing"), TensorType.of(program.weights[key]))],
                           {"weight": key})
                values[const.outputs[0].name] = const.outputs[0]
                mul = Op("mul", [x, const.outputs[0].name], [Value(fresh(f"{x}_smoothed"), values[x].type)], {})
                values[mul.outputs[0].name] = mul.outputs[0]
                ops, src = [const, mul], mul.outputs[0].name
            if grid is not None:
                ops.append(Op("fake_quantize", [src], [Value(fresh(f"{x}_int8"), values[x].type)],
                              {"scale": grid[0], "zero_point": grid[1]}))
            fq = made[(fn.name, x, grid)] = ops[-1]
            values[fq.outputs[0].name] = fq.outputs[0]
            for o in ops:
                o.loc = op.loc
            i = fn.ops.index(op)
            fn.ops[i:i] = ops
        op.inputs[0] = fq.outputs[0].name


def resolve_config(config) -> OptimizationConfig:
    """A spec, a list of specs, a dict, a YAML path or an OptimizationConfig -> OptimizationConfig."""
    if isinstance(config, OptimizationConfig):
        return config
    if isinstance(config, dict):
        return OptimizationConfig.from_dict(config)
    if isinstance(config, (str, os.PathLike)) and os.fspath(config).endswith((".yaml", ".yml")):
        return OptimizationConfig.from_yaml(config)
    as_specs(config)  # validates, with a clear error for anything else
    return OptimizationConfig(global_config=config)
