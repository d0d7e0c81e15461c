"""Table of lowerings from torch ops (by their string name, e.g. "aten.add.Tensor") to IR ops.

A lowering is `fn(b: Builder, *args, **kwargs)` where tensor arguments arrive as `Var`s, lists
stay lists, and scalars, dtypes and devices arrive as Python objects. It returns a Var, a tuple of
Vars (multi-output ops) or a Python scalar.
"""
from __future__ import annotations

from typing import Callable

LOWERINGS: dict[str, Callable] = {}


class Unsupported(Exception):
    """Raised by a lowering for an argument combination it cannot express; becomes ConversionError."""


def lowers(*targets: str):
    def deco(fn):
        for t in targets:
            if t in LOWERINGS:
                raise ValueError(f"lowering for {t!r} registered twice")
            LOWERINGS[t] = fn
        return fn
    return deco


def lowering_for(target: str) -> Callable | None:
    from . import lowerings  # noqa: F401  (registers every family)
    return LOWERINGS.get(target)


def supported_targets() -> list[str]:
    from . import lowerings  # noqa: F401
    return sorted(LOWERINGS)
