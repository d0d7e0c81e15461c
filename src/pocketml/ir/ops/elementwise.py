"""Elementwise arithmetic, comparison and logic ops (NumPy broadcasting)."""
import numpy as np

from ._infer import broadcast
from ..registry import register


@register("add", inputs=("x", "y"), infer=broadcast())
def add(a, attrs):
    """x + y."""
    return np.add(a[0], a[1])
