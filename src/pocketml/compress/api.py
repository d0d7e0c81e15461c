"""`compress`, `decompress` and `compression_report`: the public face of weight compression."""
from __future__ import annotations

import copy
import os
import warnings

import numpy as np

from ..errors import CompressionWarning, ConfigError
from ..ir.program import Program
from ..model import Model, load
from .apply import COMPRESSED_OPS, WEIGHT_AXES, compress_program, resolve_config
from .config import OptimizationConfig

# Relative Frobenius error of the worst weight above which `compress` warns. Data-free errors on
# a 512x512 Gaussian matrix: int8 per_channel 0.0075, palettize 8-bit 0.006, 6-bit 0.025
# (g16 0.024), 4-bit 0.097 (g16 0.097, per row 0.087), int4 per_block 32 0.097 (16: 0.085),
# 3-bit 0.19, 50 % pruning 0.27, 2:4 0.36. Real weights (MiniLM, SmolLM2, EfficientNet-Lite0;
# worst weight of each): 6-bit 0.028-0.039, 4-bit and int4 0.11-0.16. Models keep quality at 6 bits
# (MiniLM cosine 0.996, SmolLM2 perplexity +9 %) and break at 4 (cosine 0.89-0.94, perplexity
# x3-x19; benchmarks/RESULTS.md), so the line sits between the two.
LOSSY_ERROR = 0.06


def _model(model) -> Model:
    if isinstance(model, (str, os.PathLike)):
        return load(model)
    if not isinstance(model, Model):
        raise ConfigError(f"expected a pm.Model or the path of a .pocket package, got {type(model).__name__}")
    return model


def compress(model: Model | str | os.PathLike, config=None, progress: bool | None = None,
             calibration=None, target_size=None, candidates=None, sensitivity=None, kv_cache=None) -> Model:
    """A new Model whose weights are compressed per `config` (the input model is not modified).

    `model`: a Model or the path of a package. `config`: a `Palettize`, `Quantize` or `Prune`; a
    list of them applied in order (joint compression); an `OptimizationConfig`; its dict form; or
    a path to its YAML file. `calibration`: representative inputs (input dicts, text for a package
    with a tokenizer, or a .txt/.npz path; see `calibration.py`): the model runs on them once and
    every weight the data reaches is compressed for the error its layer's output sees (k-means
    weighted by the inputs' energy, searched scales weighted alike, GPTQ where asked). Warns
    (`CompressionWarning`) when a weight's error is in the range that breaks models, and when a
    global or op-type config skips a weight it cannot tile.

    `target_size` (bytes, or "60MB") instead of `config`: mixed precision (`mixed.py`): each
    weight gets the one of `candidates` (specs, largest first; default `mixed.DEFAULT_CANDIDATES`,
    their GPTQ forms with calibration data)
    that fits the package in the size with the least loss, measured on the calibration data
    where given; the chosen recipe and the size/loss curve are in the result's
    metadata["compression_recipe"].

    `sensitivity`: weight key -> non-negative per-element weights of the weight's shape (the
    Fisher diagonal of `pocketml.training.fisher`: squared gradients of a loss, as coremltools'
    SKMPalettizer uses), replacing the inputs' energy as the weights of k-means and of the
    searched scales for those weights; GPTQ and SparseGPT still take their H from `calibration`.

    `kv_cache="int8"`: a stateful model's KV cache stored as int8 rows with a scale each
    (`kv_cache.py`: a quarter of its memory and of what each decoded token reads), with or
    without a weight config; the states it quantized are in metadata["kv_cache"].
    """
    model = _model(model)
    if kv_cache is not None:
        if config is None and target_size is None:
            return _with_kv_cache(model, kv_cache)
        return _with_kv_cache(compress(model, config, progress, calibration, target_size, candidates,
                                       sensitivity), kv_cache)
    if target_size is not None:
        if sensitivity is not None:
            raise ConfigError("sensitivity weighs a config's weights; mixed precision (target_size) measures "
                              "its own losses: give one or the other")
        return _compress_to_size(model, config, progress, calibration, target_size, candidates)
    if config is None:
        raise ConfigError("give a compression config, or target_size= for mixed precision")
    cfg = resolve_config(config)
    gptq = cfg.uses_gptq()
    if gptq and calibration is None:
        raise ConfigError("GPTQ and SparseGPT (Quantize(algorithm='gptq'), Palettize(gptq=True), "
                          "Prune(sparsegpt=True)) need calibration data: "
                          "pm.compress(model, config, calibration=samples) (input dicts, text, or a "
                          ".txt/.npz file)")
    if cfg.quantizes_activations() and calibration is None:
        raise ConfigError("activation quantization (Quantize(activations='int8')) needs calibration data: "
                          "pm.compress(model, config, calibration=samples) (input dicts, text, or a "
                          ".txt/.npz file)")
    if cfg.uses_awq() and calibration is None:
        raise ConfigError("activation-aware scaling (Quantize(awq=True)) needs calibration data: "
                          "pm.compress(model, config, calibration=samples) (input dicts, text, or a "
                          ".txt/.npz file)")
    calibrated = None
    sensitivity = _sensitivity(model, sensitivity)
    if calibration is not None:
        calibrated = _calibrate(model, cfg, calibration, gptq or cfg.uses_awq(), progress)
    return _compressed(model, cfg, progress, calibrated, sensitivity)


