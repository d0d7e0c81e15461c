"""Helpers shared by the conv/pool/resize/norm/softmax/attention/recurrent lowerings."""
from __future__ import annotations

from ..builder import Builder, Var
from ..registry import Unsupported, lowering_for


def as_list(v, n: int, what: str = "argument") -> list[int]:
    """An int or a list of 1 or n ints as a list of n ints (torch's broadcasting of int lists)."""
    if isinstance(v, (list, tuple)):
        v = list(v)
        if len(v) == 1:
            return v * n
        if len(v) != n:
            raise Unsupported(f"{what} {v} should have 1 or {n} entries")
        return v
    return [v] * n


def sym_pads(p: list[int]) -> list[int]:
    """torch's symmetric padding [p0, p1, ...] as the IR's [b0, e0, b1, e1, ...]."""
    return [x for v in p for x in (v, v)]


def via(b: Builder, target: str, *args, **kwargs):
    """Emit a torch op through its registered lowering (another family's), e.g. an unsqueeze."""
    fn = lowering_for(target)
    if fn is None:
        raise Unsupported(f"needs {target}, which has no lowering yet")
    return fn(b, *args, **kwargs)


class Outputs(tuple):
    """A multi-output lowering result where some outputs cannot be produced (None).

    Taking such an output with getitem raises a ConversionError that says which output it is.
    """

    def __new__(cls, items, what: str, names: tuple[str, ...] = ()):
        self = super().__new__(cls, items)
        self.what = what
        self.names = names
        return self

    def __getitem__(self, i):
        item = super().__getitem__(i)
        if item is None:
            from ....errors import ConversionError
            name = f" ({self.names[i]})" if isinstance(i, int) and i < len(self.names) else ""
            raise ConversionError(f"{self.what}: output {i}{name} is not supported, only the main "
                                  "result; rewrite the model so it does not use it")
        return item


def check_float(x: Var, what: str) -> None:
    if not x.dtype.is_float:
        raise Unsupported(f"{what} needs a floating-point input, got {x.dtype.value}")
