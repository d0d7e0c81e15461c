"""Input declarations for `pm.convert`: names, dtypes and flexible shapes (like Core ML's).

    pm.TensorType("input_ids", (1, pm.RangeDim(1, 2048, default=16, name="seq")), dtype=np.int64)
    pm.TensorType("image", pm.EnumeratedShapes([(1, 3, 224, 224), (1, 3, 256, 256)]))

A `RangeDim` becomes a symbolic dimension bounded by [lower, upper]; `EnumeratedShapes` limits an
input to a set of shapes. The runtime rejects inputs outside them with an `InputError`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import ConfigError


@dataclass(frozen=True)
class RangeDim:
    lower: int = 1
    upper: int | None = None
    default: int | None = None
    name: str | None = None  # dims with one name are one symbol (e.g. a shared sequence length)

    def __post_init__(self):
        ok = isinstance(self.lower, int) and self.lower >= 0 and (
            self.upper is None or isinstance(self.upper, int) and self.upper >= self.lower)
        if not ok:
            raise ConfigError(f"RangeDim needs 0 <= lower <= upper, got lower={self.lower!r}, "
                              f"upper={self.upper!r}")
        if self.default is not None and not (self.lower <= self.default <= (self.upper or self.default)):
            raise ConfigError(f"RangeDim default {self.default} is outside [{self.lower}, {self.upper}]")
        if self.name is not None and not (isinstance(self.name, str) and self.name.isidentifier()):
            raise ConfigError(f"RangeDim name must be an identifier, got {self.name!r}")

    def example(self) -> int:
        """A size to trace with: the default, else one above 1 (torch specialises sizes 0 and 1)."""
        if self.default is not None:
            return self.default
        n = max(self.lower, 2)
        return n if self.upper is None or n <= self.upper else self.lower


@dataclass(frozen=True)
class EnumeratedShapes:
    shapes: tuple[tuple[int, ...], ...]
    default: tuple[int, ...] | None = None

    def __init__(self, shapes: Sequence[Sequence[int]], default: Sequence[int] | None = None):
        shapes = tuple(tuple(int(d) for d in s) for s in shapes)
        if not shapes or len({len(s) for s in shapes}) != 1:
            raise ConfigError(f"EnumeratedShapes needs one or more shapes of one rank, got {shapes}")
        if default is not None and tuple(default) not in shapes:
            raise ConfigError(f"EnumeratedShapes default {tuple(default)} is not among {shapes}")
        object.__setattr__(self, "shapes", shapes)
        object.__setattr__(self, "default", tuple(default) if default is not None else None)


@dataclass(frozen=True)
class TensorType:
    """A model input: name, shape (ints, RangeDims, or EnumeratedShapes) and dtype."""
    name: str
    shape: Sequence[int | RangeDim] | EnumeratedShapes
    dtype: object = np.float32

    def example(self, rng: np.random.Generator) -> np.ndarray:
        if isinstance(self.shape, EnumeratedShapes):
            shape = self.shape.default or max(self.shape.shapes, key=lambda s: (min(s) > 1, s))
        else:
            shape = tuple(d.example() if isinstance(d, RangeDim) else int(d) for d in self.shape)
        dtype = np.dtype(self.dtype)
        if dtype.kind == "f":
            return rng.standard_normal(shape).astype(dtype)
        return np.zeros(shape, dtype)
