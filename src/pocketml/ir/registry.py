"""The op registry: each op declares its inputs, attributes, type inference and one NumPy reference.

Input specs: "x" required, "bias?" optional (None when omitted), "*xs" variadic (last only).
Attribute specs: name -> default, with `REQUIRED` for attributes that must be given.
`infer(types, attrs)` returns the output TensorTypes; `compute(arrays, attrs)` returns the outputs
as NumPy arrays. Both get positional lists matching the declared inputs (variadic flattened last).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .types import TensorType

REQUIRED = object()

InferFn = Callable[[list, dict], list[TensorType]]
ComputeFn = Callable[[list, dict], list[np.ndarray]]


@dataclass(frozen=True)
class OpDef:
    name: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any]
    infer: InferFn
    compute: ComputeFn
    doc: str = ""
    const_foldable: bool = True
    # which input is a weight the compressor may encode, and its axes:
    # (input index, output-channel axis, input axis), negative axes counted from the end
    weight: tuple[int, int, int] | None = None

    @property
    def variadic(self) -> bool:
        return bool(self.inputs) and self.inputs[-1].startswith("*")

    def input_range(self) -> tuple[int, float]:
        """(min, max) number of inputs accepted."""
        required = sum(1 for s in self.inputs if not s.endswith("?") and not s.startswith("*"))
        return required, float("inf") if self.variadic else len(self.inputs)

    def with_defaults(self, attrs: dict) -> dict:
        """Attributes with defaults filled in; raises KeyError naming a missing or unknown one."""
        unknown = set(attrs) - set(self.attrs)
        if unknown:
            raise KeyError(f"op {self.name!r} has no attribute(s) {sorted(unknown)}; "
                           f"it accepts {sorted(self.attrs)}")
        out = {}
        for k, default in self.attrs.items():
            if k in attrs:
                out[k] = attrs[k]
            elif default is REQUIRED:
                raise KeyError(f"op {self.name!r} needs attribute {k!r}")
            else:
                out[k] = default
        return out


_REGISTRY: dict[str, OpDef] = {}


def register(name: str, inputs: tuple[str, ...], infer: InferFn, attrs: dict | None = None,
             const_foldable: bool = True,
             weight: tuple[int, int, int] | None = None) -> Callable[[ComputeFn], ComputeFn]:
    """Decorator registering `compute` as the NumPy reference of op `name`.

    `compute` may return one array or a list of arrays.
    """
    def deco(fn):
        def compute(*args, _fn=fn):  # (arrays, attrs); state ops get (state, arrays, attrs)
            out = _fn(*args)
            return list(out) if isinstance(out, (list, tuple)) else [out]
        if name in _REGISTRY:
            raise ValueError(f"op {name!r} registered twice")
        _REGISTRY[name] = OpDef(name, tuple(inputs), dict(attrs or {}), infer, compute,
                                doc=(fn.__doc__ or "").strip(), const_foldable=const_foldable,
                                weight=weight)
        return fn
    return deco


def get(name: str) -> OpDef:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}") from None


def all_ops() -> dict[str, OpDef]:
    _load_all()
    return dict(_REGISTRY)


def _load_all() -> None:
    from . import ops  # noqa: F401  (registers every op family)
