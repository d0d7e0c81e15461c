"""The IR: a program of named functions over typed values; weights are constants shared by all.

An `Op` reads values by name and defines new ones. A `const` op brings a weight (a key of
`Program.weights`) into a function, so several functions can share one stored weight and
compressed weights are ordinary ops over packed constants, executed where they are used.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Mapping

import numpy as np

from .types import TensorType, check_shape


@dataclass
class Value:
    name: str
    type: TensorType


@dataclass
class Op:
    """One operation. `inputs` are value names in the order its OpDef declares (None = omitted)."""
    type: str
    inputs: list[str | None]
    outputs: list[Value]
    attrs: dict[str, Any] = field(default_factory=dict)
    loc: str = ""  # where it came from in the source model: "module.path (file.py:123)"

    @property
    def output(self) -> Value:
        return self.outputs[0]


@dataclass
class State:
    """A buffer that persists across calls (e.g. a KV-cache). `init` is the weight holding its
    initial value, None for zeros."""
    name: str
    type: TensorType
    init: str | None = None


@dataclass
class Function:
    """A signature and its ops. Symbolic input dims may be bounded (`dim_ranges`: symbol ->
    [min, max], max None = unbounded) and an input may be limited to a set of shapes
    (`input_shapes`: name -> list of shapes); the runtime checks both."""
    name: str
    inputs: list[Value]
    ops: list[Op]
    outputs: list[str]  # value names, which are also the function's output names
    states: list[State] = field(default_factory=list)
    dim_ranges: dict[str, list] = field(default_factory=dict)
    input_shapes: dict[str, list[list[int]]] = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        return [v.name for v in self.inputs]

    def values(self) -> dict[str, Value]:
        """Every value defined in the function, by name (inputs first, then op outputs)."""
        out = {v.name: v for v in self.inputs}
        for op in self.ops:
            for v in op.outputs:
                out[v.name] = v
        return out

    def output_types(self) -> list[TensorType]:
        vals = self.values()
        return [vals[n].type for n in self.outputs]

    def producers(self) -> dict[str, Op]:
        return {v.name: op for op in self.ops for v in op.outputs}

    def users(self) -> dict[str, list[Op]]:
        users: dict[str, list[Op]] = {}
        for op in self.ops:
            for name in op.inputs:
                if name is not None:
                    users.setdefault(name, []).append(op)
        return users


@dataclass
class Program:
    functions: dict[str, Function]
    weights: dict[str, np.ndarray]

    @property
    def main(self) -> Function:
        """The default function: `main` if present, else the first."""
        return self.functions.get("main") or next(iter(self.functions.values()))

    def ops(self) -> Iterator[tuple[Function, Op]]:
        for fn in self.functions.values():
            for op in fn.ops:
                yield fn, op

    def used_weights(self) -> set[str]:
        used = {op.attrs["weight"] for _, op in self.ops() if op.type == "const"}
        return used | {s.init for f in self.functions.values() for s in f.states if s.init}

    @classmethod
    def merge(cls, programs: Mapping[str, "Program"]) -> "Program":
        """One program whose functions are those of `programs` (one function each), renamed to
        their keys, over one weights table in which every distinct array is stored once.

        Weights are matched by content: equal arrays (e.g. the parameters of one torch model
        converted twice, under the same or different keys) are stored once, under the first key
        seen. Different arrays under one key are both kept: the later one's key gets its new
        function's name appended. The inputs are left as they were.
        """
        from ..errors import ConfigError

        weights: dict[str, np.ndarray] = {}
        seen: dict[tuple, str] = {}  # (dtype, shape, digest) -> key in `weights`
        functions: dict[str, Function] = {}
        for fname, program in programs.items():
            if len(program.functions) != 1:
                raise ConfigError(f"merge takes programs of one function each; {fname!r} has "
                                  f"{list(program.functions)}")
            renamed: dict[str, str] = {}
            used = program.used_weights()
            for key in [k for k in program.weights if k in used]:  # stored order
                a = program.weights[key]
                content = (a.dtype.str, a.shape,
                           hashlib.blake2b(np.ascontiguousarray(a).data, digest_size=20).digest())
                if content not in seen:
                    new = key
                    while new in weights:
                        new = f"{new}.{fname}"
                    weights[new], seen[content] = a, new
                renamed[key] = seen[content]
            fn = program.main
            ops = [replace(op, attrs={**op.attrs, "weight": renamed[op.attrs["weight"]]}) if op.type == "const"
                   else replace(op, attrs=dict(op.attrs)) for op in fn.ops]
            states = [replace(s, init=renamed[s.init] if s.init else None) for s in fn.states]
            functions[fname] = replace(fn, name=fname, inputs=list(fn.inputs), ops=ops, outputs=list(fn.outputs),
                                       states=states, dim_ranges=dict(fn.dim_ranges),
                                       input_shapes=dict(fn.input_shapes))
        return cls(functions, weights)

    # -- serialisation of the structure (weights are stored separately by the package) --
    def to_json(self) -> dict:
        return {"functions": [_function_to_json(f) for f in self.functions.values()]}

    @classmethod
    def from_json(cls, d: dict, weights: dict[str, np.ndarray]) -> "Program":
        """From a package's JSON. Packages are untrusted: any malformed structure raises
        VerificationError naming where it is, never KeyError/TypeError from deep inside."""
        from ..errors import VerificationError

        try:
            fns = [_function_from_json(f, f"function #{i}")
                   for i, f in enumerate(_get(d, "functions", list, "program"))]
        except ValueError as e:
            raise VerificationError(str(e)) from None
        functions = {}
        for f in fns:
            if f.name in functions:
                raise VerificationError(f"function {f.name!r} defined twice")
            functions[f.name] = f
        return cls(functions, weights)


def _function_to_json(f: Function) -> dict:
    return {
        "name": f.name,
        "inputs": [{"name": v.name, **v.type.to_json()} for v in f.inputs],
        "outputs": list(f.outputs),
        "ops": [{
            "type": op.type,
            "inputs": list(op.inputs),
            "outputs": [{"name": v.name, **v.type.to_json()} for v in op.outputs],
            **({"attrs": op.attrs} if op.attrs else {}),
            **({"loc": op.loc} if op.loc else {}),
        } for op in f.ops],
        **({"states": [{"name": s.name, **s.type.to_json(), **({"init": s.init} if s.init else {})}
                       for s in f.states]} if f.states else {}),
        **({"dim_ranges": f.dim_ranges} if f.dim_ranges else {}),
        **({"input_shapes": f.input_shapes} if f.input_shapes else {}),
    }


_MISSING = object()


def _get(d, key: str, kind, where: str, default=_MISSING):
    """d[key], checked to be a `kind` (ValueError naming `where` otherwise)."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: must be an object, got {type(d).__name__}")
    v = d.get(key, default)
    if v is _MISSING:
        raise ValueError(f"{where}: missing {key!r}")
    if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
        raise ValueError(f"{where}: {key!r} must be {_KIND_NAMES.get(kind, kind)}, got {v!r:.80}")
    return v


