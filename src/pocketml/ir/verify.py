"""The verifier: checks a program's invariants; run after conversion and after every pass."""
from __future__ import annotations

from ..errors import VerificationError
from . import registry, symbolic
from .program import Function, Program
from .ops.state import STATE_OPS, check_update
from .types import MAX_DIM, TensorType

# Attributes that hold integers (sizes, axes, bounds), by name across all ops. A string in them
# must be an expression over the function's input symbols, which the runtime resolves; anything
# else would reach the ops' NumPy code and fail there, at predict time.
INT_ATTRS = frozenset({"start", "end", "step", "shape", "sizes", "axes", "axis", "begin", "perm",
                       "reps", "k", "output_size", "kernel", "strides", "pads", "dilations",
                       "groups", "output_padding", "diagonal", "nbits", "vector_axis",
                       "num_layers", "proj_size"})
SCALARS = frozenset({"axis", "k", "groups", "diagonal", "nbits", "vector_axis", "num_layers",
                     "proj_size"})  # the others may also be flat lists
FLOAT_BOUNDS = {"arange": ("start", "end", "step")}  # scalars that may be floats (static bounds)
MAX_TENSOR_BYTES = 2**40  # no tensor of a static type above 1 TiB: a package claiming one is hostile
MAX_STATE_BYTES = 2**36  # all states of one function together (64 GiB, e.g. a long KV-cache)


def verify(program: Program) -> None:
    """Raise VerificationError naming the first broken invariant."""
    if not program.functions:
        raise VerificationError("program has no functions")
    for fn in program.functions.values():
        try:
            _verify_function(program, fn)
        except VerificationError:
            raise
        except Exception as e:  # a malformed (e.g. hostile) program must not escape as anything else
            raise VerificationError(f"function {fn.name!r}: malformed program "
                                    f"({type(e).__name__}: {e})") from None


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
    symbols = {d for v in fn.inputs for d in v.type.shape if isinstance(d, str) and d.isidentifier()}
    for i, op in enumerate(fn.ops):
        at = f"{where}, op #{i} ({op.type}{' at ' + op.loc if op.loc else ''})"
        try:
            opdef = registry.get(op.type)
        except KeyError as e:
            raise VerificationError(f"{at}: {e.args[0]}") from None
        lo, hi = opdef.input_range()
        if not lo <= len(op.inputs) <= hi:
            raise VerificationError(f"{at}: takes {lo}..{hi} inputs, got {len(op.inputs)}")
        for j, name in enumerate(op.inputs):
            if name is None and j < len(opdef.inputs) and opdef.inputs[j][-1] != "?" \
                    and opdef.inputs[j][0] != "*":
                raise VerificationError(f"{at}: required input {opdef.inputs[j]!r} is missing")
            if name is not None and name not in defined:
                raise VerificationError(f"{at}: input {name!r} is not defined before use")
        try:
            attrs = opdef.with_defaults(op.attrs)
        except KeyError as e:
            raise VerificationError(f"{at}: {e.args[0]}") from None
        _check_attrs(opdef, attrs, symbols, at)
        if op.type == "const":
            if not isinstance(attrs["weight"], str):
                raise VerificationError(f"{at}: weight must be a name, got {attrs['weight']!r}")
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
            _check_size(t, f"{at}: output {v.name!r}")
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
    total = sum(_check_size(t, f"{where}: state {name!r}") for name, t in states.items())
    if total > MAX_STATE_BYTES:
        raise VerificationError(f"{where}: states need {total} bytes, more than the {MAX_STATE_BYTES} "
                                "a package may declare")
    return states


def _check_size(t: TensorType, what: str) -> int:
    """Bytes of a static type (0 if symbolic); VerificationError above MAX_TENSOR_BYTES."""
    if not all(isinstance(d, str) or type(d) is int and 0 <= d <= MAX_DIM for d in t.shape):
        raise VerificationError(f"{what}: bad dimension in {t}")
    n = t.numel()
    if n is not None and n * t.dtype.itemsize > MAX_TENSOR_BYTES:
        raise VerificationError(f"{what}: {t} is {n * t.dtype.itemsize} bytes, more than the "
                                f"{MAX_TENSOR_BYTES} a tensor may have")
    return 0 if n is None else n * t.dtype.itemsize


def _check_attrs(opdef, attrs: dict, symbols: set[str], at: str) -> None:
    """Integer attributes hold ints (not bools) or expressions over `symbols`, None only where
    that is the default, lists only where they may."""
    scalars = SCALARS.union(FLOAT_BOUNDS.get(opdef.name, ()))
    floats = FLOAT_BOUNDS.get(opdef.name, ())
    if any(isinstance(attrs.get(k), str) for k in floats):
        floats = ()  # a symbolic bound makes a count of integers: the other bounds must be ints

    def check(name, v, nested=False):
        if isinstance(v, list) and not nested and name not in scalars:
            for x in v:
                check(name, x, nested=True)
        elif isinstance(v, str):
            if not nested and name not in scalars:  # ops would take the string for a list of chars
                raise VerificationError(f"{at}: attribute {name!r} must be a list, got {v!r:.80}")
            try:
                symbolic.check(v, symbols)
            except ValueError as e:
                raise VerificationError(f"{at}: attribute {name!r}: {e}") from None
        elif v is None and not nested and opdef.attrs[name] is not None:
            raise VerificationError(f"{at}: attribute {name!r} must not be null")
        elif not (v is None or type(v) is int and abs(v) <= 2**63 or type(v) is float and name in floats):
            raise VerificationError(f"{at}: attribute {name!r} must be an integer"
                                    f"{'' if name in scalars else ' or a list of them'}"
                                    f", got {v!r:.80}")

    for name in INT_ATTRS.intersection(attrs):
        check(name, attrs[name])


def _state_op_types(op, attrs, states: dict[str, TensorType], defined, at: str) -> list[TensorType]:
    st = states.get(attrs["state"]) if isinstance(attrs["state"], str) else None
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
    except Exception as e:
        raise VerificationError(f"{at}: state {attrs['state']!r}: {e}") from None
    return [st]


def _verify_bounds(fn: Function, where: str) -> None:
    symbols = {d for v in fn.inputs for d in v.type.shape if isinstance(d, str)}
    for sym, r in fn.dim_ranges.items():
        ok = (isinstance(r, list) and len(r) == 2 and type(r[0]) is int and 0 <= r[0] <= MAX_DIM
              and (r[1] is None or type(r[1]) is int and r[0] <= r[1] <= MAX_DIM))
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
