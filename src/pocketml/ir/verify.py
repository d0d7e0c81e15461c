"""The verifier: checks a program's invariants; run after conversion and after every pass."""
from __future__ import annotations

from ..errors import VerificationError
from . import registry
from .program import Function, Program
from .ops.state import STATE_OPS, check_update
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
    states = _verify_states(program, fn, where)
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
        elif op.type in STATE_OPS:
            inferred = _state_op_types(op, attrs, states, defined, at)
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
    _verify_bounds(fn, where)


def _verify_states(program: Program, fn: Function, where: str) -> dict[str, TensorType]:
    states: dict[str, TensorType] = {}
    for s in fn.states:
        if s.name in states:
            raise VerificationError(f"{where}: state {s.name!r} declared twice")
        if not s.type.is_static:
            raise VerificationError(f"{where}: state {s.name!r} must have a static shape, got {s.type}")
        if s.init is not None:
            w = program.weights.get(s.init)
            if w is None or TensorType.of(w) != s.type:
                raise VerificationError(f"{where}: state {s.name!r} initial value {s.init!r} is missing "
                                        f"or is not {s.type}")
        states[s.name] = s.type
    return states


def _state_op_types(op, attrs, states: dict[str, TensorType], defined, at: str) -> list[TensorType]:
    st = states.get(attrs["state"])
    if st is None:
        raise VerificationError(f"{at}: no state {attrs['state']!r}; declared: {sorted(states)}")
    if op.type == "read_state":
        return [st]
    given = defined[op.inputs[0]]
    if op.type == "write_state":
        if given.dtype != st.dtype or given.rank != st.rank or any(
                isinstance(d, int) and d != e for d, e in zip(given.shape, st.shape)):
            raise VerificationError(f"{at}: writes {given} into state {attrs['state']!r} of {st}")
        return []
    try:
        check_update(st, given, attrs)
    except ValueError as e:
        raise VerificationError(f"{at}: state {attrs['state']!r}: {e}") from None
    return [st]


def _verify_bounds(fn: Function, where: str) -> None:
    symbols = {d for v in fn.inputs for d in v.type.shape if isinstance(d, str)}
    for sym, r in fn.dim_ranges.items():
        ok = (isinstance(r, list) and len(r) == 2 and isinstance(r[0], int) and r[0] >= 0
              and (r[1] is None or isinstance(r[1], int) and r[1] >= r[0]))
        if sym not in symbols or not ok:
            raise VerificationError(f"{where}: bad range {r!r} for dimension {sym!r} (needs an input "
                                    "symbol and [min, max] with 0 <= min <= max, max null = unbounded)")
    inputs = {v.name: v.type for v in fn.inputs}
    for name, shapes in fn.input_shapes.items():
        t = inputs.get(name)
        if t is None or not shapes or any(
                len(s) != t.rank or any(isinstance(d, int) and d != n for d, n in zip(t.shape, s))
                for s in shapes):
            raise VerificationError(f"{where}: enumerated shapes {shapes!r} do not fit input "
                                    f"{name!r} ({t})")
