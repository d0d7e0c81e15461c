"""State ops: buffers that persist across calls (a KV-cache), like Core ML's states.

A function declares its states (`Function.states`); these ops name one in `attrs["state"]`. The
verifier types them from the declaration and the executor gives each compute function the
state's live array as its first argument, so an update writes in place: a decode step that adds
one token to the cache touches that token's slice only, never a copy of the whole cache.
Semantics are ordered: a read sees every earlier write of the same call.
"""
from __future__ import annotations

import numpy as np

from ..registry import REQUIRED, register
from ..types import broadcast_shapes
from .shape import _slice_infer, slice_index

STATE_OPS = ("read_state", "write_state", "update_state_slice")


def _typed_by_declaration(types, attrs):
    raise TypeError("state ops are typed by the function's state declarations")


@register("read_state", inputs=(), infer=_typed_by_declaration, attrs={"state": REQUIRED},
          const_foldable=False)
def read_state(state: np.ndarray, a, attrs):
    """The state's current value (the live array: ops never modify their inputs)."""
    return state


@register("write_state", inputs=("value",), infer=_typed_by_declaration, attrs={"state": REQUIRED},
          const_foldable=False)
def write_state(state: np.ndarray, a, attrs):
    """state := value (same shape and dtype). No outputs."""
    np.copyto(state, a[0])
    return []


@register("update_state_slice", inputs=("update",), infer=_typed_by_declaration,
          attrs={"state": REQUIRED, "axes": REQUIRED, "begin": REQUIRED, "end": REQUIRED, "step": None},
          const_foldable=False)
def update_state_slice(state: np.ndarray, a, attrs):
    """state[begin:end:step] (on `axes`, as `slice_update`) := update, in place; returns the state."""
    state[slice_index(state.ndim, attrs)] = a[0]
    return state


def check_update(state_type, update_type, attrs) -> None:
    """The update must fit the slice it writes (raises ValueError naming both)."""
    if update_type.dtype != state_type.dtype:
        raise ValueError(f"update dtype {update_type.dtype.value} differs from the state's "
                         f"{state_type.dtype.value}")
    region = _slice_infer([state_type], attrs)[0]
    if update_type.rank > state_type.rank or (
            region.is_static and broadcast_shapes(update_type.shape, region.shape) != region.shape):
        raise ValueError(f"update {update_type.shape} does not fit the slice {region.shape}")
