"""Indexing ops: gather, take, embedding, index (advanced indexing), and their writing
counterparts scatter, index_put, slice_update; plus topk and sort.

Index tensors may have any integer dtype. Index values follow PyTorch: gather, scatter and
embedding take [0, n); index and index_put (tensor[...] indexing) also take [-n, 0), counting from
the end; take does either (its `negative_indices` attribute: index_select refuses them, tensor[i]
accepts them). Any other value raises `IndexRangeError` rather than wrapping around or failing deep
in NumPy. Writing ops return an updated copy and never modify inputs.
"""
from __future__ import annotations

import numpy as np

from ...errors import IndexRangeError
from ..registry import REQUIRED, register
from ..types import DType, TensorType, broadcast_shapes
from .shape import axes_of, axis_of, dims_equal, slice_index, _slice_infer

INDEX_DTYPES = (DType.int64, DType.int32, DType.int16, DType.int8, DType.uint8)


def _check_index(t: TensorType, op: str, allow_bool: bool = False) -> None:
    if t.dtype not in INDEX_DTYPES and not (allow_bool and t.dtype == DType.bool):
        raise ValueError(f"{op}: indices must be integers{' or bool' if allow_bool else ''}, "
                         f"got {t.dtype.value}")


def _check_range(idx: np.ndarray, n: int, operand: int, axis: int | None, negative: bool = False,
                 what: str = "index") -> None:
    """Raise IndexRangeError unless every value of idx is in [0, n) (or [-n, n) when `negative`)."""
    if idx.size == 0:
        return
    lo, hi = -n if negative else 0, n - 1
    low, high = int(idx.min()), int(idx.max())
    if low < lo or high > hi:
        raise IndexRangeError(what, low if low < lo else high, lo, hi, operand, axis)


# -- gather (torch.gather) --------------------------------------------------------------------

def _gather_infer(types, attrs):
    x, idx = types
    _check_index(idx, "gather")
    ax = axis_of(attrs["axis"], x.rank)
    if idx.rank != x.rank:
        raise ValueError(f"gather: indices rank {idx.rank} must equal input rank {x.rank}")
    for i, (a, b) in enumerate(zip(x.shape, idx.shape)):
        if i != ax and isinstance(a, int) and isinstance(b, int) and b > a:
            raise ValueError(f"gather: indices {idx.shape} larger than input {x.shape} off axis {ax}")
    return [TensorType(x.dtype, idx.shape)]


def _along_axis(idx: np.ndarray, axis: int) -> tuple:
    """The fancy index that reads x[..., idx[i, j, ...], ...] at every position of idx."""
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx
    return tuple(grid)


@register("gather", inputs=("x", "indices"), infer=_gather_infer, attrs={"axis": REQUIRED})
def gather(a, attrs):
    """torch.gather: out[i][j][k] = x[i][indices[i][j][k]][k] for axis 1; out has indices' shape."""
    x, idx = a
    ax = attrs["axis"] % x.ndim
    _check_range(idx, x.shape[ax], 1, ax)
    return x[_along_axis(idx.astype(np.int64, copy=False), ax)]


# -- take (np.take / index_select) ------------------------------------------------------------

def _take_infer(types, attrs):
    x, idx = types
    _check_index(idx, "take")
    ax = axis_of(attrs["axis"], x.rank)
    return [TensorType(x.dtype, x.shape[:ax] + idx.shape + x.shape[ax + 1:])]


@register("take", inputs=("x", "indices"), infer=_take_infer,
          attrs={"axis": REQUIRED, "negative_indices": True})
def take(a, attrs):
    """Slices of x along `axis` picked by indices: shape x[:axis] + indices.shape + x[axis+1:].
    `negative_indices`: whether -n..-1 count from the end (tensor[i]) or are errors (index_select)."""
    x, idx = a
    ax = attrs["axis"] % x.ndim
    _check_range(idx, x.shape[ax], 1, ax, attrs["negative_indices"])
    return np.take(x, idx, axis=ax)


# -- embedding --------------------------------------------------------------------------------

def _embedding_infer(types, attrs):
    w, idx = types
    _check_index(idx, "embedding")
    if w.rank != 2:
        raise ValueError(f"embedding: weight must be (num_embeddings, dim), got {w.shape}")
    return [TensorType(w.dtype, idx.shape + (w.shape[1],))]


@register("embedding", inputs=("weight", "indices"), infer=_embedding_infer,
          weight=(0, 0, 1))  # (vocab, dim): rows are the channels
def embedding(a, attrs):
    """Rows of weight (V, D) picked by integer indices (...): output (..., D)."""
    _check_range(a[1], a[0].shape[0], 1, None, what="token id")
    return np.take(a[0], a[1], axis=0)


# -- index (advanced indexing) ----------------------------------------------------------------

