"""Execute a plan (`runtime/plan.py`) step by step: the reference loop.

Each step runs its op's NumPy reference, or the native call a backend fused in its place
(`runtime/native.py`). Errors in a step are reported with the op and its source location: an
index out of range as an `InputError` naming the model input it came from, an exception NumPy
raises as `ExecutionError`.
"""
from __future__ import annotations

import bisect
import weakref

from typing import Mapping

import numpy as np

from ..errors import ConfigError, Error, ExecutionError, IndexRangeError, InputError
from ..ir.program import Function, Program
from ..ir.symbolic import evaluate
from ..ir.types import TensorType
from . import native, native_loop, plan as planning
from .plan import PlanSummary

PRECISIONS = ("float32", "float16")
# ops that pass their first input's values through unchanged (or only cast): an index that went
# through them still comes from that input
_PASS_THROUGH = {"cast", "reshape", "squeeze", "expand_dims", "expand", "transpose", "slice",
                 "identity", "flip", "tile", "split"}
_NUMERIC_KINDS = "biufc"  # bool, int, uint, float, complex


class Executor:
    """Runs one function. `backend`: "native" (packed-weight linear/embedding as native calls),
    "reference" (NumPy references only) or None (native where the extension is built). The
    native fusion applies to float32 computing only: fp16 emulation runs the references."""

    def __init__(self, program: Program, function: Function, compute_precision: str = "float32",
                 backend: str | None = None, threads: int | None = None, exact: bool = True):
        if compute_precision not in PRECISIONS:
            raise ConfigError(f"compute_precision must be one of {PRECISIONS}, got {compute_precision!r}")
        self.function = function
        self.fp16 = compute_precision == "float16"
        self.backend = native.resolve_backend(backend)
        self.threads = native.resolve_threads(threads)
        self.exact = exact
        self._spans = None  # (weak refs to the live state arrays, their starts, ends): _detached
        rewrite = native.fuse(self.threads, exact) if self.backend == "native" and not self.fp16 else None
        self.plan = planning.build(program, function, self._round, rewrite, self.backend,
                                   fold_views=rewrite is not None)
        p = self.plan
        self.slots, self.nslots, self.constants = p.slots, p.nslots, p.constants
        self.ops, self.steps, self.symbols = p.ops, p.steps, p.symbols
        self.input_slots, self.output_slots = p.input_slots, p.output_slots
        # the step loop in C++ where the extension has it (the Python loop below stays for
        # `observe`, fp16 emulation and the reference backend)
        self.loop = native_loop.build(p, self.threads) if rewrite is not None else None

    def plan_summary(self) -> PlanSummary:
        return self.plan.summary()

    def _round(self, a: np.ndarray) -> np.ndarray:
        """fp16 emulation: float values are rounded to fp16 and kept as fp32 for computing."""
        if self.fp16 and a.dtype in (np.float32, np.float16):
            with np.errstate(over="ignore"):  # overflow to ±inf is what an fp16 device does too
                return a.astype(np.float16).astype(np.float32)
        return a

    def run(self, arrays: list[np.ndarray], observe=None, states: dict | None = None) -> list[np.ndarray]:
        """Execute; `observe(op_index, step, outputs)` sees every op's outputs (for per-layer checks).
        `states`: name -> live array of each declared state, updated in place."""
        bindings = {sym: arrays[i].shape[axis] for sym, (i, axis) in self.symbols.items()}
        if self.loop is not None and observe is None and (states or not self.function.states):
            try:
                outs = self.loop.run(arrays, bindings, states)
            except Exception as e:
                err = self._step_error(self.loop.current_step, e)
                if err is e:
                    raise
                raise err from (None if isinstance(err, IndexRangeError) else e)
            return self._detached(outs, states)
        env: list = [None] * (self.nslots + 1)  # the last slot stays None: what slot -1 reads
        for s, a in zip(self.input_slots, arrays):
            env[s] = self._round(a)
        for s, a in self.constants.items():
            env[s] = a
        fp16, asarray = self.fp16, np.asarray
        i, computing = -1, False
        try:
            for i, step in enumerate(self.steps):
                computing = True
                attrs = step.attrs
                if step.symbolic_attrs:
                    attrs = {**attrs, **{k: f(bindings) for k, f in step.symbolic_attrs}}
                args = [env[s] for s in step.inputs]
                for pos, view, vattrs, vsymbolic, _ in step.views:
                    if vsymbolic:
                        vattrs = {**vattrs, **{k: f(bindings) for k, f in vsymbolic}}
                    args[pos] = view([args[pos]], vattrs)[0]
                if step.state is None:
                    outs = step.compute(args, attrs)
                    if fp16:
                        for s, a in zip(step.outputs, outs):
                            env[s] = self._round(asarray(a))
                    else:
                        for s, a in zip(step.outputs, outs):
                            env[s] = asarray(a)
                else:  # the state holds values rounded when they were written
                    outs = step.compute(states[step.state], args, attrs)
                    for s, a in zip(step.outputs, outs):
                        env[s] = a
                computing = False
                if observe is not None:
                    observe(i, step, [env[s] for s in step.outputs])
                for s in step.release:
                    env[s] = None
        except Exception as e:
            err = self._step_error(i if computing else -1, e)
            if err is e:
                raise
            raise err from (None if isinstance(err, IndexRangeError) else e)
        return self._detached([env[s] for s in self.output_slots], states)

    def _step_error(self, i: int, e: Exception) -> Exception:
        """What step i raising e raises: an index out of range named with the model input it came
        from, what a reference raises on values it cannot take (a symbolic size that evaluates
        huge, a division by a zero dimension) as an ExecutionError naming the op; e itself when
        it is one of ours or no step was running (i < 0)."""
        if i >= 0 and isinstance(e, IndexRangeError):
            return self._index_error(i, e)
        if i < 0 or isinstance(e, Error) or not isinstance(
                e, (IndexError, ValueError, TypeError, ArithmeticError, MemoryError)):
            return e
        return ExecutionError(f"{self.where(i)} failed: {type(e).__name__}: {e}")

    def _detached(self, outs: list, states: dict | None) -> list[np.ndarray]:
        """outs, each that is (a view of) a state's live array copied: the next call changes it."""
        if not states:
            return outs
        live = states.values()
        if self._spans is None or len(self._spans[0]) != len(live) or not all(
                r() is a for r, a in zip(self._spans[0], live)):  # a live array never moves
            spans = sorted((a.__array_interface__["data"][0], a.nbytes) for a in live)
            self._spans = ([weakref.ref(a) for a in live], [lo for lo, _ in spans], [lo + n for lo, n in spans])
        _, starts, ends = self._spans
        out = []
        for a in outs:
            # a view's first element lies inside its state's bytes (whatever its strides)
            lo = a.__array_interface__["data"][0]
            i = bisect.bisect_right(starts, lo) - 1
            out.append(a.copy() if i >= 0 and lo < ends[i] else a)
        return out

    def where(self, i: int) -> str:
        """Step i's op in words: its type and source location (or, without one, its output)."""
        op = self.ops[i]
        return f"{op.type} at {op.loc}" if op.loc else f"{op.type} producing {op.outputs[0].name!r}"

    def source_input(self, name: str) -> str | None:
        """The function input whose values `name` holds, followed back through shape/cast ops."""
        inputs = set(self.function.input_names)
        producers = {v.name: op for op in self.ops for v in op.outputs}
        while name not in inputs:
            op = producers.get(name)
            if op is None or op.type not in _PASS_THROUGH:
                return None
            name = op.inputs[0]
        return name

    def _index_error(self, i: int, e: IndexRangeError) -> IndexRangeError:
        """e with the op, its location and the model input that supplied the index."""
        e.input = self.source_input(self.ops[i].inputs[e.operand])
        e.op = self.where(i)
        e.args = (f"{'' if e.input is None else f'input {e.input!r}: '}{e.args[0]} ({e.op})",)
        return e


