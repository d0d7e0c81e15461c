"""Lowerings of indexing: gather, index_select, embedding, advanced indexing (aten.index), the
writes that slice assignment produces (index_put, slice_scatter, select_scatter, scatter*),
topk and sort.

masked_fill needs no lowering here: the decomposition turns it into aten.where.
"""
from __future__ import annotations

from ....ir.ops.shape import axis_of
from ....ir.types import DType
from ..builder import Builder, Var
from ..registry import Unsupported, lowers
from .shape import BIG, expand, slice_axis, unsqueeze


@lowers("aten.gather.default")
def gather(b: Builder, x, dim, index, sparse_grad=False):
    if x.rank == 0:
        return x if index.rank == 0 else expand(b, x, index.shape)
    return b.op("gather", [x, index], {"axis": axis_of(dim, x.rank)})


@lowers("aten.index_select.default")
def index_select(b: Builder, x, dim, index):
    if x.rank == 0:
        return x
    # index_select rejects negative indices, where tensor[i] (also `take`) counts from the end
    return b.op("take", [x, index], {"axis": axis_of(dim, x.rank), "negative_indices": False})


@lowers("aten.embedding.default")
def embedding(b: Builder, weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    # padding_idx and scale_grad_by_freq only change gradients
    return b.op("embedding", [weight, indices])


def _placed(x: Var, indices, allow_bool: bool):
    """(axes, index Vars) for torch's list of optional index tensors (a bool mask of rank k spans k axes)."""
    axes, idxs = [], []
    pos = 0
    for idx in indices:
        if idx is None:
            pos += 1
            continue
        if not isinstance(idx, Var):
            raise Unsupported(f"index of type {type(idx).__name__}")
        is_mask = idx.dtype in (DType.bool, DType.uint8)
        if is_mask and not allow_bool:
            raise Unsupported("indexing with a boolean mask gives a data-dependent shape; "
                              "use torch.where or masked_fill instead")
        if idx.dtype == DType.uint8:
            raise Unsupported("uint8 masks are deprecated in torch; index with a bool mask")
        axes.append(pos)
        idxs.append(idx)
        pos += idx.rank if is_mask else 1
    if pos > x.rank:
        raise Unsupported(f"too many indices for a tensor of rank {x.rank}")
    return axes, idxs


@lowers("aten.index.Tensor")
def index(b: Builder, x, indices):
    axes, idxs = _placed(x, indices, allow_bool=False)
    if not idxs:
        return x
    if len(idxs) == 1:
        return b.op("take", [x, idxs[0]], {"axis": axes[0]})
    return b.op("index", [x, *idxs], {"axes": axes})


@lowers("aten.index_put.default")
def index_put(b: Builder, x, indices, values, accumulate=False):
    axes, idxs = _placed(x, indices, allow_bool=True)
    if not idxs:
        raise Unsupported("index_put without index tensors")
    if values.dtype != x.dtype:
        raise Unsupported(f"index_put of {values.dtype.value} values into a {x.dtype.value} tensor")
    return b.op("index_put", [x, values, *idxs], {"axes": axes, "accumulate": bool(accumulate)})


@lowers("aten.slice_scatter.default")
def slice_scatter(b: Builder, x, src, dim=0, start=None, end=None, step=1):
    dim = axis_of(dim, x.rank)
    start = 0 if start is None else start if isinstance(start, str) else int(start)
    end = BIG if end is None else end if isinstance(end, str) else int(end)
    d = x.shape[dim]
    if isinstance(start, str) or isinstance(end, str):  # a symbolic bound, e.g. cache[S-T:S] = ...
        if step != 1:
            raise Unsupported("slice assignment with a symbolic bound and a step")
    elif isinstance(d, int):
        start, end, _ = slice(start, end, step).indices(d)
        end = max(end, start)
        if start == 0 and end == d and step == 1 and tuple(src.shape) == tuple(x.shape):
            return src
    return b.op("slice_update", [x, src], {"axes": [dim], "begin": [start], "end": [end],
                                           "step": None if step == 1 else [int(step)]})


@lowers("aten.select_scatter.default")
def select_scatter(b: Builder, x, src, dim, index):
    dim = axis_of(dim, x.rank)
    d = x.shape[dim]
    if isinstance(d, int):
        index %= d
    end = BIG if index == -1 else index + 1
    return b.op("slice_update", [x, unsqueeze(b, src, dim)],
                {"axes": [dim], "begin": [index], "end": [end]})


_SCATTER_REDUCE = {"sum": "add", "add": "add", "prod": "mul", "multiply": "mul",
                   "amax": "max", "amin": "min"}


def _scatter(b: Builder, x, dim, index, src, reduce: str):
    if x.rank == 0:
        raise Unsupported("scatter into a 0-d tensor")
    dim = axis_of(dim, x.rank)
    if isinstance(src, Var):
        if src.dtype != x.dtype:
            raise Unsupported(f"scatter of {src.dtype.value} into {x.dtype.value}")
        if src.shape != index.shape:  # torch reads only the leading index-shaped block of src
            for ax, (s, i) in enumerate(zip(src.shape, index.shape)):
                if s != i:
                    if not (isinstance(s, int) and isinstance(i, int)):
                        raise Unsupported("scatter with a src larger than index on a symbolic dimension")
                    src = slice_axis(b, src, ax, 0, i)
    else:
        src = b.const(src, x.dtype)
    return b.op("scatter", [x, index, src], {"axis": dim, "reduce": reduce})


@lowers("aten.scatter.src", "aten.scatter.value")
def scatter(b: Builder, x, dim, index, src):
    return _scatter(b, x, dim, index, src, "none")


@lowers("aten.scatter.reduce", "aten.scatter.value_reduce")
def scatter_reduce_legacy(b: Builder, x, dim, index, src, reduce):
    if reduce not in _SCATTER_REDUCE:
        raise Unsupported(f"scatter reduce={reduce!r}")
    return _scatter(b, x, dim, index, src, _SCATTER_REDUCE[reduce])


@lowers("aten.scatter_add.default")
def scatter_add(b: Builder, x, dim, index, src):
    return _scatter(b, x, dim, index, src, "add")


@lowers("aten.scatter_reduce.two")
def scatter_reduce(b: Builder, x, dim, index, src, reduce, include_self=True):
    if reduce not in _SCATTER_REDUCE:
        raise Unsupported(f"scatter_reduce reduce={reduce!r} (supported: sum, prod, amax, amin)")
    if not include_self:
        raise Unsupported("scatter_reduce with include_self=False")
    return _scatter(b, x, dim, index, src, _SCATTER_REDUCE[reduce])


@lowers("aten.topk.default")
def topk(b: Builder, x, k, dim=-1, largest=True, sorted=True):
    # unsorted topk leaves the order to the implementation: sorted is one valid order
    axis = axis_of(dim, x.rank) if x.rank else 0
    return b.op("topk", [x], {"k": int(k), "axis": axis, "largest": bool(largest)})


@lowers("aten.sort.default")
def sort(b: Builder, x, dim=-1, descending=False):
    axis = axis_of(dim, x.rank) if x.rank else 0
    return b.op("sort", [x], {"axis": axis, "descending": bool(descending)})


@lowers("aten.sort.stable")
def sort_stable(b: Builder, x, *, stable=None, dim=-1, descending=False):
    return sort(b, x, dim, descending)