def _index_tuple(shape: tuple, axes, indices, first: int) -> tuple:
    """x[...] index with `indices[i]` starting at axis axes[i] (a bool mask of rank k covers k axes).
    Integer indices must be in [-n, n) of their axis; `first` is the op operand of indices[0]."""
    out: list = []
    pos = 0
    for k, (ax, idx) in sorted(enumerate(zip(axes, indices)), key=lambda p: p[1][0]):
        out += [slice(None)] * (ax - pos)
        if idx.dtype == np.bool_:
            out += list(np.nonzero(idx))
            pos = ax + idx.ndim
        else:
            _check_range(idx, shape[ax], first + k, ax, negative=True)
            out.append(idx)
            pos = ax + 1
    return tuple(out)


def _index_infer(types, attrs):
    x, idxs = types[0], types[1:]
    axes = list(attrs["axes"])
    if len(axes) != len(idxs) or not idxs:
        raise ValueError(f"index: needs one axis per index tensor (axes {axes}, {len(idxs)} indices)")
    axes = axes_of(axes, x.rank)
    if axes != sorted(axes):
        raise ValueError(f"index: axes {axes} must be increasing")
    for t in idxs:
        _check_index(t, "index")
    bshape = broadcast_shapes(*(t.shape for t in idxs))
    rest = [d for i, d in enumerate(x.shape) if i not in axes]
    if axes == list(range(axes[0], axes[-1] + 1)):  # adjacent: result dims replace them in place
        shape = x.shape[:axes[0]] + bshape + x.shape[axes[-1] + 1:]
    else:  # separated: NumPy and torch put the broadcast index dims first
        shape = bshape + tuple(rest)
    return [TensorType(x.dtype, tuple(shape))]


@register("index", inputs=("x", "*indices"), infer=_index_infer, attrs={"axes": REQUIRED})
def index(a, attrs):
    """x[..., i0, ..., i1, ...]: integer index tensors on increasing `axes` (one each), broadcast
    together; NumPy/torch advanced indexing (adjacent indexed axes keep their place, separated ones
    move the result dims to the front)."""
    x, idxs = a[0], a[1:]
    return x[_index_tuple(x.shape, [ax % x.ndim for ax in attrs["axes"]], idxs, 1)]


# -- index_put --------------------------------------------------------------------------------

def _index_put_infer(types, attrs):
    x, v, idxs = types[0], types[1], types[2:]
    axes = list(attrs["axes"])
    if len(axes) != len(idxs) or not idxs:
        raise ValueError(f"index_put: needs one axis per index tensor (axes {axes}, {len(idxs)} indices)")
    if v.dtype != x.dtype:
        raise ValueError(f"index_put: values dtype {v.dtype.value} differs from input {x.dtype.value}")
    pos = 0
    for ax, t in zip(axes, idxs):
        _check_index(t, "index_put", allow_bool=True)
        ax = axis_of(ax, x.rank)
        if ax < pos:
            raise ValueError(f"index_put: axes {axes} overlap or are not increasing")
        pos = ax + (t.rank if t.dtype == DType.bool else 1)
        if pos > x.rank:
            raise ValueError(f"index_put: index of rank {t.rank} at axis {ax} exceeds input rank {x.rank}")
        if t.dtype == DType.bool and not all(dims_equal(a, b) for a, b in zip(t.shape, x.shape[ax:])):
            raise ValueError(f"index_put: mask {t.shape} does not match input {x.shape} at axis {ax}")
    return [x]


@register("index_put", inputs=("x", "values", "*indices"), infer=_index_put_infer,
          attrs={"axes": REQUIRED, "accumulate": False})
def index_put(a, attrs):
    """A copy of x with x[index] = values (or += values, summing repeats, when `accumulate`).

    Index tensors start at increasing `axes`: integer tensors cover one axis each and broadcast
    together; a bool mask of rank k covers k axes. values broadcasts to the indexed shape.
    """
    x, v, idxs = a[0], a[1], a[2:]
    out = np.array(x, copy=True)
    key = _index_tuple(x.shape, [ax % x.ndim for ax in attrs["axes"]], idxs, 2)
    if attrs["accumulate"]:
        np.add.at(out, key, v)
    else:
        out[key] = v
    return out


# -- scatter (torch.scatter / scatter_add / scatter_reduce) ------------------------------------

