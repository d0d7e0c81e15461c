"""Type-inference helpers shared by op definitions."""
from __future__ import annotations

from ..types import DType, TensorType, broadcast_shapes


def same(index: int = 0):
    """Output has the type of input `index`."""
    return lambda types, attrs: [types[index]]


def broadcast(dtype: DType | None = None):
    """Output shape broadcasts all (non-None) inputs; dtype of the first input unless given."""
    def infer(types, attrs):
        present = [t for t in types if t is not None]
        return [TensorType(dtype or present[0].dtype, broadcast_shapes(*(t.shape for t in present)))]
    return infer


def norm_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0
