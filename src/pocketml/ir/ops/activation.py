"""Activation functions (elementwise, float inputs unless noted; output has the input's type).

relu6/hardtanh are `clip`, tanh is in the elementwise family. References compute in float64 and
round once to the input dtype.
"""
from __future__ import annotations

import numpy as np

from ..registry import register
from ..types import DType
from .elementwise import FLOATS, erf64, like, quiet, upcast


def _float_same(op: str):
    def infer(types, attrs):
        x = types[0]
        if x.dtype not in FLOATS:
            raise TypeError(f"{op}: needs a float input, got {x}")
        return [x]
    return infer


def _act(name: str, attrs: dict | None = None):
    """Register a float activation whose reference maps a float64 array (and attrs) to float64."""
    def deco(fn):
        def compute(a, at):
            return like(fn(upcast(a[0]), at), a[0].dtype)
        compute.__doc__ = fn.__doc__
        register(name, inputs=("x",), infer=_float_same(name), attrs=attrs)(quiet(compute))
        return fn
    return deco


def _relu_infer(types, attrs):
    x = types[0]
    if x.dtype == DType.bool:
        raise TypeError("relu: bool input is not supported")
    return [x]


@register("relu", inputs=("x",), infer=_relu_infer)
def relu(a, attrs):
    """max(x, 0) (any numeric dtype; NaN propagates)."""
    x = a[0]
    return np.maximum(x, np.zeros((), x.dtype))


@_act("leaky_relu", attrs={"alpha": 0.01})
def leaky_relu(x, at):
    """x if x > 0 else alpha * x."""
    return np.where(x > 0, x, x * at["alpha"])


@_act("elu", attrs={"alpha": 1.0, "scale": 1.0, "input_scale": 1.0})
def elu(x, at):
    """scale * x if x > 0 else scale * alpha * (exp(input_scale * x) - 1); covers selu and celu."""
    neg = at["alpha"] * np.expm1(np.minimum(x, 0) * at["input_scale"])
    return at["scale"] * np.where(x > 0, x, neg)


@_act("gelu", attrs={"approximate": "none"})
def gelu(x, at):
    """x * Φ(x): approximate "none" uses erf, "tanh" the tanh approximation (like torch)."""
    if at["approximate"] == "tanh":
        inner = np.sqrt(2.0 / np.pi) * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1.0 + np.tanh(inner))
    if at["approximate"] != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {at['approximate']!r}")
    return 0.5 * x * (1.0 + erf64(x * np.sqrt(0.5)))


def _sigmoid64(x):
    # exp of a non-positive argument never overflows
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@_act("sigmoid")
def sigmoid(x, at):
    """1 / (1 + exp(-x))."""
    return _sigmoid64(x)


@_act("silu")
def silu(x, at):
    """x * sigmoid(x) (swish)."""
    return x * _sigmoid64(x)


@_act("hardsigmoid")
def hardsigmoid(x, at):
    """relu6(x + 3) / 6."""
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0


@_act("hardswish")
def hardswish(x, at):
    """x * relu6(x + 3) / 6."""
    return x * np.clip(x + 3.0, 0.0, 6.0) / 6.0


def _softplus64(x, beta=1.0, threshold=20.0):
    bx = x * beta
    # log1p(exp(bx)) computed stably for any bx
    sp = np.maximum(bx, 0.0) + np.log1p(np.exp(-np.abs(bx)))
    return np.where(bx > threshold, x, sp / beta)


@_act("softplus", attrs={"beta": 1.0, "threshold": 20.0})
def softplus(x, at):
    """log(1 + exp(beta * x)) / beta, or x where beta * x > threshold (like torch)."""
    return _softplus64(x, at["beta"], at["threshold"])


@_act("mish")
def mish(x, at):
    """x * tanh(softplus(x))."""
    return x * np.tanh(_softplus64(x))


@_act("log_sigmoid")
def log_sigmoid(x, at):
    """log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|))."""
    return np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x)))


def _prelu_infer(types, attrs):
    x, w = types
    if x.dtype not in FLOATS:
        raise TypeError(f"prelu: needs a float input, got {x}")
    if w.dtype != x.dtype:
        raise TypeError(f"prelu: weight {w} must have the input's dtype {x.dtype.value}")
    if w.rank != 1:
        raise TypeError(f"prelu: weight must be 1-D (channels), got {w}")
    c = w.shape[0]
    if isinstance(c, int) and c != 1:
        ch = x.shape[1] if x.rank >= 2 else None
        if ch is None or (isinstance(ch, int) and ch != c):
            raise TypeError(f"prelu: weight {w} does not match the channels (axis 1) of {x}")
    return [x]


@register("prelu", inputs=("x", "weight"), infer=_prelu_infer)
@quiet
def prelu(a, attrs):
    """x if x > 0 else weight * x, weight (C,) applied along axis 1 (or (1,) for all), like torch."""
    x, w = a
    if w.size == 1:
        alpha = upcast(w.reshape(()))
    else:
        alpha = upcast(w).reshape((1, -1) + (1,) * (x.ndim - 2))
    x64 = upcast(x)
    return like(np.where(x64 > 0, x64, alpha * x64), x.dtype)
