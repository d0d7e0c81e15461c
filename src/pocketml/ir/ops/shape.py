"""Shape and layout ops: reshape, transpose, expand, squeeze/expand_dims, concat, split, slice,
tile, flip, pad.

None of these computes anything: each moves, copies or repeats elements. Attributes name axes
(negative axes count from the end) and sizes as ints. Dimensions of input types may be symbolic
(strings); type inference passes a symbol through where the op keeps that dimension and otherwise
names the derived dimension by an expression such as "seq+2" (a label, not bound at run time).
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import REQUIRED, register
from ..types import Dim, TensorType

BIG = 2**63 - 1  # "to the end" in slice ends (what torch uses)
TO_END = 2**62  # any slice end at least this large means "to the end"


# -- helpers shared by the shape, indexing and creation families ---------------------------------

def axis_of(axis: int, rank: int) -> int:
    """`axis` in [0, rank), accepting negatives; ValueError when out of range."""
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis % rank


def axes_of(axes, rank: int) -> list[int]:
    out = [axis_of(a, rank) for a in axes]
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {list(axes)}")
    return out


def dim_add(d: Dim, k: int) -> Dim:
    if isinstance(d, int):
        return d + k
    return d if k == 0 else f"{d}{'+' if k > 0 else '-'}{abs(k)}"


def dim_mul(d: Dim, k: int) -> Dim:
    if isinstance(d, int):
        return d * k
    return d if k == 1 else f"{d}*{k}"


def dim_sum(dims) -> Dim:
    dims = list(dims)
    ints = sum(d for d in dims if isinstance(d, int))
    syms = [d for d in dims if isinstance(d, str)]
    if not syms:
        return ints
    return "+".join(syms + ([str(ints)] if ints else []))


def dims_equal(a: Dim, b: Dim) -> bool:
    """False only when both are ints and differ (a symbol may equal anything)."""
    return not (isinstance(a, int) and isinstance(b, int) and a != b)


def slice_len(d: Dim, begin: int, end: int, step: int) -> Dim:
    """Length of d[begin:end:step] with Python's clamping of out-of-range and negative bounds."""
    if step == 0:
        raise ValueError("slice step must not be 0")
    if isinstance(begin, str) or isinstance(end, str):  # symbolic bounds, in range by construction
        if step != 1:
            raise ValueError("slice with symbolic bounds needs step 1")
        if isinstance(end, int) and end >= TO_END:
            end = d
        return f"{end}" if begin == 0 else f"({end})-({begin})"
    if isinstance(d, int):
        return len(range(*slice(begin, end, step).indices(d)))
    if begin == 0 and end >= TO_END and step == 1:
        return d
    e = "" if end >= TO_END else str(end)
    return f"{d}[{begin}:{e}{'' if step == 1 else ':' + str(step)}]"


