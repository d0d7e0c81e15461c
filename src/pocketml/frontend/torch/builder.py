"""Builder: what a lowering uses to emit IR ops into the function under construction."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...ir import registry
from ...ir.program import Op, Value
from ...ir.types import DType, TensorType


@dataclass(frozen=True)
class Var:
    """A tensor value as lowerings see it: its IR name and type."""
    name: str
    type: TensorType

    @property
    def shape(self):
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def rank(self) -> int:
        return self.type.rank


class Builder:
    def __init__(self, weights: dict[str, np.ndarray]):
        self.ops: list[Op] = []
        self.weights = weights
        self.states: dict[str, TensorType] = {}  # declared states, by name
        self.loc = ""
        self._names: dict[str, int] = {}
        self._const_cache: dict[tuple, Var] = {}

    def fresh(self, hint: str) -> str:
        n = self._names.get(hint, 0)
        self._names[hint] = n + 1
        return hint if n == 0 else f"{hint}_{n}"

    def op(self, type: str, inputs: list, attrs: dict | None = None, name: str | None = None):
        """Emit op `type`; returns its Var (or a tuple of Vars for a multi-output op).

        Output types come from the op's own type inference, so a lowering cannot lie about them.
        """
        opdef = registry.get(type)
        attrs = {k: _plain(v) for k, v in (attrs or {}).items()}
        full = opdef.with_defaults(attrs)
        in_names = [None if v is None else v.name for v in inputs]
        if type == "const":
            types = [TensorType.of(self.weights[full["weight"]])]
        elif type == "read_state":
            types = [self.states[full["state"]]]
        elif type == "write_state":
            types = []
        else:
            types = opdef.infer([None if v is None else v.type for v in inputs], full)
        base = name or type
        outs = [Value(self.fresh(base), t) for t in types]
        self.ops.append(Op(type, in_names, outs, attrs, self.loc))
        vs = tuple(Var(v.name, v.type) for v in outs)
        return vs[0] if len(vs) == 1 else (vs or None)

    def weight(self, name: str, array: np.ndarray) -> Var:
        """A const op reading stored weight `name` (registered once)."""
        array = np.ascontiguousarray(array).reshape(np.shape(array))  # keeps 0-d arrays 0-d
        self.weights.setdefault(name, array)
        return self.op("const", [], {"weight": name}, name=_ident(name))

    def const(self, value, dtype: DType | str | None = None) -> Var:
        """A small literal (scalar or array) as a const op; identical literals are shared."""
        arr = np.asarray(value, dtype=None if dtype is None else DType(dtype).np)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._const_cache:
            name = self.fresh("literal")
            self.weights[name] = np.ascontiguousarray(arr).reshape(arr.shape)  # keeps 0-d arrays 0-d
            self._const_cache[key] = self.op("const", [], {"weight": name}, name=name)
        return self._const_cache[key]


def _ident(name: str) -> str:
    return name.replace(".", "_")


def _plain(v):
    """Attributes must be JSON: tuples become lists, numpy scalars become Python ones."""
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, DType):
        return v.value
    return v
