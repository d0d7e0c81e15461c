"""Tensor types of the IR: a dtype and a shape whose dimensions are ints or symbol names.

Symbolic dimensions (strings such as "seq") let one program serve several shapes; the runtime binds
them from the actual inputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Union

import numpy as np

Dim = Union[int, str]
MAX_DIM = 2**62  # bound on one stored dimension: far above any real size, far below int64 overflow


class DType(str, Enum):
    float32 = "float32"
    float16 = "float16"
    int64 = "int64"
    int32 = "int32"
    int16 = "int16"
    int8 = "int8"
    uint8 = "uint8"
    bool = "bool"

    @property
    def np(self) -> np.dtype:
        return np.dtype(self.value)

    @property
    def is_float(self) -> bool:
        return self in (DType.float32, DType.float16)

    @property
    def itemsize(self) -> int:
        return self.np.itemsize

    @classmethod
    def of(cls, dtype) -> "DType":
        """The IR dtype of a NumPy dtype (or anything np.dtype accepts)."""
        try:
            return cls(np.dtype(dtype).name)
        except (TypeError, ValueError):
            raise TypeError(f"dtype {dtype!r} has no pocketml equivalent; supported: "
                            f"{', '.join(d.value for d in cls)}") from None


@dataclass(frozen=True)
class TensorType:
    dtype: DType
    shape: tuple[Dim, ...]

    def __post_init__(self):
        object.__setattr__(self, "dtype", DType(self.dtype))
        object.__setattr__(self, "shape", tuple(self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    def numel(self) -> int | None:
        if not self.is_static:
            return None
        return math.prod(self.shape)  # exact: np.prod would wrap around on hostile shapes

    @classmethod
    def of(cls, array: np.ndarray) -> "TensorType":
        return cls(DType.of(array.dtype), tuple(int(d) for d in array.shape))

    def to_json(self) -> dict:
        return {"dtype": self.dtype.value, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, d: dict) -> "TensorType":
        """From a package's JSON; ValueError naming what is malformed (packages are untrusted)."""
        if not isinstance(d, dict):
            raise ValueError(f"a type must be an object, got {type(d).__name__}")
        dtype, shape = d.get("dtype"), d.get("shape")
        if not isinstance(dtype, str) or dtype not in DType.__members__:
            raise ValueError(f"unknown dtype {dtype!r}")
        return cls(DType(dtype), check_shape(shape))

    def __str__(self) -> str:
        return f"{self.dtype.value}[{', '.join(str(d) for d in self.shape)}]"


def check_shape(shape) -> tuple[Dim, ...]:
    """A JSON shape as a tuple: each dimension an int in [0, MAX_DIM] (never a bool) or a symbol
    name / expression label; ValueError otherwise."""
    if not isinstance(shape, list):
        raise ValueError(f"a shape must be a list, got {shape!r:.80}")
    for d in shape:
        if not (type(d) is int and 0 <= d <= MAX_DIM or type(d) is str and d):
            raise ValueError(f"bad dimension {d!r:.80} in shape (an int in [0, 2**62] or a symbol)")
    return tuple(shape)


def broadcast_shapes(*shapes: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """NumPy broadcasting over possibly-symbolic shapes (a symbol broadcasts with 1 and itself)."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0}
        dims.discard(1)
        if not dims:
            out.append(1)
        elif len(dims) == 1:
            out.append(dims.pop())
        else:
            ints = {d for d in dims if isinstance(d, int)}
            if len(ints) > 1:
                raise ValueError(f"shapes {shapes} do not broadcast")
            out.append(ints.pop() if ints else sorted(dims)[0])
    return tuple(out)
