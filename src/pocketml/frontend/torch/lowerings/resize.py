"""Lowerings of torch's upsample_* ops (F.interpolate / nn.Upsample) to `resize`."""
from __future__ import annotations

from ..builder import Builder
from ..registry import Unsupported, lowers
from ._nn_util import check_float


def _resize(b: Builder, n: int, mode: str, x, output_size, scales, align_corners=False):
    if x.rank < n + 1:
        raise Unsupported(f"resizing {n} dims of a rank-{x.rank} input")
    if mode != "nearest" and mode != "nearest_exact":
        check_float(x, f"{mode} resize")
    sizes = None
    if output_size is not None:
        sizes = list(output_size)
        if len(sizes) != n or not all(isinstance(s, int) for s in sizes):
            raise Unsupported(f"output size {output_size} (must be {n} static ints)")
    if scales is not None:
        scales = list(scales) if isinstance(scales, (list, tuple)) else [scales] * n
        if all(s is None for s in scales):
            scales = None
        elif any(s is None for s in scales):
            if sizes is None:
                raise Unsupported(f"scales {scales} with missing entries and no output size")
            scales = [float(s) if s is not None else 0.0 for s in scales]  # 0: use in/out lengths
        else:
            scales = [float(s) for s in scales]
        if scales is not None and len(scales) != n:
            raise Unsupported(f"{len(scales)} scale factors for {n} dims")
    if sizes is None and scales is None:
        raise Unsupported("upsample with neither output size nor scale factors")
    return b.op("resize", [x], {"mode": mode, "sizes": sizes, "scales": scales,
                                "align_corners": bool(align_corners)})


def _nearest(n, mode):
    def vec(b, x, output_size, scale_factors):
        return _resize(b, n, mode, x, output_size, scale_factors)

    def default(b, x, output_size, *scales):
        return _resize(b, n, mode, x, output_size, list(scales) if scales else None)
    return vec, default


def _interp(n, mode):
    def vec(b, x, output_size, align_corners, scale_factors):
        return _resize(b, n, mode, x, output_size, scale_factors, align_corners)

    def default(b, x, output_size, align_corners, *scales):
        return _resize(b, n, mode, x, output_size, list(scales) if scales else None, align_corners)
    return vec, default


for _n, _names in ((1, ("upsample_nearest1d", "_upsample_nearest_exact1d", "upsample_linear1d", None)),
                   (2, ("upsample_nearest2d", "_upsample_nearest_exact2d", "upsample_bilinear2d",
                        "upsample_bicubic2d")),
                   (3, ("upsample_nearest3d", "_upsample_nearest_exact3d", "upsample_trilinear3d", None))):
    for _name, _mode in zip(_names, ("nearest", "nearest_exact", "linear", "cubic")):
        if _name is None:
            continue
        _vec, _default = (_nearest if _mode.startswith("nearest") else _interp)(_n, _mode)
        lowers(f"aten.{_name}.vec")(_vec)
        lowers(f"aten.{_name}.default")(_default)
