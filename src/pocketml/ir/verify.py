"""The verifier: checks a program's invariants; run after conversion and after every pass."""
from __future__ import annotations

from ..errors import VerificationError
from . import registry
from .program import Function, Program
from .types import TensorType


def verify(program: Program) -> None:
    """Raise VerificationError naming the first broken invariant."""
    if not program.functions:
        raise VerificationError("program has no functions")
    for fn in program.functions.values():
        _verify_function(program, fn)


def _shapes_agree(a: TensorType, b: TensorType) -> bool:
    if a.dtype != b.dtype or a.rank != b.rank:
        return False
    return all(x == y or isinstance(x, str) or isinstance(y, str) for x, y in zip(a.shape, b.shape))


def _verify_function(program: Program, fn: Function) -> None:
    where = f"function {fn.name!r}"
    defined: dict[str, TensorType] = {}
    for v in fn.inputs:
        if v.name in defined:
            raise VerificationError(f"{where}: input {v.name!r} declared twice")
        defined[v.name] = v.type
    for i, op in enumerate(fn.ops):
        at = f"{where}, op #{i} ({op.type}{' at ' + op.loc if op.loc else ''})"
        try:
            opdef = registry.get(op.type)
        except KeyError as e:
            raise VerificationError(f"{at}: {e.args[0]}") from None
        lo, hi = opdef.input_range()
        if not lo <= len(op.inputs) <= hi:
            raise VerificationError(f"{at}: takes {lo}..{hi} inputs, got {len(op.inputs)}")
        for name in op.inputs:
            if name is not None and name not in defined:
                raise VerificationError(f"{at}: input {name!r} is not defined before use")
        try:
            attrs = opdef.with_defaults(op.attrs)
        except KeyError as e:
            raise VerificationError(f"{at}: {e.args[0]}") from None
        if op.type == "const":
            w = program.weights.get(attrs["weight"])
            if w is None:
                raise VerificationError(f"{at}: weight {attrs['weight']!r} is not in the program")
            inferred = [TensorType.of(w)]
        else:
            try:
                inferred = opdef.infer([defined[n] if n is not None else None for n in op.inputs], attrs)
            except Exception as e:  # an infer function rejecting its inputs
                raise VerificationError(f"{at}: {e}") from None
        if len(inferred) != len(op.outputs):
            raise VerificationError(f"{at}: declares {len(op.outputs)} outputs, op gives {len(inferred)}")
        for v, t in zip(op.outputs, inferred):
            if not _shapes_agree(v.type, t):
                raise VerificationError(f"{at}: output {v.name!r} declared {v.type}, inferred {t}")
            if v.name in defined:
                raise VerificationError(f"{at}: value {v.name!r} defined twice")
            defined[v.name] = v.type
    for name in fn.outputs:
        if name not in defined:
            raise VerificationError(f"{where}: output {name!r} is never defined")
