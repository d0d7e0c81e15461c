"""Lowerings of shape ops: views, permutes, expand, squeeze/unsqueeze, cat/stack, split/unbind,
slice/select, repeat/tile, flip, roll, pad, unfold, and copy (the functional copy_).

Static dimensions are normalised here (negative axes and indices resolved, slice bounds clamped),
so the IR carries canonical attributes; symbolic dimensions keep Python slicing semantics.
Composite ops that torch always decomposes before we see them (flatten, movedim, narrow, chunk,
reshape, expand_as...) need no lowering. The *_copy variants that core ATen keeps (in programs
from view-free pipelines such as ExecuTorch's edge dialect) share their base op's lowering.
"""
from __future__ import annotations

from ....ir import registry
from ....ir.ops.shape import BIG, TO_END, axis_of, float_attr
from ....ir.types import DType
from ..builder import Builder, Var
from ..registry import Unsupported, lowers


# -- helpers (also used by the indexing and creation lowerings) ---------------------------------

def is_static(x: Var) -> bool:
    return x.type.is_static


def reshape(b: Builder, x: Var, shape) -> Var:
    shape = [int(d) if not isinstance(d, str) else d for d in shape]
    if list(x.shape) == shape:
        return x
    if not all(isinstance(d, int) for d in shape):
        raise Unsupported(f"reshape of {x.type} to {shape} needs a static target shape")
    return b.op("reshape", [x], {"shape": shape})


def squeeze_axes(b: Builder, x: Var, axes) -> Var:
    axes = sorted({axis_of(a, x.rank) for a in axes})
    if not axes:
        return x
    if is_static(x):
        return reshape(b, x, [d for i, d in enumerate(x.shape) if i not in axes])
    return b.op("squeeze", [x], {"axes": axes})


def unsqueeze(b: Builder, x: Var, axis: int) -> Var:
    axis = axis_of(axis, x.rank + 1)
    if is_static(x):
        return reshape(b, x, list(x.shape[:axis]) + [1] + list(x.shape[axis:]))
    return b.op("expand_dims", [x], {"axes": [axis]})


def permute(b: Builder, x: Var, perm) -> Var:
    perm = [axis_of(p, x.rank) for p in perm]
    if perm == list(range(x.rank)):
        return x
    return b.op("transpose", [x], {"perm": perm})


def expand(b: Builder, x: Var, shape) -> Var:
    shape = list(shape)
    lead = len(shape) - x.rank
    if lead < 0:
        raise Unsupported(f"cannot expand {x.type} to the lower rank of {shape}")
    # -1 (or the same size) on an existing axis keeps it; keep -1 only where that size is symbolic
    canon = []
    for i, t in enumerate(shape):
        d = x.shape[i - lead] if i >= lead else None
        if i >= lead and (t == -1 or t == d):
            canon.append(d if isinstance(d, int) else -1)
        else:
            canon.append(t)
    if lead == 0 and all(c == d or c == -1 for c, d in zip(canon, x.shape)):
        return x
    return b.op("expand", [x], {"shape": canon})


def slice_axis(b: Builder, x: Var, axis: int, start=None, end=None, step=1) -> Var:
    axis = axis_of(axis, x.rank)
    start = 0 if start is None else start if isinstance(start, str) else int(start)
    end = BIG if end is None else end if isinstance(end, str) else int(end)
    step = int(step)
    if step <= 0:
        raise Unsupported(f"slice step must be positive, got {step}")
    d = x.shape[axis]
    if isinstance(start, str) or isinstance(end, str):  # a symbolic bound (e.g. [:seq])
        if step != 1:
            raise Unsupported("slice with a symbolic bound and a step")
        if start == 0 and end == d:
            return x
    elif isinstance(d, int):
        start, end, _ = slice(start, end, step).indices(d)
        end = max(end, start)
        if start == 0 and end == d and step == 1:
            return x
    else:
        end = min(end, BIG)
        if start == 0 and end >= TO_END and step == 1:
            return x
    return b.op("slice", [x], {"axes": [axis], "begin": [start], "end": [end],
                               "step": None if step == 1 else [step]})


