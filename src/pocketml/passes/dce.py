"""Dead-code elimination: drop ops whose outputs nothing uses, and weights no op reads.

State writes are kept: their effect outlives the call."""
from __future__ import annotations

from ..ir.program import Program

WRITES = ("write_state", "update_state_slice")


def eliminate_dead_code(program: Program) -> Program:
    for fn in program.functions.values():
        live = set(fn.outputs)
        kept = []
        for op in reversed(fn.ops):
            if op.type in WRITES or any(v.name in live for v in op.outputs):
                kept.append(op)
                live.update(n for n in op.inputs if n is not None)
        fn.ops = kept[::-1]
    used = program.used_weights()
    program.weights = {k: v for k, v in program.weights.items() if k in used}
    return program