def float_attr(v):
    """A scalar as a JSON-safe attribute: non-finite floats become "inf", "-inf" or "nan"."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    v = float(v)
    if math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def scalar_value(v, dtype: np.dtype):
    """The attribute scalar `v` (maybe "inf"/"-inf"/"nan") as a 0-d array of `dtype`."""
    if isinstance(v, str):
        v = float(v)
    if dtype == np.bool_:
        return np.asarray(bool(v))
    if np.issubdtype(dtype, np.integer) and isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot fill an integer tensor with {v}")
        v = int(v)
    return np.asarray(v).astype(dtype)


# -- reshape ----------------------------------------------------------------------------------

def _reshape_infer(types, attrs):
    x = types[0]
    shape = list(attrs["shape"])
    if sum(1 for d in shape if d == -1) > 1:
        raise ValueError(f"reshape: at most one -1 in shape {shape}")
    if any(isinstance(d, int) and d < -1 for d in shape):
        raise ValueError(f"reshape: invalid dimension in shape {shape}")
    known = [d for d in shape if d != -1]
    if x.is_static and all(isinstance(d, int) for d in known):
        n = x.numel()
        k = math.prod(known)
        if -1 in shape:
            if k == 0 or n % k:
                raise ValueError(f"reshape: cannot reshape {x.shape} into {shape}")
            shape[shape.index(-1)] = n // k
        elif k != n:
            raise ValueError(f"reshape: cannot reshape {x.shape} ({n} elements) into {shape}")
        return [TensorType(x.dtype, tuple(shape))]
    if -1 in shape:  # symbolic: cancel the symbols common to both sides, divide the ints
        syms = [d for d in x.shape if isinstance(d, str)]
        extra = False
        for d in known:
            if isinstance(d, str):
                if d in syms:
                    syms.remove(d)
                else:
                    extra = True
        p = math.prod(d for d in x.shape if isinstance(d, int))
        k = math.prod(d for d in known if isinstance(d, int))
        if extra or k == 0:
            dim: Dim = "?"
        elif p % k == 0:
            r = p // k
            dim = "*".join(syms + ([str(r)] if r != 1 else [])) if syms else r
        else:
            dim = f"{'*'.join(syms) or 1}*{p}/{k}"
        shape[shape.index(-1)] = dim
    return [TensorType(x.dtype, tuple(shape))]


@register("reshape", inputs=("x",), infer=_reshape_infer, attrs={"shape": REQUIRED})
def reshape(a, attrs):
    """x with a new shape of the same number of elements (row-major); one dim may be -1."""
    return np.reshape(a[0], attrs["shape"])


# -- transpose --------------------------------------------------------------------------------

def _transpose_infer(types, attrs):
    x = types[0]
    perm = axes_of(attrs["perm"], x.rank)
    if len(perm) != x.rank:
        raise ValueError(f"transpose: perm {attrs['perm']} does not match rank {x.rank}")
    return [TensorType(x.dtype, tuple(x.shape[p] for p in perm))]


@register("transpose", inputs=("x",), infer=_transpose_infer, attrs={"perm": REQUIRED})
def transpose(a, attrs):
    """Axes permuted: output axis i is input axis perm[i]."""
    return np.transpose(a[0], attrs["perm"])


# -- expand -----------------------------------------------------------------------------------

def _expand_shape(xshape, shape):
    if len(shape) < len(xshape):
        raise ValueError(f"expand: target {list(shape)} has lower rank than input {list(xshape)}")
    lead = len(shape) - len(xshape)
    out = []
    for i, t in enumerate(shape):
        if i < lead:
            if isinstance(t, int) and t < 0:
                raise ValueError(f"expand: new leading dimension {t} must be >= 0")
            out.append(t)
            continue
        d = xshape[i - lead]
        if t == -1:
            out.append(d)
        elif d == 1 or d == t:
            out.append(t)
        elif isinstance(d, int) and isinstance(t, int):
            raise ValueError(f"expand: cannot expand {list(xshape)} to {list(shape)}")
        else:
            out.append(t if isinstance(t, int) else d)
    return tuple(out)


@register("expand", inputs=("x",), attrs={"shape": REQUIRED},
          infer=lambda t, a: [TensorType(t[0].dtype, _expand_shape(t[0].shape, a["shape"]))])
def expand(a, attrs):
    """x broadcast to `shape` (NumPy rules; new dims are prepended); -1 keeps x's dimension."""
    x = a[0]
    return np.broadcast_to(x, _expand_shape(x.shape, attrs["shape"]))


# -- squeeze / expand_dims --------------------------------------------------------------------

def _squeeze_infer(types, attrs):
    x = types[0]
    axes = axes_of(attrs["axes"], x.rank)
    for ax in axes:
        if isinstance(x.shape[ax], int) and x.shape[ax] != 1:
            raise ValueError(f"squeeze: axis {ax} has size {x.shape[ax]}, not 1")
    return [TensorType(x.dtype, tuple(d for i, d in enumerate(x.shape) if i not in axes))]


@register("squeeze", inputs=("x",), infer=_squeeze_infer, attrs={"axes": REQUIRED})
def squeeze(a, attrs):
    """x without the size-1 axes `axes`."""
    return np.squeeze(a[0], axis=tuple(attrs["axes"]))