def select(b: Builder, x: Var, axis: int, index: int) -> Var:
    """x[..., index, ...] on `axis` (the axis removed)."""
    axis = axis_of(axis, x.rank)
    d = x.shape[axis]
    if isinstance(d, int):
        if not -d <= index < d:
            raise Unsupported(f"index {index} out of range for dimension {d}")
        index %= d
    end = BIG if index == -1 else index + 1
    return squeeze_axes(b, slice_axis(b, x, axis, index, end), [axis])


def cast(b: Builder, x: Var, dtype: DType) -> Var:
    """x converted to dtype, with the elementwise family's `cast` op."""
    if x.dtype == dtype:
        return x
    try:
        registry.get("cast")
        return b.op("cast", [x], {"dtype": DType(dtype).value})
    except KeyError:
        raise Unsupported(f"converting {x.dtype.value} to {DType(dtype).value} needs a cast op") from None


_ORDER = [DType.bool, DType.uint8, DType.int8, DType.int16, DType.int32, DType.int64,
          DType.float16, DType.float32]


def promote(dtypes) -> DType:
    """torch's result dtype for tensors of these dtypes (same-category rules, enough for cat)."""
    dtypes = [DType(d) for d in dtypes]
    if DType.uint8 in dtypes and DType.int8 in dtypes and not any(
            d in dtypes for d in (DType.int16, DType.int32, DType.int64, DType.float16, DType.float32)):
        return DType.int16
    return max(dtypes, key=_ORDER.index)


def _dims(dims) -> list[int]:
    if dims is None:
        return []
    return [dims] if isinstance(dims, int) else list(dims)


# -- views, permutes, copies ---------------------------------------------------------------------

@lowers("aten.view.default", "aten._unsafe_view.default", "aten.view_copy.default")
def view(b: Builder, x, shape, *_):
    shape = list(shape)
    if is_static(x) and -1 in shape:
        known = 1
        for d in shape:
            if d != -1:
                known *= d
        if known:
            shape[shape.index(-1)] = x.type.numel() // known
    if list(x.shape) == shape:
        return x
    return b.op("reshape", [x], {"shape": shape})


# (aten.clone/alias/detach/lift_fresh_copy are lowered, to the value itself, in elementwise.py)

@lowers("aten.copy.default")
def copy(b: Builder, dst, src, non_blocking=False):
    """The functional copy_: src converted to dst's dtype and broadcast to dst's shape."""
    if not isinstance(src, Var):
        return b.op("full_like", [dst], {"value": float_attr(src)})
    return expand(b, cast(b, src, dst.dtype), dst.shape)


@lowers("aten.permute.default", "aten.permute_copy.default")
def permute_(b: Builder, x, dims):
    return permute(b, x, dims)


@lowers("aten.t.default")
def t(b: Builder, x):
    return permute(b, x, list(range(x.rank))[::-1])


@lowers("aten.transpose.int")
def transpose(b: Builder, x, dim0, dim1):
    if x.rank == 0:
        return x
    perm = list(range(x.rank))
    d0, d1 = axis_of(dim0, x.rank), axis_of(dim1, x.rank)
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return permute(b, x, perm)


@lowers("aten.expand.default")
def expand_(b: Builder, x, size, implicit=False):
    return expand(b, x, size)


@lowers("aten.squeeze.default", "aten.squeeze.dim", "aten.squeeze.dims")
def squeeze(b: Builder, x, dim=None):
    if x.rank == 0:
        return x
    dims = range(x.rank) if dim is None else [axis_of(d, x.rank) for d in _dims(dim)]
    return squeeze_axes(b, x, [d for d in dims if x.shape[d] == 1])  # other sizes are left alone