def _with_kv_cache(model: Model, mode) -> Model:
    from .kv_cache import quantize_kv_cache

    program, states = quantize_kv_cache(model.program, mode)
    metadata = copy.deepcopy(model.metadata)
    metadata["kv_cache"] = {"mode": mode, "states": states}
    return Model(program, metadata, model.function.name, model.compute_precision)


def _sensitivity(model: Model, given) -> dict | None:
    """`given` checked: a mapping from weight keys of the package to finite non-negative arrays of
    their shapes, not all zero."""
    if given is None:
        return None
    if not hasattr(given, "items"):
        raise ConfigError(f"sensitivity must map weight keys to arrays (pocketml.training.fisher's result), "
                          f"got {type(given).__name__}")
    weights = model.program.weights
    unknown = [k for k in given if k not in weights]
    if unknown:
        raise ConfigError(f"sensitivity names weights the package does not have: {unknown[:5]} (its weights: "
                          f"{list(weights)[:5]}...): key it by the package's weight names")
    out = {}
    for key, a in given.items():
        a = np.asarray(a, np.float32)
        if a.shape != weights[key].shape:
            raise ConfigError(f"sensitivity[{key!r}] has shape {a.shape}, the weight {weights[key].shape}")
        if not np.all(np.isfinite(a)) or (a < 0).any() or not a.any():
            raise ConfigError(f"sensitivity[{key!r}] must be finite, non-negative and not all zero")
        out[key] = a / np.float32(a.mean(dtype=np.float64))  # (only the ratios matter)
    return out


def _compressed(model: Model, cfg, progress, calibrated: dict | None, sensitivity: dict | None = None) -> Model:
    program, record = compress_program(model.program, cfg, progress, calibrated, sensitivity)
    _warn(record, bool(calibrated) or bool(sensitivity))
    metadata = copy.deepcopy(model.metadata)
    previous = metadata.get("compression", {})
    metadata["compression"] = {**previous, **record}
    return Model(program, metadata, model.function.name, model.compute_precision)


def _compress_to_size(model: Model, config, progress, calibration, target_size, candidates) -> Model:
    from .mixed import DEFAULT_CANDIDATES, GPTQ_CANDIDATES, parse_size, plan

    if config is not None:
        raise ConfigError("give either a config or target_size (with candidates=), not both")
    target = parse_size(target_size)
    if candidates is None:
        candidates = DEFAULT_CANDIDATES if calibration is None else GPTQ_CANDIDATES
    candidates = list(candidates)
    if not candidates:
        raise ConfigError("candidates must hold at least one spec")
    probe = OptimizationConfig(op_type_configs={t: candidates[0] for t in WEIGHT_AXES})
    gptq = any(OptimizationConfig(c).uses_gptq() for c in candidates)
    if gptq and calibration is None:
        raise ConfigError("GPTQ/SparseGPT candidates need calibration data")
    stats = {} if calibration is None else _calibrate(model, probe, calibration, True, progress)
    cfg, curve, size = plan(model.program, candidates, target, stats, probe.min_weight_size, progress)
    out = _compressed(model, cfg, progress, stats)
    out.metadata["compression_recipe"] = {"target_size": target, "weights_bytes": size,
                                          "config": cfg.to_dict(), "curve": [list(p) for p in curve]}
    return out