def _expand_dims_infer(types, attrs):
    x = types[0]
    rank = x.rank + len(attrs["axes"])
    axes = axes_of(attrs["axes"], rank)
    it = iter(x.shape)
    return [TensorType(x.dtype, tuple(1 if i in axes else next(it) for i in range(rank)))]


@register("expand_dims", inputs=("x",), infer=_expand_dims_infer, attrs={"axes": REQUIRED})
def expand_dims(a, attrs):
    """x with new size-1 axes at positions `axes` of the output."""
    return np.expand_dims(a[0], tuple(attrs["axes"]))


# -- concat / split ---------------------------------------------------------------------------

def _concat_infer(types, attrs):
    if not types:
        raise ValueError("concat needs at least one input")
    first = types[0]
    ax = axis_of(attrs["axis"], first.rank)
    for t in types[1:]:
        if t.dtype != first.dtype:
            raise ValueError(f"concat: dtypes differ ({first.dtype.value} and {t.dtype.value})")
        if t.rank != first.rank:
            raise ValueError(f"concat: ranks differ ({first.shape} and {t.shape})")
        for i, (a, b) in enumerate(zip(first.shape, t.shape)):
            if i != ax and not dims_equal(a, b):
                raise ValueError(f"concat: shapes {first.shape} and {t.shape} differ off axis {ax}")
    shape = list(first.shape)
    shape[ax] = dim_sum(t.shape[ax] for t in types)
    return [TensorType(first.dtype, tuple(shape))]


@register("concat", inputs=("*xs",), infer=_concat_infer, attrs={"axis": REQUIRED})
def concat(a, attrs):
    """The inputs joined along `axis` (same dtype; equal sizes on every other axis)."""
    return np.concatenate(a, axis=attrs["axis"])


def _split_infer(types, attrs):
    x = types[0]
    ax = axis_of(attrs["axis"], x.rank)
    sizes = list(attrs["sizes"])
    if not sizes or any(s < 0 for s in sizes):
        raise ValueError(f"split: invalid sizes {sizes}")
    if isinstance(x.shape[ax], int) and sum(sizes) != x.shape[ax]:
        raise ValueError(f"split: sizes {sizes} do not sum to dimension {x.shape[ax]} of axis {ax}")
    out = []
    for s in sizes:
        shape = list(x.shape)
        shape[ax] = s
        out.append(TensorType(x.dtype, tuple(shape)))
    return out


@register("split", inputs=("x",), infer=_split_infer, attrs={"sizes": REQUIRED, "axis": 0})
def split(a, attrs):
    """x cut along `axis` into consecutive pieces of `sizes` (one output per size)."""
    return np.split(a[0], np.cumsum(attrs["sizes"])[:-1], axis=attrs["axis"])


# -- slice ------------------------------------------------------------------------------------

def _slice_params(rank, attrs):
    axes = axes_of(attrs["axes"], rank)
    n = len(axes)
    begin, end = list(attrs["begin"]), list(attrs["end"])
    step = list(attrs["step"]) if attrs["step"] is not None else [1] * n
    if not len(begin) == len(end) == len(step) == n:
        raise ValueError("slice: axes, begin, end and step must have the same length")
    return axes, begin, end, step


def _slice_infer(types, attrs):
    x = types[0]
    shape = list(x.shape)
    for ax, b, e, s in zip(*_slice_params(x.rank, attrs)):
        shape[ax] = slice_len(x.shape[ax], b, e, s)
    return [TensorType(x.dtype, tuple(shape))]


def slice_index(rank, attrs) -> tuple:
    idx = [slice(None)] * rank
    for ax, b, e, s in zip(*_slice_params(rank, attrs)):
        idx[ax] = slice(b, e, s)
    return tuple(idx)


@register("slice", inputs=("x",), infer=_slice_infer,
          attrs={"axes": REQUIRED, "begin": REQUIRED, "end": REQUIRED, "step": None})