SCATTER_REDUCE = {"none": None, "add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter_infer(types, attrs):
    x, idx, upd = types
    _check_index(idx, "scatter")
    ax = axis_of(attrs["axis"], x.rank)
    if attrs["reduce"] not in SCATTER_REDUCE:
        raise ValueError(f"scatter: reduce {attrs['reduce']!r} is not one of {sorted(SCATTER_REDUCE)}")
    if idx.rank != x.rank:
        raise ValueError(f"scatter: indices rank {idx.rank} must equal input rank {x.rank}")
    if upd.dtype != x.dtype:
        raise ValueError(f"scatter: updates dtype {upd.dtype.value} differs from input {x.dtype.value}")
    if broadcast_shapes(upd.shape, idx.shape) != idx.shape and all(isinstance(d, int) for d in idx.shape):
        raise ValueError(f"scatter: updates {upd.shape} do not broadcast to indices {idx.shape}")
    for i, (a, b) in enumerate(zip(x.shape, idx.shape)):
        if i != ax and isinstance(a, int) and isinstance(b, int) and b > a:
            raise ValueError(f"scatter: indices {idx.shape} larger than input {x.shape} off axis {ax}")
    return [x]


@register("scatter", inputs=("x", "indices", "updates"), infer=_scatter_infer,
          attrs={"axis": REQUIRED, "reduce": "none"})
def scatter(a, attrs):
    """torch.scatter: a copy of x with out[i][indices[i][j][k]][k] = updates[i][j][k] (axis 1).

    updates broadcasts to indices' shape. reduce "none" writes (with repeated indices one of the
    writes wins), "add"/"mul"/"max"/"min" combine every update with the existing value.
    """
    x, idx, upd = a
    ax = attrs["axis"] % x.ndim
    _check_range(idx, x.shape[ax], 1, ax)
    out = np.array(x, copy=True)
    key = _along_axis(idx.astype(np.int64, copy=False), ax)
    upd = np.broadcast_to(upd, idx.shape)
    fn = SCATTER_REDUCE[attrs["reduce"]]
    if fn is None:
        out[key] = upd
    else:
        fn.at(out, key, upd)
    return out


# -- slice_update (slice_scatter) -------------------------------------------------------------

def _slice_update_infer(types, attrs):
    x, u = types
    if u.dtype != x.dtype:
        raise ValueError(f"slice_update: update dtype {u.dtype.value} differs from input {x.dtype.value}")
    region = _slice_infer([x], attrs)[0]
    if u.rank > x.rank or broadcast_shapes(u.shape, region.shape) != region.shape and region.is_static:
        raise ValueError(f"slice_update: update {u.shape} does not fit the slice {region.shape}")
    return [x]


@register("slice_update", inputs=("x", "update"), infer=_slice_update_infer,
          attrs={"axes": REQUIRED, "begin": REQUIRED, "end": REQUIRED, "step": None})
def slice_update(a, attrs):
    """A copy of x with x[begin:end:step] (on `axes`, as in `slice`) replaced by update (broadcast)."""
    x, u = a
    out = np.array(x, copy=True)
    out[slice_index(x.ndim, attrs)] = u
    return out


# -- topk / sort ------------------------------------------------------------------------------

def _order(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """Stable argsort; descending keeps equal elements in their original order, NaN counts as largest."""
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")
    n = x.shape[axis]
    rev = np.flip(x, axis=axis)
    return n - 1 - np.flip(np.argsort(rev, axis=axis, kind="stable"), axis=axis)


def _topk_infer(types, attrs):
    x = types[0]
    ax = axis_of(attrs["axis"], x.rank) if x.rank else 0
    k = attrs["k"]
    shape = list(x.shape)
    if x.rank:
        if k < 0 or isinstance(shape[ax], int) and k > shape[ax]:
            raise ValueError(f"topk: k={k} out of range for dimension {shape[ax]}")
        shape[ax] = k
    return [TensorType(x.dtype, tuple(shape)), TensorType(DType.int64, tuple(shape))]


@register("topk", inputs=("x",), infer=_topk_infer,
          attrs={"k": REQUIRED, "axis": -1, "largest": True})
def topk(a, attrs):
    """The k largest (or smallest) elements along `axis`, sorted, and their int64 indices."""
    x = a[0]
    if x.ndim == 0:
        return x.copy(), np.zeros((), np.int64)
    ax = attrs["axis"] % x.ndim
    order = np.take(_order(x, ax, attrs["largest"]), np.arange(attrs["k"]), axis=ax)
    return np.take_along_axis(x, order, axis=ax), order.astype(np.int64)


def _sort_infer(types, attrs):
    x = types[0]
    if x.rank:
        axis_of(attrs["axis"], x.rank)
    return [x, TensorType(DType.int64, x.shape)]


@register("sort", inputs=("x",), infer=_sort_infer, attrs={"axis": -1, "descending": False})
def sort(a, attrs):
    """x sorted along `axis` (stable; NaN largest) and the int64 indices that sort it."""
    x = a[0]
    if x.ndim == 0:
        return x.copy(), np.zeros((), np.int64)
    ax = attrs["axis"] % x.ndim
    order = _order(x, ax, attrs["descending"])
    return np.take_along_axis(x, order, axis=ax), order.astype(np.int64)