def _calibrate(model: Model, cfg, data, full: bool, progress) -> dict:
    """Weight key -> the statistics of its inputs over `data`, for the weights `cfg` compresses,
    each function of the package on its own data (calibration.per_function)."""
    from .apply import _candidates
    from .calibration import collect, merge, per_function, targets

    out: dict = {}
    for name, fdata in per_function(model, data).items():
        fn = model.program.functions[name]
        cands = _candidates(fn)
        op_types = {c[0].attrs["weight"]: c[1] for c in reversed(cands.values())}  # each weight's first user
        wanted = {}
        for key, t in targets(model.program, name, cands).items():
            if cfg.resolve(key, op_types[key], model.program.weights[key].size) is not None:
                wanted[key] = t
        if wanted:
            runner = model if name == model.function.name else model.variant(name)
            merge(out, collect(runner, fdata, wanted, full, progress, sample=cfg.quantizes_activations()))
    return out


def _warn(record: dict, calibrated: bool = False) -> None:
    skipped = {k: r["skipped"] for k, r in record.items() if "skipped" in r}
    if skipped:
        listed = "; ".join(f"{k} ({why})" for k, why in list(skipped.items())[:5])
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        warnings.warn(f"{len(skipped)} weight(s) stay uncompressed because the config's structure "
                      f"does not fit their shape: {listed}{more}. To compress them, give them a "
                      "config of their own in op_name_configs (e.g. per_tensor)",
                      CompressionWarning, stacklevel=3)
    # a calibrated weight trades its own error for its output's: the weight's error says little
    errors = {k: r["rel_error"] for k, r in record.items() if "rel_error" in r and not r.get("calibrated")}
    worst = max(errors, key=errors.get, default=None)
    if worst is not None and errors[worst] > LOSSY_ERROR and calibrated:
        warnings.warn(f"{worst} has a relative error of {errors[worst]:.3f} after compression; the "
                      "calibration data does not reach it (an embedding or a transposed convolution "
                      "has no input rows to weigh by), so its data-free error stands, in the range "
                      "that breaks models. Check the model's outputs, or give it a gentler mode of its "
                      "own (op_name_configs, e.g. int8)", CompressionWarning, stacklevel=3)
    elif worst is not None and errors[worst] > LOSSY_ERROR:
        warnings.warn(f"{worst} has a relative error of {errors[worst]:.3f} after compression; "
                      f"data-free errors above {LOSSY_ERROR} (4 bits and below, 50 % or 2:4 pruning) "
                      "are known to break models. Check the model's outputs, or use a gentler mode: "
                      "6 or 8 bits, or smaller groups (per_grouped_channel, per_block), or compress "
                      "with calibration data (pm.compress(..., calibration=samples); GPTQ: "
                      "Quantize(algorithm='gptq'), Palettize(gptq=True); Prune(sparsegpt=True)), "
                      "which keeps more at 4 bits",
                      CompressionWarning, stacklevel=3)


def decompress(model: Model | str | os.PathLike) -> Model:
    """The dense model: every compressed-weight chain evaluated once into a plain float weight."""
    model = _model(model)
    from ..passes import eliminate_dead_code, run_passes
    from ..passes.const_fold import fold_constants

    program = Program(copy.deepcopy(model.program.functions), dict(model.program.weights))
    program = run_passes(program, (lambda p: fold_constants(p, expand=True), eliminate_dead_code))
    _restore_names(program, model.metadata.get("compression", {}))
    metadata = {k: v for k, v in model.metadata.items() if k != "compression"}
    return Model(program, metadata, model.function.name, model.compute_precision)


def _restore_names(program: Program, recorded: dict) -> None:
    """Give decompressed weights back their original keys (the chain kept the const's value name)."""
    by_value = {k.replace(".", "_"): k for k in recorded}
    renamed: dict[str, str] = {}
    for _, op in program.ops():
        if op.type != "const":
            continue
        old = op.attrs["weight"]
        key = by_value.get(op.output.name)
        if old not in renamed and key is not None and key not in program.weights:
            program.weights[key] = program.weights.pop(old)
            renamed[old] = key
        op.attrs["weight"] = renamed.get(old, old)