_KIND_NAMES = {list: "a list", dict: "an object", str: "a string", (str, type(None)): "a string or null"}


def _names(items, where: str, nullable: bool = False) -> list:
    for n in items:
        if not (isinstance(n, str) or nullable and n is None):
            raise ValueError(f"{where}: value names must be strings, got {n!r:.80}")
    return list(items)


def _value(d: dict, where: str) -> Value:
    name = _get(d, "name", str, where)
    try:
        return Value(name, TensorType.from_json(d))
    except ValueError as e:
        raise ValueError(f"{where} ({name!r}): {e}") from None


def _op_from_json(o, where: str) -> Op:
    type_ = _get(o, "type", str, where)
    where = f"{where} ({type_})"
    return Op(type=type_, inputs=_names(_get(o, "inputs", list, where), where, nullable=True),
              outputs=[_value(v, f"{where} output #{j}")
                       for j, v in enumerate(_get(o, "outputs", list, where))],
              attrs=dict(_get(o, "attrs", dict, where, {})), loc=_get(o, "loc", str, where, ""))


def _function_from_json(d, where: str) -> Function:
    name = _get(d, "name", str, where)
    where = f"function {name!r}"
    states = []
    for i, s in enumerate(_get(d, "states", list, where, [])):
        v = _value(s, f"{where} state #{i}")
        init = _get(s, "init", (str, type(None)), f"{where} state {v.name!r}", None)
        states.append(State(v.name, v.type, init))
    ranges = {}
    for k, r in _get(d, "dim_ranges", dict, where, {}).items():
        if not (isinstance(r, list) and len(r) == 2 and all(type(x) is int or x is None for x in r)):
            raise ValueError(f"{where}: range of {k!r} must be [min, max] of ints (max null), got {r!r:.80}")
        ranges[k] = list(r)
    shapes = {}
    for k, v in _get(d, "input_shapes", dict, where, {}).items():
        try:
            if not isinstance(v, list):
                raise ValueError("a list of shapes expected")
            shapes[k] = [list(check_shape(x)) for x in v]
            if any(isinstance(n, str) for x in shapes[k] for n in x):
                raise ValueError("enumerated shapes hold ints only")
        except ValueError as e:
            raise ValueError(f"{where}: input_shapes of {k!r}: {e}") from None
    return Function(
        name=name,
        inputs=[_value(v, f"{where} input #{i}") for i, v in enumerate(_get(d, "inputs", list, where))],
        outputs=_names(_get(d, "outputs", list, where), f"{where} outputs"),
        ops=[_op_from_json(o, f"{where} op #{i}") for i, o in enumerate(_get(d, "ops", list, where))],
        states=states, dim_ranges=ranges, input_shapes=shapes,
    )
