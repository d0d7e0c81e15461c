"""A language model's logits for the last position only, where generation needs nothing more.

A causal LM's head is a `linear` applied position by position, so the logits of the last token
equal the head applied to the last hidden state. Slicing that state before the head saves the
head's work on every other position of a prompt (a fifth of SmolLM2's prefill) and the
[seq, vocab] logits buffer, as llama.cpp does by default. The original function is left alone:
this returns a copy to run in its place.
"""
from __future__ import annotations

from dataclasses import replace

from ..ir.program import Function, Op, Program, Value
from ..ir.types import TensorType

_TO_END = 2**62  # slice end meaning "to the end" (ir/ops/shape.py)


def last_position(program: Program, function: str, output: str = "logits", axis: int = 1) -> Program | None:
    """`program` with `function` computing `output` only at the last index of `axis` (kept, of
    size 1), or None where `output` is not a `linear` over an input with that axis."""
    fn = program.functions[function]
    producers = fn.producers()
    head = producers.get(output)
    if head is None or head.type != "linear" or output not in fn.outputs:
        return None
    hidden = fn.values().get(head.inputs[0])
    if hidden is None or hidden.type.rank < 2 or axis >= hidden.type.rank - 1 or axis < 0:
        return None
    t = hidden.type
    last = Value(f"{hidden.name}.last", TensorType(t.dtype, tuple(1 if i == axis else d for i, d in enumerate(t.shape))))
    cut = Op("slice", [hidden.name], [last], {"axes": [axis], "begin": [-1], "end": [_TO_END], "step": None},
             head.loc)
    out = head.outputs[0]
    new_out = Value(out.name, TensorType(out.type.dtype, tuple(1 if i == axis else d for i, d in enumerate(out.type.shape))))
    new_head = replace(head, inputs=[last.name, *head.inputs[1:]], outputs=[new_out])
    ops = []
    for op in fn.ops:
        if op is head:
            ops += [cut, new_head]
        else:
            ops.append(op)
    functions = dict(program.functions)
    functions[function] = replace(fn, ops=ops)
    return Program(functions, program.weights)
