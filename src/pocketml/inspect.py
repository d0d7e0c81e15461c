"""Summaries of a model or package: signature, metadata, op histogram, weights and sizes.

Needs no torch: `summary(pm.load(path))` or `summary(path)` (which also reports the file size).
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Mapping

import numpy as np

from .model import Model, load


# C0/C1 controls, DEL, lone surrogates, bidi overrides and line/paragraph separators: a package's
# strings could otherwise move the cursor, recolour or clear a terminal, fake extra output lines
# or crash printing (a lone surrogate cannot be encoded)
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u2028-\u202e"
                          r"\u2066-\u2069]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(s, keep: str = "") -> str:
    """`s` (any value, str() applied) safe to print to a terminal: control characters (except
    those in `keep`), lone surrogates and bidi controls become visible escapes like `\\x1b`."""
    s = s if isinstance(s, str) else str(s)
    if keep:
        return _UNPRINTABLE.sub(lambda m: m.group() if m.group() in keep else _escape(m), s)
    return _UNPRINTABLE.sub(_escape, s)


def printable_tree(x):
    """`x` (JSON-like: dicts, lists, strings) with every string, keys included, `printable`."""
    if isinstance(x, str):
        return printable(x)
    if isinstance(x, Mapping):
        return {printable(k): printable_tree(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [printable_tree(v) for v in x]
    return x


def printable_ir(program) -> str:
    """The program's IR text (with its weights), printed from a copy whose strings are all
    `printable`: a name or op location holding a newline cannot fake a line of its own."""
    from .ir.printer import to_text
    from .ir.program import Program

    raw = program.to_json()
    safe = printable_tree(raw)
    for fn, raw_fn in zip(safe["functions"], raw["functions"]):
        for op, raw_op in zip(fn["ops"], raw_fn["ops"]):
            if "attrs" in raw_op:  # the printer repr()s attribute values: escaped already
                op["attrs"] = {printable(k): v for k, v in raw_op["attrs"].items()}
    text = to_text(Program.from_json(safe, {printable(k): w for k, w in program.weights.items()}),
                   weights=True)
    return printable(text, keep="\n")


def _tensor(name: str, t) -> dict:
    return {"name": name, "dtype": t.dtype.value, "shape": list(t.shape)}


def summary(model: Model | str | os.PathLike) -> dict:
    """A JSON-serialisable description of `model` (a Model, or a package path to load).

    Keys: path and file_size (None for an in-memory model), function, functions, function_bytes
    (name -> bytes of weights only it reads ("own") and that others read too ("shared")), inputs and
    outputs (name, dtype, shape; shapes may hold symbolic dims), metadata, ops (op type -> count
    over all functions, const excluded, most frequent first), num_ops, parameters (elements of the
    floating-point weights), weight_bytes, and weights (name, dtype, shape, bytes, bits_per_element,
    in program order). Only weights the program uses are counted, as only those are saved.
    """
    path = file_size = None
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        model = load(path)
        file_size = path.stat().st_size
    program = model.program
    ops = Counter(op.type for _, op in program.ops() if op.type != "const")
    used = program.used_weights()
    weights = []
    for name, w in program.weights.items():
        if name not in used:
            continue
        w = np.asarray(w)
        weights.append({"name": name, "dtype": str(w.dtype), "shape": list(w.shape),
                        "bytes": int(w.nbytes),
                        "bits_per_element": 8.0 * w.nbytes / w.size if w.size else 0.0})
    params = sum(int(np.prod(w["shape"], dtype=np.int64)) for w in weights
                 if np.issubdtype(np.dtype(w["dtype"]), np.floating))
    reads = {name: {op.attrs["weight"] for op in fn.ops if op.type == "const"} | {s.init for s in fn.states if s.init}
             for name, fn in program.functions.items()}
    nbytes = {w["name"]: w["bytes"] for w in weights}
    readers = Counter(k for keys in reads.values() for k in keys)  # functions reading each weight
    function_bytes = {name: {"own": sum(nbytes[k] for k in keys if readers[k] == 1),
                             "shared": sum(nbytes[k] for k in keys if readers[k] > 1)}
                      for name, keys in reads.items()}
    return {
        "path": None if path is None else str(path),
        "file_size": file_size,
        "function": model.function.name,
        "functions": list(program.functions),
        "function_bytes": function_bytes,
        "inputs": [_tensor(n, t) for n, t in model.inputs.items()],
        "outputs": [_tensor(n, t) for n, t in model.outputs.items()],
        "states": [_tensor(n, t) for n, t in model.states.items()],
        "dim_ranges": dict(model.function.dim_ranges),
        "input_shapes": dict(model.function.input_shapes),
        "metadata": dict(model.metadata),
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "num_ops": sum(ops.values()),
        "parameters": params,
        "weight_bytes": sum(w["bytes"] for w in weights),
        "weights": weights,
    }


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # unreachable


def human_count(n: int) -> str:
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def _sig(t: Mapping) -> str:
    return f"{t['dtype']}[{', '.join(str(d) for d in t['shape'])}]"


def _meta_value(v) -> str:
    s = printable(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=repr))
    return s if len(s) <= 100 else s[:97] + "..."


def format_summary(info: Mapping | Model | str | os.PathLike, max_weights: int | None = 20) -> str:
    """Human-readable text of `summary(...)` (pass the dict, a Model or a path). At most
    `max_weights` weights are listed (largest first; None lists all of them in program order)."""
    if not isinstance(info, Mapping):
        info = summary(info)
    metadata = info.get("metadata") or {}
    if not isinstance(metadata, Mapping):  # shown as one value rather than failing
        metadata = {"(metadata)": metadata}
    info = printable_tree({k: v for k, v in info.items() if k != "metadata"})
    lines = []
    if info.get("path"):
        lines.append(f"package   {info['path']}  ({human_bytes(info['file_size'])})")
    fns = info["functions"]
    lines.append(f"function  {info['function']}" + (f"  (of {', '.join(fns)})" if len(fns) > 1 else ""))
    if len(fns) > 1 and info.get("function_bytes"):
        lines += [f"  {name}: {human_bytes(b['own'])} own, {human_bytes(b['shared'])} shared with others"
                  for name, b in info["function_bytes"].items()]
    lines.append("")
    lines.append("inputs")
    lines += [f"  {t['name']}: {_sig(t)}" for t in info["inputs"]]
    lines.append("outputs")
    lines += [f"  {t['name']}: {_sig(t)}" for t in info["outputs"]]
    if info.get("dim_ranges") or info.get("input_shapes"):
        lines.append("flexible shapes")
        lines += [f"  {k} in [{lo}, {'unbounded' if hi is None else hi}]"
                  for k, (lo, hi) in info["dim_ranges"].items()]
        lines += [f"  {k} one of {[tuple(x) for x in v]}" for k, v in info["input_shapes"].items()]
    if info.get("states"):
        total = sum(np.dtype(t["dtype"]).itemsize * int(np.prod(t["shape"])) for t in info["states"])
        lines.append(f"states ({len(info['states'])}, {human_bytes(total)} per make_state())")
        shown = info["states"][:4]
        lines += [f"  {t['name']}: {_sig(t)}" for t in shown]
        if len(info["states"]) > len(shown):
            lines.append(f"  ... {len(info['states']) - len(shown)} more")
    if metadata:
        lines.append("")
        lines.append("metadata")
        keys = {k: printable(k) for k in metadata}
        width = max(len(k) for k in keys.values())
        lines += [f"  {keys[k].ljust(width)}  {_meta_value(v)}" for k, v in metadata.items()]
    lines.append("")
    lines.append(f"ops ({info['num_ops']}, const excluded)")
    if info["ops"]:
        width = max(len(k) for k in info["ops"])
        lines += [f"  {k.ljust(width)}  {n}" for k, n in info["ops"].items()]
    lines.append("")
    weights = info["weights"]
    lines.append(f"weights ({len(weights)}): {human_count(info['parameters'])} parameters "
                 f"({info['parameters']:,} float elements), {human_bytes(info['weight_bytes'])}")
    shown = weights if max_weights is None else sorted(weights, key=lambda w: -w["bytes"])[:max_weights]
    if shown:
        rows = [[w["name"], w["dtype"], "x".join(str(d) for d in w["shape"]) or "scalar",
                 human_bytes(w["bytes"]), f"{w['bits_per_element']:g}"] for w in shown]
        head = ["name", "dtype", "shape", "bytes", "bits/elem"]
        widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
        for r in [head] + rows:
            lines.append("  " + "  ".join(c.rjust(w) if i >= 3 else c.ljust(w)
                                          for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if len(shown) < len(weights):
            lines.append(f"  ... and {len(weights) - len(shown)} smaller weight(s)")
    return "\n".join(lines)


def plan_dict(model: Model) -> dict:
    """`model.plan_summary()` as JSON-serialisable data: backend, counts per kernel, steps."""
    plan = model.plan_summary()
    return {"backend": plan.backend, "total": plan.total, "native": plan.native,
            "counts": plan.counts,
            "steps": [{"index": s.index, "op": s.op_type, "kernel": s.kernel, "shape": s.shape,
                       "loc": s.loc} for s in plan.steps]}


def format_plan(model: Model, max_steps: int | None = None) -> str:
    """The execution plan in text: which kernel runs each step ("numpy": the reference, or a
    fused "native:..." call), its output shape, the counts per kernel and the native share."""
    plan = model.plan_summary()
    share = 100.0 * plan.native / plan.total if plan.total else 0.0
    lines = [f"plan (backend {plan.backend}): {plan.total} steps, native {plan.native} of "
             f"{plan.total} ({share:.0f}%), fallback {plan.total - plan.native}"]
    if plan.counts:
        width = max(len(printable(k)) for k in plan.counts)
        lines += [f"  {printable(k).ljust(width)}  {n}" for k, n in plan.counts.items()]
    steps = plan.steps if max_steps is None else plan.steps[:max_steps]
    if steps:
        rows = [[str(s.index), printable(s.op_type), printable(s.kernel),
                 "x".join(printable(d) for d in s.shape) or "scalar", printable(s.loc)] for s in steps]
        head = ["step", "op", "kernel", "shape", "source"]
        widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
        lines.append("")
        for r in [head] + rows:
            lines.append("  " + "  ".join(c.rjust(w) if i == 0 else c.ljust(w)
                                          for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if len(steps) < len(plan.steps):
            lines.append(f"  ... {len(plan.steps) - len(steps)} more steps")
    return "\n".join(lines)