@lowers("aten.unsqueeze.default")
def unsqueeze_(b: Builder, x, dim):
    return unsqueeze(b, x, dim)


# -- joining and splitting ----------------------------------------------------------------------

@lowers("aten.cat.default")
def cat(b: Builder, tensors, dim=0):
    tensors = list(tensors)
    rank = max(t.rank for t in tensors)
    # torch skips legacy empty 1-d tensors of shape (0,) next to higher-rank ones
    kept = [t for t in tensors if not (t.rank == 1 and t.shape[0] == 0 and rank > 1)] or tensors[:1]
    dtype = promote(t.dtype for t in kept)
    kept = [cast(b, t, dtype) for t in kept]
    if len(kept) == 1:
        return kept[0]
    return b.op("concat", kept, {"axis": axis_of(dim, rank)})


@lowers("aten.stack.default")
def stack(b: Builder, tensors, dim=0):
    rank = tensors[0].rank + 1
    return cat(b, [unsqueeze(b, t, axis_of(dim, rank)) for t in tensors], axis_of(dim, rank))


def split_sizes(b: Builder, x: Var, sizes, dim) -> tuple:
    dim = axis_of(dim, x.rank)
    if not isinstance(x.shape[dim], int):
        raise Unsupported("splitting a symbolic dimension")
    sizes = [int(s) for s in sizes]
    if len(sizes) == 1:
        return (x,)
    out = b.op("split", [x], {"sizes": sizes, "axis": dim})
    return out if isinstance(out, tuple) else (out,)


@lowers("aten.split_with_sizes.default")
def split_with_sizes(b: Builder, x, split_sizes_, dim=0):
    return split_sizes(b, x, split_sizes_, dim)


