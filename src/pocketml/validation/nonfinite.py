"""`find_nonfinite`: where NaN/Inf values came from in one run of a model.

Non-finite inputs are accepted (a model may mean them), so a run that returns NaN everywhere says
nothing by itself. This runs the model once more, watching every op, and follows the NaN (or Inf)
of each bad output back through the ops that passed it on to the op that produced it from clean
inputs: a fully masked softmax row, an overflow in fp16, a log of zero, or a model input.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping

import numpy as np

from ..runtime import check_inputs

_CLEAN, _INF, _NAN = 0, 1, 2  # a value's state: finite, holds ±Inf (no NaN), holds NaN


@dataclass
class Origin:
    """The op that first produced the non-finite values a bad output holds."""
    op_index: int  # position in the function's ops
    op_type: str
    loc: str  # where the op came from in the source model ("" if unknown)
    output: str  # the value it produced that holds them
    kind: str  # "NaN" or "Inf"
    nonfinite_inputs: list[str] = field(default_factory=list)  # its inputs holding Inf (a NaN origin)

    def to_text(self) -> str:
        where = f" at {self.loc}" if self.loc else ""
        came = f" from ±Inf in {', '.join(repr(n) for n in self.nonfinite_inputs)}" \
            if self.nonfinite_inputs else ""
        return f"{self.kind} first appears in {self.output!r}, the output of {self.op_type}{where}{came}"


@dataclass
class NonFiniteReport:
    """Which inputs and outputs hold NaN/Inf, and the op each bad output's values came from.
    False when everything is finite."""
    inputs: dict[str, str]  # input name -> description ("2 NaN, first at (0, 3)")
    outputs: dict[str, str]  # output name -> description
    origins: list[Origin]  # distinct origins of the bad outputs, in execution order
    prediction: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # this run's outputs

    def __bool__(self) -> bool:
        return bool(self.inputs or self.outputs)

    @property
    def origin(self) -> Origin | None:
        """The first origin in execution order, None when the values come from the inputs only."""
        return self.origins[0] if self.origins else None

    def lines(self) -> list[str]:
        out = [f"input {n!r} holds {d}" for n, d in self.inputs.items()]
        out += [f"output {n!r} holds {d}" for n, d in self.outputs.items()]
        out += [o.to_text() for o in self.origins]
        return out

    def to_text(self) -> str:
        return "\n".join(self.lines()) if self else "all inputs and outputs are finite"

    def to_dict(self) -> dict:
        return {"inputs": self.inputs, "outputs": self.outputs,
                "origins": [asdict(o) for o in self.origins]}


def find_nonfinite(model, inputs: Mapping[str, np.ndarray], state=None) -> NonFiniteReport:
    """Run `model` (a `pocketml.Model`) on `inputs` and report where NaN/Inf values are.

    The report's `prediction` holds the outputs of this run, as `predict` returns them. A stateful
    model runs on `state` (updated, as by `predict`) or on a fresh one. Costs one run plus a
    finiteness test of every intermediate value.
    """
    model._check_file()
    executor = model._executor
    arrays = check_inputs(model.function, inputs)
    if model.function.states and state is None:
        state = model.make_state()
    live = state.arrays_for(model.function) if state is not None else None
    status: dict[int, int] = {s: _status(a) for s, a in zip(executor.input_slots, arrays)}

    def observe(i, step, outs):
        for s, a in zip(step.outputs, outs):
            status[s] = _status(a)

    got = executor.run(arrays, observe=observe, states=live)
    bad_inputs = {v.name: _describe(a) for v, a in zip(model.function.inputs, arrays)
                  if status[executor.slots[v.name]] != _CLEAN}
    bad_outputs = {n: _describe(a) for n, a in zip(model.output_names, got) if _status(a) != _CLEAN}
    return NonFiniteReport(bad_inputs, bad_outputs, _origins(model, status, bad_outputs),
                           dict(zip(model.output_names, got)))


def has_nonfinite(arrays) -> bool:
    """Whether any float array holds NaN or Inf (a cheap test before calling `find_nonfinite`)."""
    return any(_status(a) != _CLEAN for a in arrays)


def _origins(model, status: dict[int, int], bad_outputs) -> list[Origin]:
    """Walk back from each bad output through ops whose inputs hold the same kind of bad values."""
    executor = model._executor
    step_of = {s: i for i, step in enumerate(executor.steps) for s in step.outputs}
    index_of = {id(op): k for k, op in enumerate(model.function.ops)}
    const_status: dict[int, int] = {}

    def status_of(slot: int) -> int:
        if slot in executor.constants:  # weights are tested only when the walk reaches them
            if slot not in const_status:
                const_status[slot] = _status(executor.constants[slot])
            return const_status[slot]
        return status.get(slot, _CLEAN)

    found: dict[int, Origin] = {}
    seen: set[int] = set()
    todo = [executor.slots[n] for n in bad_outputs]
    while todo:
        slot = todo.pop()
        if slot in seen or slot not in step_of:  # a model input or a weight: nothing before it
            continue
        seen.add(slot)
        i = step_of[slot]
        op, kind = executor.ops[i], status_of(slot)
        ins = [(n, executor.slots[n]) for n in op.inputs if n is not None]
        # a NaN output is passed on by inputs holding NaN; an Inf output by any non-finite input
        carriers = [s for _, s in ins if status_of(s) == _NAN or kind == _INF and status_of(s) != _CLEAN]
        if carriers:
            todo += carriers
        elif i not in found:
            found[i] = Origin(index_of[id(op)], op.type, op.loc, _name(executor, slot),
                              "NaN" if kind == _NAN else "Inf",
                              [n for n, s in ins if status_of(s) != _CLEAN])
    return [found[i] for i in sorted(found)]


def _name(executor, slot: int) -> str:
    return next(n for n, s in executor.slots.items() if s == slot)


def _status(a) -> int:
    a = np.asarray(a)
    if a.dtype.kind not in "fc" or a.size == 0:
        return _CLEAN
    if np.isfinite(a).all():
        return _CLEAN
    return _NAN if np.isnan(a).any() else _INF


def _describe(a: np.ndarray) -> str:
    """'2 NaN, 1 +Inf, first at index (0, 3)'."""
    nan, pos, neg = np.isnan(a), np.isposinf(a), np.isneginf(a)
    parts = [f"{int(m.sum())} {label}" for m, label in ((nan, "NaN"), (pos, "+Inf"), (neg, "-Inf"))
             if m.any()]
    first = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
    return f"{', '.join(parts)} of {a.size} values, first at index {first}"
