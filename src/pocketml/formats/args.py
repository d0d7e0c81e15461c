"""Argument checks shared by the format codecs and the compressor: integers that are integers (not
bools), bit widths 1..8, axes wrapped into range, finite real arrays. Each raises ValueError
naming the argument."""
from __future__ import annotations

import numpy as np


def check_int(value, name: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be {rng}, got {value}")
    return value


def check_nbits(nbits) -> int:
    return check_int(nbits, "nbits", 1, 8)


def check_axis(axis, rank: int, name: str = "axis") -> int:
    axis = check_int(axis, name)
    if not -rank <= axis < rank:
        raise ValueError(f"{name} {axis} out of range for a rank-{rank} weight")
    return axis % rank


def check_finite(a: np.ndarray, what: str) -> None:
    if a.dtype.kind in "fc" and a.size and not np.isfinite(a).all():
        raise ValueError(f"{what} contains NaN or infinity")


def real_array(w, what: str = "weight") -> np.ndarray:
    a = np.asarray(w)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be a real array, got dtype {a.dtype}")
    check_finite(a, what)
    return a
