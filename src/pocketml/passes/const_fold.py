"""Constant folding: ops whose inputs are all constants are computed once at conversion.

Folding `transpose(weight)` into a stored weight removes work from every prediction. An op is not
folded when its result would be much larger than its inputs (e.g. an `expand`), which would
bloat the package.
"""
from __future__ import annotations

import numpy as np

from ..ir import registry
from ..ir.ops.state import STATE_OPS
from ..ir.program import Op, Program

GROWTH_LIMIT = 2  # fold only if output bytes <= GROWTH_LIMIT * largest input + 4 KiB


def fold_constants(program: Program, expand: bool = False) -> Program:
    """Fold ops over constants. Compressed-weight ops are kept (they are the point of storing a
    weight compressed) unless `expand`, which is how `decompress` gets dense weights back."""
    for fn in program.functions.values():
        const_of: dict[str, str] = {}  # value name -> weight key
        new_ops = []
        for op in fn.ops:
            if op.type == "const":
                const_of[op.output.name] = op.attrs["weight"]
                new_ops.append(op)
                continue
            opdef = registry.get(op.type)
            ins = [n for n in op.inputs if n is not None]
            if ((not opdef.const_foldable and (not expand or op.type in STATE_OPS)) or not all(n in const_of for n in ins)
                    or not all(v.type.is_static for v in op.outputs)):
                new_ops.append(op)
                continue
            arrays = [None if n is None else program.weights[const_of[n]] for n in op.inputs]
            biggest = max((a.nbytes for a in arrays if a is not None), default=0)
            size = sum(v.type.numel() or 0 for v in op.outputs) * 4
            if size > GROWTH_LIMIT * biggest + 4096 and opdef.const_foldable:  # decompression may grow
                new_ops.append(op)
                continue
            outs = opdef.compute(arrays, opdef.with_defaults(op.attrs))
            for v, a in zip(op.outputs, outs):
                a = np.asarray(a, dtype=v.type.dtype.np)
                a = np.ascontiguousarray(a).reshape(a.shape)  # keeps 0-d arrays 0-d
                key = _fresh_key(program, v.name)
                program.weights[key] = a
                const_of[v.name] = key
                new_ops.append(Op("const", [], [v], {"weight": key}, op.loc))
        fn.ops = new_ops
    return program


def _fresh_key(program: Program, base: str) -> str:
    key, i = base, 1
    while key in program.weights:
        key, i = f"{base}_{i}", i + 1
    return key
