"""`compress`, `decompress` and `compression_report`: the public face of weight compression."""
from __future__ import annotations

import copy

import numpy as np

from ..ir.program import Program
from ..model import Model
from .apply import COMPRESSED_OPS, WEIGHT_AXES, compress_program, resolve_config


def compress(model: Model, config, progress: bool | None = None) -> Model:
    """A new Model whose weights are compressed per `config` (the input model is not modified).

    `config`: a `Palettize`, `Quantize` or `Prune`; a list of them applied in order (joint
    compression); an `OptimizationConfig`; its dict form; or a path to its YAML file.
    """
    cfg = resolve_config(config)
    program, record = compress_program(model.program, cfg, progress)
    metadata = copy.deepcopy(model.metadata)
    previous = metadata.get("compression", {})
    metadata["compression"] = {**previous, **record}
    return Model(program, metadata, model.function.name, model.compute_precision)


def decompress(model: Model) -> Model:
    """The dense model: every compressed-weight chain evaluated once into a plain float weight."""
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


def compression_report(model: Model) -> list[dict]:
    """Every weight a linear/conv/embedding/matmul reads: its mode, bits per weight counting every
    overhead (LUTs, scales, zero points, masks), stored bytes, and reconstruction error (relative
    Frobenius norm, as measured when it was compressed; 0 for dense weights)."""
    recorded = model.metadata.get("compression", {})
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
                         "rel_error": info.get("rel_error", 0.0)})
    return rows


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
    return "\n".join(lines)
