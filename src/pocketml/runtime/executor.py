"""Plan and execute one function with the ops' NumPy references.

Planning happens once: values get integer slots, const ops are bound to their (memory-mapped)
weights, and each activation is released right after its last use so its buffer can be reused.
"""
from __future__ import annotations

from dataclasses import dataclass

from typing import Mapping

import numpy as np

from ..errors import InputError
from ..ir import registry
from ..ir.ops.state import STATE_OPS
from ..ir.program import Function, Program
from ..ir.symbolic import evaluate, is_symbolic, resolve
from ..ir.types import TensorType

PRECISIONS = ("float32", "float16")


@dataclass
class _Step:
    compute: object
    inputs: list[int]
    attrs: dict
    outputs: list[int]
    release: list[int]  # slots whose last use is this step
    symbolic_attrs: list[str]  # attributes holding dimension expressions, resolved per call
    op_type: str
    loc: str
    state: str | None = None  # state ops: the state their compute gets as first argument


class Executor:
    def __init__(self, program: Program, function: Function, compute_precision: str = "float32"):
        if compute_precision not in PRECISIONS:
            from ..errors import ConfigError
            raise ConfigError(f"compute_precision must be one of {PRECISIONS}, got {compute_precision!r}")
        self.function = function
        self.fp16 = compute_precision == "float16"
        slots: dict[str, int] = {}
        for v in function.inputs:
            slots[v.name] = len(slots)
        self.constants: dict[int, np.ndarray] = {}
        pending = []
        for op in function.ops:
            for v in op.outputs:
                slots[v.name] = len(slots)
            if op.type == "const":
                self.constants[slots[op.output.name]] = self._round(program.weights[op.attrs["weight"]])
            else:
                pending.append(op)
        self.nslots = len(slots)
        self.input_slots = [slots[v.name] for v in function.inputs]
        self.output_slots = [slots[n] for n in function.outputs]
        last_use: dict[int, int] = {}
        for i, op in enumerate(pending):
            for n in op.inputs:
                if n is not None:
                    last_use[slots[n]] = i
        keep = set(self.output_slots) | set(self.constants)
        releases: dict[int, list[int]] = {}
        for s, i in last_use.items():
            if s not in keep:
                releases.setdefault(i, []).append(s)
        # symbol -> (input index, axis) that binds it
        self.symbols: dict[str, tuple[int, int]] = {}
        for i, v in enumerate(function.inputs):
            for axis, d in enumerate(v.type.shape):
                if isinstance(d, str) and d.isidentifier():
                    self.symbols.setdefault(d, (i, axis))
        names = set(self.symbols)
        self.steps = []
        for i, op in enumerate(pending):
            opdef = registry.get(op.type)
            attrs = opdef.with_defaults(op.attrs)
            dynamic = [k for k, v in attrs.items() if _has_symbol(v, names)]
            self.steps.append(_Step(opdef.compute, [-1 if n is None else slots[n] for n in op.inputs],
                                    attrs, [slots[v.name] for v in op.outputs],
                                    releases.get(i, []), dynamic, op.type, op.loc,
                                    attrs["state"] if op.type in STATE_OPS else None))

    def _round(self, a: np.ndarray) -> np.ndarray:
        """fp16 emulation: float values are rounded to fp16 and kept as fp32 for computing."""
        if self.fp16 and a.dtype in (np.float32, np.float16):
            with np.errstate(over="ignore"):  # overflow to ±inf is what an fp16 device does too
                return a.astype(np.float16).astype(np.float32)
        return a

    def run(self, arrays: list[np.ndarray], observe=None, states: dict | None = None) -> list[np.ndarray]:
        """Execute; `observe(op_index, step, outputs)` sees every op's outputs (for per-layer checks).
        `states`: name -> live array of each declared state, updated in place."""
        env: list = [None] * self.nslots
        bindings = {sym: arrays[i].shape[axis] for sym, (i, axis) in self.symbols.items()}
        names = set(bindings)
        for s, a in zip(self.input_slots, arrays):
            env[s] = self._round(a)
        for s, a in self.constants.items():
            env[s] = a
        for i, step in enumerate(self.steps):
            attrs = step.attrs
            if step.symbolic_attrs:
                attrs = {**attrs, **{k: resolve(attrs[k], bindings, names) for k in step.symbolic_attrs}}
            args = [None if s < 0 else env[s] for s in step.inputs]
            if step.state is None:
                outs = step.compute(args, attrs)
                for s, a in zip(step.outputs, outs):
                    env[s] = self._round(np.asarray(a)) if self.fp16 else np.asarray(a)
            else:  # the state holds values rounded when they were written
                outs = step.compute(states[step.state], args, attrs)
                for s, a in zip(step.outputs, outs):
                    env[s] = a
            if observe is not None:
                observe(i, step, [env[s] for s in step.outputs])
            for s in step.release:
                env[s] = None
        # an output that is (a view of) a state's live array is copied: the next call changes it
        live = list((states or {}).values())
        return [env[s].copy() if any(np.may_share_memory(env[s], a) for a in live) else env[s]
                for s in self.output_slots]


