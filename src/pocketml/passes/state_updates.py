"""Turn functional state updates into in-place ones.

The frontend reads each state where the model uses it and writes the new value back at the end
(torch.export's functional form), so a KV-cache step would copy the whole cache:
`new = slice_update(read_state(S), k, ...); write_state(new, S)`. When nothing still needs the
old value by the time the slice is written, the chain becomes `update_state_slice(k, S, ...)`,
which writes only the new tokens' slice into the state and returns it.
"""
from __future__ import annotations

from ..ir.program import Function, Op, Program


def update_states_in_place(program: Program) -> Program:
    for fn in program.functions.values():
        for op in [o for o in fn.ops if o.type == "write_state"]:
            _rewrite(fn, op)
    return program


def _rewrite(fn: Function, write: Op) -> None:
    producers = fn.producers()
    users = fn.users()
    order = {id(op): i for i, op in enumerate(fn.ops)}
    state = write.attrs["state"]
    chain: list[Op] = []  # slice_updates from the write back to the read
    v = write.inputs[0]
    while (p := producers.get(v)) is not None and p.type == "slice_update":
        chain.append(p)
        v = p.inputs[0]
    read = producers.get(v)
    if not chain or read is None or read.type != "read_state" or read.attrs["state"] != state:
        return
    if sum(1 for op in fn.ops if op.type == "read_state" and op.attrs["state"] == state) != 1:
        return
    chain.reverse()
    for u in chain:  # every other reader of the old value must run before the write
        old = u.inputs[0]
        if any(r is not u and order[id(r)] > order[id(u)] for r in users.get(old, [])):
            return
    for u in chain:
        u.type = "update_state_slice"
        u.inputs = [u.inputs[1]]
        u.attrs = {"state": state, **u.attrs}
    # the read's other users (all earlier) keep reading the state before it is updated
    readers = [r for r in users.get(read.output.name, []) if r is not chain[0]]
    if not readers:
        fn.ops.remove(read)
    fn.ops.remove(write)