def slice_(a, attrs):
    """x[begin:end:step] on each of `axes` (Python semantics: negatives count from the end,
    out-of-range bounds clamp; end >= 2**62 means "to the end"); step defaults to 1."""
    x = a[0]
    return x[slice_index(x.ndim, attrs)]


# -- tile / flip ------------------------------------------------------------------------------

def _tile_infer(types, attrs):
    x = types[0]
    reps = list(attrs["reps"])
    if len(reps) != x.rank or any(r < 0 for r in reps):
        raise ValueError(f"tile: reps {reps} must be one non-negative count per axis of {x.shape}")
    return [TensorType(x.dtype, tuple(dim_mul(d, r) for d, r in zip(x.shape, reps)))]


@register("tile", inputs=("x",), infer=_tile_infer, attrs={"reps": REQUIRED})
def tile(a, attrs):
    """x repeated reps[i] times along each axis i (torch.Tensor.repeat, np.tile)."""
    return np.tile(a[0], attrs["reps"])


def _flip_infer(types, attrs):
    axes_of(attrs["axes"], types[0].rank)
    return [types[0]]


@register("flip", inputs=("x",), infer=_flip_infer, attrs={"axes": REQUIRED})
def flip(a, attrs):
    """x reversed along `axes`."""
    return np.flip(a[0], axis=tuple(attrs["axes"]))


# -- pad --------------------------------------------------------------------------------------

PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pad_infer(types, attrs):
    x = types[0]
    pads = list(attrs["pads"])
    mode = attrs["mode"]
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode {mode!r} is not one of {sorted(PAD_MODES)}")
    if len(pads) != 2 * x.rank:
        raise ValueError(f"pad: pads needs 2 entries per axis ({2 * x.rank}), got {len(pads)}")
    shape = []
    for i, d in enumerate(x.shape):
        lo, hi = pads[2 * i], pads[2 * i + 1]
        if mode != "constant" and (lo < 0 or hi < 0):
            raise ValueError("pad: negative padding needs mode 'constant'")
        if isinstance(d, int) and (lo or hi):
            if mode == "reflect" and (lo >= d or hi >= d):
                raise ValueError(f"pad: reflect padding ({lo}, {hi}) must be < dimension {d}")
            if mode == "circular" and (lo > d or hi > d):
                raise ValueError(f"pad: circular padding ({lo}, {hi}) must be <= dimension {d}")
            if mode == "replicate" and d == 0:
                raise ValueError("pad: cannot replicate-pad an empty dimension")
        out = dim_add(d, lo + hi)
        if isinstance(out, int) and out < 0:
            raise ValueError(f"pad: padding ({lo}, {hi}) leaves a negative dimension of {d}")
        shape.append(out)
    return [TensorType(x.dtype, tuple(shape))]


@register("pad", inputs=("x",), infer=_pad_infer,
          attrs={"pads": REQUIRED, "mode": "constant", "value": 0.0})
def pad(a, attrs):
    """x padded by pads = [before_0, after_0, before_1, after_1, ...] (one pair per axis).

    mode: "constant" (fill with `value`; negative pads crop), "reflect" (mirror, edge excluded),
    "replicate" (repeat the edge), "circular" (wrap around).
    """
    x = a[0]
    pads = attrs["pads"]
    pairs = [(pads[2 * i], pads[2 * i + 1]) for i in range(x.ndim)]
    if any(lo < 0 or hi < 0 for lo, hi in pairs):  # crop first
        x = x[tuple(slice(max(-lo, 0), x.shape[i] - max(-hi, 0)) for i, (lo, hi) in enumerate(pairs))]
        pairs = [(max(lo, 0), max(hi, 0)) for lo, hi in pairs]
    mode = PAD_MODES[attrs["mode"]]
    if mode == "constant":
        return np.pad(x, pairs, mode="constant", constant_values=scalar_value(attrs["value"], x.dtype))
    return np.pad(x, pairs, mode=mode)
