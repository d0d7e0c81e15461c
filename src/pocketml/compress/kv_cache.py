"""The int8 KV cache: a stateful model's keys and values stored as int8 rows, each with a scale.

A float32 state that only attention reads as keys or values (through slices of its rows, as a
KV cache's live part is) becomes two states: the int8 rows under its own name and their float32
scales (`<name>_scale`, [..., 1]). Each write quantizes the rows it writes (`quantize_rows`), each
read slices both and dequantizes where the attention reads (`dequantize_rows`, which the native
attention reads in place). The cache takes 0.27x its float32 bytes (64 int8 values and one scale
a row of 64), so a long context costs a quarter of the memory and of the bandwidth each decoded
token reads; the values round to 1/254 of each row's largest, as llama.cpp's q8_0 cache does.
"""
from __future__ import annotations

import copy

from ..errors import ConfigError
from ..ir.ops.rowquant import scale_type
from ..ir.program import Function, Op, Program, State, Value
from ..ir.types import DType, TensorType

KV_CACHE_MODES = ("int8",)
_ATTENTION = "scaled_dot_product_attention"


def quantize_kv_cache(program: Program, mode: str = "int8") -> tuple[Program, list[str]]:
    """A new program with every function's KV-cache states in int8 rows, and the names of those
    states (`ConfigError` where there are none, or for another mode)."""
    if mode not in KV_CACHE_MODES:
        raise ConfigError(f"kv_cache must be one of {list(KV_CACHE_MODES)}, got {mode!r}")
    functions, done = {}, []
    for name, fn in program.functions.items():
        cached = _kv_states(fn)
        functions[name] = _rewrite(fn, cached) if cached else copy.deepcopy(fn)
        done += [f"{name}.{s}" for s in cached]
    if not done:
        raise ConfigError("kv_cache: the model has no KV cache (a float32 state that only attention reads "
                          "as keys or values, written a row at a time); convert it with its cache as "
                          "states (e.g. `pocketml zoo convert smollm2`)")
    return Program(functions, dict(program.weights)), done


def _kv_states(fn: Function) -> list[str]:
    """The float32 states, zero at start, whose writes cover whole rows and whose values reach only
    the keys or values of attention, through slices that keep whole rows."""
    users = fn.users()
    out = []
    for st in fn.states:
        t = st.type
        if st.init is not None or t.dtype != DType.float32 or t.rank < 2 or not isinstance(t.shape[-1], int):
            continue
        ops = [op for op in fn.ops if op.attrs.get("state") == st.name]
        read = [op.outputs[0].name for op in ops if op.outputs]
        if any(users.get(v) for v in read) and all(_keeps_rows(op, t.rank) for op in ops) and all(
                _only_attended(v, users, t.rank) for v in read):
            out.append(st.name)
    return out


def _keeps_rows(op: Op, rank: int) -> bool:
    """An op that reads or writes whole rows of the last axis."""
    if op.type == "update_state_slice" or op.type == "slice":
        return all(isinstance(a, int) and a % rank != rank - 1 for a in op.attrs["axes"])
    return op.type in ("read_state", "write_state")


def _only_attended(name: str, users: dict, rank: int) -> bool:
    return all(
        (op.type == "slice" and _keeps_rows(op, rank) and _only_attended(op.outputs[0].name, users, rank))
        or (op.type == _ATTENTION and name in op.inputs[1:3] and name not in (op.inputs[0], *op.inputs[3:]))
        for op in users.get(name, []))


def _rewrite(fn: Function, cached: list[str]) -> Function:
    types = {name: v.type for name, v in fn.values().items()}
    taken = set(types) | {s.name for s in fn.states}

    def fresh(base: str) -> str:
        name, i = base, 1
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        taken.add(name)
        return name

    def pair(like: str) -> tuple[Value, Value]:
        """New int8 rows and scales of the shape of value `like`."""
        t = types[like]
        return Value(fresh(f"{like}_q"), TensorType(DType.int8, t.shape)), Value(fresh(f"{like}_scale"), scale_type(t))

    states, scale_of = [], {}
    for st in fn.states:
        if st.name in cached:
            scale_of[st.name] = fresh(f"{st.name}_scale")
            states += [State(st.name, TensorType(DType.int8, st.type.shape)),
                       State(scale_of[st.name], scale_type(st.type))]
        else:
            states.append(copy.deepcopy(st))
    split: dict[str, tuple[str, str]] = {}  # a float value of a cache -> its int8 rows and scales
    ops: list[Op] = []
    for op in fn.ops:
        state = op.attrs.get("state")
        if state in scale_of:
            rows, scales = {**op.attrs, "state": state}, {**op.attrs, "state": scale_of[state]}
            written = []
            if op.type != "read_state":  # the rows written, quantized
                q, s = pair(op.inputs[0])
                ops.append(Op("quantize_rows", [op.inputs[0]], [q, s], loc=op.loc))
                written = [[q.name], [s.name]]
            if op.type == "write_state":
                ops += [Op(op.type, written[0], [], rows, op.loc), Op(op.type, written[1], [], scales, op.loc)]
                continue
            vq, vs = pair(op.outputs[0].name)
            ops += [Op(op.type, written[0] if written else [], [vq], rows, op.loc),
                    Op(op.type, written[1] if written else [], [vs], scales, op.loc)]
            split[op.outputs[0].name] = (vq.name, vs.name)
            continue
        if op.type == "slice" and op.inputs[0] in split:
            vq, vs = pair(op.outputs[0].name)
            q, s = split[op.inputs[0]]
            ops += [Op("slice", [q], [vq], dict(op.attrs), op.loc), Op("slice", [s], [vs], dict(op.attrs), op.loc)]
            split[op.outputs[0].name] = (vq.name, vs.name)
            continue
        for name in dict.fromkeys(n for n in op.inputs if n in split):
            # the attention's keys or values, read as floats under the name of the slice they replace
            ops.append(Op("dequantize_rows", list(split.pop(name)), [Value(name, types[name])], loc=op.loc))
        ops.append(copy.deepcopy(op))
    out = copy.deepcopy(fn)
    out.ops, out.states = ops, states
    return out