@lowers("aten.split.Tensor", "aten.split_copy.Tensor")
def split(b: Builder, x, split_size, dim=0):
    if isinstance(split_size, (list, tuple)):
        return split_sizes(b, x, split_size, dim)
    d = x.shape[axis_of(dim, x.rank)]
    if not isinstance(d, int):
        raise Unsupported("splitting a symbolic dimension")
    sizes = [split_size] * (d // split_size) + ([d % split_size] if d % split_size else [])
    return split_sizes(b, x, sizes or [0], dim)


@lowers("aten.unbind.int", "aten.unbind_copy.int")
def unbind(b: Builder, x, dim=0):
    dim = axis_of(dim, x.rank)
    d = x.shape[dim]
    if not isinstance(d, int):
        raise Unsupported("unbinding a symbolic dimension")
    parts = split_sizes(b, x, [1] * d, dim) if d > 1 else (x,) * d
    return tuple(squeeze_axes(b, p, [dim]) for p in parts)


# -- slicing ------------------------------------------------------------------------------------

@lowers("aten.slice.Tensor", "aten.slice_copy.Tensor")
def slice_(b: Builder, x, dim=0, start=None, end=None, step=1):
    return slice_axis(b, x, dim, start, end, step)


@lowers("aten.select.int", "aten.select_copy.int")
def select_(b: Builder, x, dim, index):
    return select(b, x, dim, int(index))


@lowers("aten.unfold.default")
def unfold(b: Builder, x, dimension, size, step):
    """Sliding windows of `size` every `step` along `dimension`, as a new last axis."""
    if x.rank == 0:
        return reshape(b, x, [1])
    dim = axis_of(dimension, x.rank)
    d = x.shape[dim]
    if not isinstance(d, int):
        raise Unsupported("unfold of a symbolic dimension")
    n = (d - size) // step + 1
    idx = [w * step + j for w in range(n) for j in range(size)]
    picked = b.op("take", [x, b.const(idx, DType.int64)], {"axis": dim})
    windows = reshape(b, picked, list(x.shape[:dim]) + [n, size] + list(x.shape[dim + 1:]))
    perm = [i for i in range(x.rank + 1) if i != dim + 1] + [dim + 1]
    return permute(b, windows, perm)


# -- repeating, flipping, rolling -----------------------------------------------------------------

@lowers("aten.repeat.default")
def repeat(b: Builder, x, repeats):
    repeats = [int(r) for r in repeats]
    if len(repeats) < x.rank:
        raise Unsupported(f"repeat needs at least {x.rank} counts, got {repeats}")
    if len(repeats) > x.rank:
        lead = len(repeats) - x.rank
        if is_static(x):
            x = reshape(b, x, [1] * lead + list(x.shape))
        else:
            x = b.op("expand_dims", [x], {"axes": list(range(lead))})
    if all(r == 1 for r in repeats):
        return x
    return b.op("tile", [x], {"reps": repeats})


@lowers("aten.tile.default")
def tile(b: Builder, x, dims):
    dims = list(dims)
    return repeat(b, x, [1] * (x.rank - len(dims)) + dims)


@lowers("aten.flip.default")
def flip(b: Builder, x, dims):
    axes = sorted({axis_of(d, x.rank) for d in dims}) if x.rank else []
    axes = [a for a in axes if x.shape[a] != 1]
    if not axes:
        return x
    return b.op("flip", [x], {"axes": axes})


@lowers("aten.roll.default")
def roll(b: Builder, x, shifts, dims=()):
    shifts, dims = _dims(shifts), _dims(dims)
    if not dims:
        if len(shifts) != 1:
            raise Unsupported("roll without dims takes one shift")
        if not is_static(x):
            raise Unsupported("roll of a symbolic shape")
        flat = reshape(b, x, [x.type.numel()])
        return reshape(b, roll(b, flat, shifts, [0]), list(x.shape))
    if len(shifts) != len(dims):
        raise Unsupported(f"roll: {len(shifts)} shifts for {len(dims)} dims")
    for s, dim in zip(shifts, dims):
        dim = axis_of(dim, x.rank)
        d = x.shape[dim]
        if not isinstance(d, int):
            raise Unsupported("roll of a symbolic dimension")
        s = s % d if d else 0
        if s:
            x = b.op("concat", [slice_axis(b, x, dim, d - s, d), slice_axis(b, x, dim, 0, d - s)],
                     {"axis": dim})
    return x


# -- padding --------------------------------------------------------------------------------------

def pad(b: Builder, x: Var, pad_list, mode: str, value=0.0) -> Var:
    """torch's pad list (pairs from the last axis backwards) as the IR's per-axis pairs."""
    pad_list = [int(p) for p in pad_list]
    if len(pad_list) % 2 or len(pad_list) > 2 * x.rank:
        raise Unsupported(f"pad list {pad_list} does not fit a tensor of rank {x.rank}")
    pads = [0] * (2 * x.rank)
    for i in range(len(pad_list) // 2):
        ax = x.rank - 1 - i
        pads[2 * ax], pads[2 * ax + 1] = pad_list[2 * i], pad_list[2 * i + 1]
    if not any(pads):
        return x
    attrs = {"pads": pads, "mode": mode}
    if mode == "constant":
        attrs["value"] = float_attr(0.0 if value is None else value)
    return b.op("pad", [x], attrs)


@lowers("aten.constant_pad_nd.default")
def constant_pad_nd(b: Builder, x, pad_list, value=0):
    return pad(b, x, pad_list, "constant", value)


@lowers("aten.pad.default")
def pad_(b: Builder, x, pad_list, mode="constant", value=None):
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise Unsupported(f"pad mode {mode!r}")
    return pad(b, x, pad_list, mode, value)


def _pad_mode(mode):
    def lower(b: Builder, x, padding):
        return pad(b, x, padding, mode)
    return lower


for _n in (1, 2, 3):
    lowers(f"aten.reflection_pad{_n}d.default")(_pad_mode("reflect"))
    lowers(f"aten.replication_pad{_n}d.default")(_pad_mode("replicate"))
lowers("aten._pad_circular.default")(_pad_mode("circular"))