def _has_symbol(value, symbols: set[str]) -> bool:
    if isinstance(value, list):
        return any(_has_symbol(v, symbols) for v in value)
    return is_symbolic(value, symbols)


def check_inputs(function: Function, inputs: dict) -> list[np.ndarray]:
    """Arrays in signature order, after checking names, dtypes and shapes (binding symbolic dims)."""
    if not isinstance(inputs, Mapping):
        raise InputError(f"inputs must be a dict of name -> array; expected names {function.input_names}")
    missing = [n for n in function.input_names if n not in inputs]
    unknown = [n for n in inputs if n not in function.input_names]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing input(s) {missing}")
        if unknown:
            parts.append(f"unknown input(s) {unknown}")
        raise InputError(f"{'; '.join(parts)}; the model's inputs are {function.input_names}")
    bound: dict[str, int] = {}
    out = []
    for v in function.inputs:
        a = np.asarray(inputs[v.name])
        want: TensorType = v.type
        if a.dtype != want.dtype.np:
            raise InputError(f"input {v.name!r}: expected dtype {want.dtype.value}, got {a.dtype} "
                             f"(convert with .astype(np.{want.dtype.value}))")
        if a.ndim != want.rank:
            raise InputError(f"input {v.name!r}: expected shape {want.shape} (rank {want.rank}), "
                             f"got {a.shape} (rank {a.ndim})")
        for d, n in zip(want.shape, a.shape):
            if isinstance(d, str) and not d.isidentifier():  # a derived dimension, e.g. "seq+1"
                try:
                    d = evaluate(d, bound)
                except ValueError:
                    continue
            if isinstance(d, int) and d != n or isinstance(d, str) and bound.setdefault(d, n) != n:
                raise InputError(f"input {v.name!r}: expected shape {tuple(want.shape)}, got {a.shape}")
        allowed = function.input_shapes.get(v.name)
        if allowed and list(a.shape) not in allowed:
            raise InputError(f"input {v.name!r}: shape {a.shape} is not one of the model's shapes "
                             f"{[tuple(x) for x in allowed]}")
        out.append(np.ascontiguousarray(a).reshape(a.shape))  # keeps 0-d arrays 0-d
    for sym, (lo, hi) in function.dim_ranges.items():
        n = bound.get(sym)
        if n is not None and (n < lo or hi is not None and n > hi):
            where = [f"{v.name!r} axis {i}" for v in function.inputs for i, d in enumerate(v.type.shape)
                     if d == sym]
            raise InputError(f"dimension {sym!r} ({', '.join(where)}) is {n}, outside the model's "
                             f"range [{lo}, {'unbounded' if hi is None else hi}]")
    return out
