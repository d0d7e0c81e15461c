"""The plan of one function: what the executor runs, built once at load, plain data.

Values get integer slots; const ops are bound to their (memory-mapped) weights; each remaining
op becomes a `Step` that names its inputs and outputs by slot and the slots whose last use it is
(released right after, so their buffers can be reused). A step runs its op's NumPy reference,
unless a backend rewrote it (`runtime/native.py`: a linear over a packed weight becomes one native
call); `Step.kernel` says which, `Plan.summary()` lists them.

With `fold_views`, shape-only ops (reshape, transpose, slice, ...: `VIEW_OPS`) stop being steps:
each reader of their output applies them to the source itself (`Step.views`), which costs a NumPy
view instead of a trip round the loop, and a fused kernel then reads a transposed projection or a
slice of a KV cache where it lies.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..ir import registry
from ..ir.ops.state import STATE_OPS
from ..ir.program import Function, Op, Program
from ..ir.symbolic import compile_value, is_symbolic

REFERENCE = "numpy"  # the kernel name of a step run by its op's reference
# ops whose output is a view of (or, for reshape, at worst a copy of) their one input's values
VIEW_OPS = ("reshape", "transpose", "squeeze", "expand_dims", "expand", "slice")


@dataclass
class Step:
    compute: Callable  # (args, attrs) -> outputs; state ops: (state, args, attrs) -> outputs
    inputs: list[int]  # slots (-1: an absent optional input, or one a fused kernel does not read)
    attrs: dict
    outputs: list[int]
    release: list[int]  # slots whose last use is this step
    symbolic_attrs: list[tuple]  # (name, compiled value) of attributes holding dimension expressions
    op_type: str
    loc: str
    state: str | None = None  # state ops: the state their compute gets as first argument
    kernel: str = REFERENCE  # what runs it: "numpy", or e.g. "native:lut4 g[4,1]"
    # folded view ops, applied in order to the arguments before compute:
    # (input position, the view op's compute, its attrs, its symbolic attrs, its op type)
    views: list[tuple] = field(default_factory=list)


@dataclass
class Kernel:
    """What replaces an op's reference in a step (a backend's fused call)."""
    compute: Callable  # (args, attrs) -> outputs
    name: str  # "native:..." for a native call
    inputs: list[str | None]  # value names it reads, operand for operand (None: not read)


# ops list, constants by value name, function -> (the ops to run, kernels by id(op))
Rewrite = Callable[[list, dict, Function], "tuple[list[Op], dict[int, Kernel]]"]


@dataclass
class PlanStep:
    index: int
    op_type: str
    kernel: str
    shape: list  # of the first output; dims are ints or symbol expressions
    loc: str

    @property
    def native(self) -> bool:
        return self.kernel.startswith("native:")


@dataclass
class PlanSummary:
    """The steps of a plan and which kernel runs each (`Model.plan_summary()`)."""
    backend: str
    steps: list[PlanStep]
    counts: dict[str, int] = field(default_factory=dict)  # kernel -> number of steps

    @property
    def native(self) -> int:
        return sum(s.native for s in self.steps)

    @property
    def total(self) -> int:
        return len(self.steps)


@dataclass
class Plan:
    function: Function
    slots: dict[str, int]  # value name -> slot
    nslots: int
    constants: dict[int, np.ndarray]  # slot -> weight
    ops: list[Op]  # the op of each step
    steps: list[Step]
    input_slots: list[int]
    output_slots: list[int]
    symbols: dict[str, tuple[int, int]]  # symbol -> (input index, axis) that binds it
    backend: str = "reference"

    def summary(self) -> PlanSummary:
        rows = [PlanStep(i, s.op_type, s.kernel, list(op.outputs[0].type.shape) if op.outputs else [],
                         op.loc) for i, (s, op) in enumerate(zip(self.steps, self.ops))]
        counts = Counter(r.kernel for r in rows)
        return PlanSummary(self.backend, rows, dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))))


def build(program: Program, function: Function, prepare: Callable = lambda a: a,
          rewrite: Rewrite | None = None, backend: str = "reference", fold_views: bool = False) -> Plan:
    """The plan of `function`; `prepare(weight)` gives a const's array (fp16 emulation rounds it),
    `rewrite` may replace ops by kernels and drop the ops that then compute nothing needed;
    `fold_views` folds shape-only ops into their readers."""
    slots: dict[str, int] = {}
    for v in function.inputs:
        slots[v.name] = len(slots)
    named_consts: dict[str, np.ndarray] = {}
    ops = []
    for op in function.ops:
        for v in op.outputs:
            slots[v.name] = len(slots)
        if op.type == "const":
            named_consts[op.output.name] = prepare(program.weights[op.attrs["weight"]])
        else:
            ops.append(op)
    kernels: dict[int, Kernel] = {}
    if rewrite is not None:
        ops, kernels = rewrite(ops, named_consts, function)
    reads = [list(kernels[id(op)].inputs if id(op) in kernels else op.inputs) for op in ops]
    symbol_names = {d for v in function.inputs for d in v.type.shape if isinstance(d, str) and d.isidentifier()}
    folded: list[list[tuple]] = [[] for _ in ops]
    if fold_views:
        ops, reads, folded = _fold_views(ops, reads, set(function.outputs), symbol_names)
    output_slots = [slots[n] for n in function.outputs]
    used = {n for names in reads for n in names if n is not None} | set(function.outputs)
    constants = {slots[n]: a for n, a in named_consts.items() if n in used}
    last_use: dict[int, int] = {}
    for i, names in enumerate(reads):
        for n in names:
            if n is not None:
                last_use[slots[n]] = i
    keep = set(output_slots) | set(constants)
    releases: dict[int, list[int]] = {}
    for s, i in last_use.items():
        if s not in keep:
            releases.setdefault(i, []).append(s)
    symbols: dict[str, tuple[int, int]] = {}
    for i, v in enumerate(function.inputs):
        for axis, d in enumerate(v.type.shape):
            if isinstance(d, str) and d.isidentifier():
                symbols.setdefault(d, (i, axis))
    steps = []
    for i, (op, ins) in enumerate(zip(ops, reads)):
        opdef = registry.get(op.type)
        attrs = opdef.with_defaults(op.attrs)
        dynamic = [(k, compile_value(v, symbol_names)) for k, v in attrs.items() if _has_symbol(v, symbol_names)]
        k = kernels.get(id(op))
        steps.append(Step(opdef.compute if k is None else k.compute,
                          [-1 if n is None else slots[n] for n in ins], attrs,
                          [slots[v.name] for v in op.outputs], releases.get(i, []), dynamic, op.type,
                          op.loc, attrs["state"] if op.type in STATE_OPS else None,
                          REFERENCE if k is None else k.name, folded[i]))
    return Plan(function, slots, len(slots), constants, ops, steps,
                [slots[v.name] for v in function.inputs], output_slots, symbols, backend)


def _fold_views(ops: list[Op], reads: list[list], outputs: set[str], symbols: set[str]):
    """(ops, reads, views per op) with every reader of a view op's output reading the view's source
    and applying the view itself; view ops nobody reads any more are dropped."""
    producers = {v.name: op for op in ops for v in op.outputs}
    views_of: dict[int, tuple] = {}  # id(view op) -> (compute, attrs, symbolic attrs)
    for op in ops:
        if op.type in VIEW_OPS:
            opdef = registry.get(op.type)
            attrs = opdef.with_defaults(op.attrs)
            views_of[id(op)] = (opdef.compute, attrs, [(k, compile_value(v, symbols)) for k, v in attrs.items()
                                                       if _has_symbol(v, symbols)], op.type)
    folded: list[list[tuple]] = []
    for names in reads:
        views = []
        for pos, name in enumerate(names):
            chain = []
            while name not in outputs and id(op := producers.get(name)) in views_of:
                chain.append(op)
                name = op.inputs[0]
            source = producers.get(name)
            if not chain or source is not None and source.type in STATE_OPS and any(
                    c.type == "reshape" for c in chain):  # a reshape may copy: not of a live state
                continue
            names[pos] = name
            views += [(pos, *views_of[id(c)]) for c in reversed(chain)]
        folded.append(views)
    uses = Counter(n for names in reads for n in names if n is not None) + Counter(outputs)
    keep = []
    for i in reversed(range(len(ops))):  # readers come after producers: one backward sweep
        if id(ops[i]) in views_of and not any(uses[v.name] for v in ops[i].outputs):
            uses.subtract(n for n in reads[i] if n is not None)
        else:
            keep.append(i)
    keep.reverse()
    return [ops[i] for i in keep], [reads[i] for i in keep], [folded[i] for i in keep]


def _has_symbol(value, symbols: set[str]) -> bool:
    if isinstance(value, list):
        return any(_has_symbol(v, symbols) for v in value)
    return is_symbolic(value, symbols)