def check_inputs(function: Function, inputs: dict) -> list[np.ndarray]:
    """Arrays in signature order, after checking names, dtypes and shapes (binding symbolic dims).

    Everything is checked before anything is copied, so a wrong input is refused before a copy of
    it (an oversized batch given as a broadcast view, say) can exhaust memory.
    """
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
    arrays = []
    for v in function.inputs:
        want: TensorType = v.type
        a = _as_array(v.name, inputs[v.name], want)
        if a.dtype != want.dtype.np and a.dtype.newbyteorder("=") != want.dtype.np:
            fix = (f".astype(np.{want.dtype.value})" if isinstance(inputs[v.name], np.ndarray)
                   else f"np.asarray(value, dtype=np.{want.dtype.value})")
            raise InputError(f"input {v.name!r}: expected dtype {want.dtype.value}, got {a.dtype} "
                             f"(convert with {fix})")
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
        arrays.append(a)
    for sym, (lo, hi) in function.dim_ranges.items():
        n = bound.get(sym)
        if n is not None and (n < lo or hi is not None and n > hi):
            where = [f"{v.name!r} axis {i}" for v in function.inputs for i, d in enumerate(v.type.shape)
                     if d == sym]
            raise InputError(f"dimension {sym!r} ({', '.join(where)}) is {n}, outside the model's "
                             f"range [{lo}, {'unbounded' if hi is None else hi}]")
    # copies only now: byte-swapped or non-contiguous arrays (reshape keeps 0-d arrays 0-d)
    return [np.ascontiguousarray(a, dtype=v.type.dtype.np).reshape(a.shape)
            for v, a in zip(function.inputs, arrays)]


def _as_array(name: str, value, want: TensorType) -> np.ndarray:
    """value as a numeric array (a view when it is one already), or an InputError saying why not."""
    expected = f"an array of dtype {want.dtype.value} and shape {tuple(want.shape)}"
    if value is None:
        raise InputError(f"input {name!r} is None; pass {expected}")
    try:
        a = np.asarray(value)
    except (ValueError, TypeError, RuntimeError, OverflowError) as e:
        if type(value).__module__.split(".")[0] == "torch":
            fix = f"pass a NumPy array: tensor.detach().cpu().to(torch.{want.dtype.value}).numpy()"
        elif isinstance(value, (list, tuple)):
            fix = "nested lists must be rectangular: the same length at every level"
        else:
            fix = f"pass {expected}"
        raise InputError(f"input {name!r}: cannot make an array of this {type(value).__name__} "
                         f"({fix}): {e}") from e
    if a.dtype.kind not in _NUMERIC_KINDS:
        raise InputError(f"input {name!r} holds {a.dtype} values ({type(value).__name__}), not numbers; "
                         f"pass {expected}")
    return a