def compression_report(model: Model | str | os.PathLike) -> list[dict]:
    """Every weight a linear/conv/embedding/matmul reads: its mode, bits per weight counting every
    overhead (LUTs, scales, zero points, masks), stored bytes, reconstruction error (relative
    Frobenius norm, as measured when it was compressed; 0 for dense weights), and a note (why a
    config skipped it; else empty)."""
    model = _model(model)
    recorded = _recorded(model.metadata)
    rows = []
    for fn in model.program.functions.values():
        producers = fn.producers()
        seen = set()
        for op in fn.ops:
            spec = WEIGHT_AXES.get(op.type)
            if spec is None or spec[0] >= len(op.inputs) or op.inputs[spec[0]] in seen:
                continue
            name = op.inputs[spec[0]]
            keys = _stored_weights(name, producers)
            if keys is None:  # computed from activations, not a weight
                continue
            seen.add(name)
            value_type = producers[name].outputs[0].type
            numel = value_type.numel() or 0
            nbytes = sum(model.program.weights[k].nbytes for k in keys)
            key = _weight_key(name, producers, keys)
            info = recorded.get(key, {})
            rows.append({"function": fn.name, "weight": key, "op_type": op.type,
                         "shape": list(value_type.shape), "mode": info.get("mode", "dense"),
                         "bits_per_weight": 8.0 * nbytes / numel if numel else 0.0, "bytes": nbytes,
                         "rel_error": info.get("rel_error", 0.0),
                         "note": _note(info)})
    return rows


def _note(info: dict) -> str:
    if isinstance(info.get("skipped"), str):
        return f"skipped: {info['skipped']}"
    if isinstance(info.get("fallback"), str):
        return f"fallback: {info['fallback']}"
    if isinstance(info.get("recipe"), str):
        return info["recipe"]
    return ""


def _recorded(metadata: dict) -> dict[str, dict]:
    """metadata["compression"] as `compress` writes it: records of another shape (anyone can
    write metadata) are left out, so a report never fails on them."""
    recorded = metadata.get("compression")
    if not isinstance(recorded, dict):
        return {}
    good = {}
    for key, info in recorded.items():
        if not isinstance(info, dict):
            continue
        mode, err, skipped = info.get("mode", "dense"), info.get("rel_error", 0.0), info.get("skipped", "")
        if isinstance(mode, str) and isinstance(err, (int, float)) and not isinstance(err, bool) \
                and isinstance(skipped, str):
            good[key] = info
    return good


def _stored_weights(name: str, producers) -> list[str] | None:
    """Weight keys the value `name` is computed from, if it depends on constants only."""
    op = producers.get(name)
    if op is None:
        return None
    if op.type == "const":
        return [op.attrs["weight"]]
    if op.type not in COMPRESSED_OPS + ("cast", "mul"):
        return None
    keys: list[str] = []
    for n in op.inputs:
        if n is None:
            continue
        sub = _stored_weights(n, producers)
        if sub is None:
            return None
        keys += sub
    return keys


def _weight_key(name: str, producers, keys: list[str]) -> str:
    """The original weight's name: a dense const's key, or the common prefix of a chain's keys."""
    op = producers[name]
    if op.type == "const":
        return op.attrs["weight"]
    prefix = keys[0].rsplit(".", 1)[0]
    while not all(k.startswith(prefix + ".") for k in keys) and "." in prefix:
        prefix = prefix.rsplit(".", 1)[0]
    return prefix


def format_report(rows: list[dict]) -> str:
    if not rows:
        return "no compressible weights"
    total_bytes = sum(r["bytes"] for r in rows)
    total_elems = sum(int(np.prod(r["shape"])) for r in rows)
    width = max(len(r["weight"]) for r in rows)
    lines = [f"{'weight':<{width}}  {'mode':<20} {'bits/w':>7} {'bytes':>12} {'rel err':>9}"]
    for r in rows:
        lines.append(f"{r['weight']:<{width}}  {r['mode']:<20} {r['bits_per_weight']:7.3f} "
                     f"{r['bytes']:12,d} {r['rel_error']:9.2e}")
    lines.append(f"{'total':<{width}}  {'':<20} {8.0 * total_bytes / max(total_elems, 1):7.3f} "
                 f"{total_bytes:12,d}")
    lines += [f"{r['weight']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(lines)
