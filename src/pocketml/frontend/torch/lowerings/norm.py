"""Lowerings of layer/group/batch/instance/RMS normalization (kept whole) to the norm ops."""
from __future__ import annotations

import numpy as np

from ..builder import Builder
from ..registry import Unsupported, lowers
from ._nn_util import Outputs, check_float


def _trailing_axes(x, normalized_shape, what):
    k = len(normalized_shape)
    if not 1 <= k <= x.rank:
        raise Unsupported(f"{what}: normalized_shape {list(normalized_shape)} for a rank-{x.rank} input")
    check_float(x, what)
    return list(range(-k, 0))


def _layer_norm(b: Builder, x, normalized_shape, weight=None, bias=None, eps=1e-5):
    axes = _trailing_axes(x, normalized_shape, "layer_norm")
    return b.op("layer_norm", [x, weight, bias], {"axes": axes, "eps": float(eps)})


@lowers("aten.layer_norm.default")
def layer_norm(b, x, normalized_shape, weight=None, bias=None, eps=1e-5, cudnn_enable=True):
    return _layer_norm(b, x, normalized_shape, weight, bias, eps)


@lowers("aten.native_layer_norm.default")
def native_layer_norm(b, x, normalized_shape, weight, bias, eps):
    return Outputs((_layer_norm(b, x, normalized_shape, weight, bias, eps), None, None),
                   "native_layer_norm", ("out", "mean", "rstd"))


def _rms_norm(b, x, normalized_shape, weight=None, eps=None):
    axes = _trailing_axes(x, normalized_shape, "rms_norm")
    if eps is None:
        eps = float(np.finfo(x.dtype.np).eps)
    return b.op("rms_norm", [x, weight], {"axes": axes, "eps": float(eps)})


@lowers("aten.rms_norm.default")
def rms_norm(b, x, normalized_shape, weight=None, eps=None):
    return _rms_norm(b, x, normalized_shape, weight, eps)


@lowers("aten._fused_rms_norm.default")
def fused_rms_norm(b, x, normalized_shape, weight=None, eps=None):
    return Outputs((_rms_norm(b, x, normalized_shape, weight, eps), None), "_fused_rms_norm", ("out", "rstd"))


def _group_norm(b: Builder, x, groups, weight, bias, eps, what="group_norm"):
    check_float(x, what)
    if x.rank < 2:
        raise Unsupported(f"{what} of a rank-{x.rank} input")
    return b.op("group_norm", [x, weight, bias], {"groups": int(groups), "eps": float(eps)})


@lowers("aten.group_norm.default")
def group_norm(b, x, num_groups, weight=None, bias=None, eps=1e-5, cudnn_enabled=True):
    return _group_norm(b, x, num_groups, weight, bias, eps)


@lowers("aten.native_group_norm.default")
def native_group_norm(b, x, weight, bias, N, C, HxW, group, eps):
    return Outputs((_group_norm(b, x, group, weight, bias, eps), None, None),
                   "native_group_norm", ("out", "mean", "rstd"))


def _batch_norm(b: Builder, x, weight, bias, mean, var, eps, what="batch_norm"):
    check_float(x, what)
    if x.rank < 2:
        raise Unsupported(f"{what} of a rank-{x.rank} input")
    return b.op("batch_norm", [x, mean, var, weight, bias], {"eps": float(eps)})


def _stats_outputs(out, what, n=3):
    return Outputs((out,) + (None,) * (n - 1), what,
                   ("out", "save_mean", "save_rstd", "running_mean", "running_var")[:n])


@lowers("aten.batch_norm.default")
def batch_norm(b, x, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled=True):
    use_batch = training or running_mean is None
    return _batch_norm(b, x, weight, bias, None if use_batch else running_mean, None if use_batch else running_var, eps)


@lowers("aten._native_batch_norm_legit_no_training.default")
def native_batch_norm_no_training(b, x, weight, bias, running_mean, running_var, momentum, eps):
    return _stats_outputs(_batch_norm(b, x, weight, bias, running_mean, running_var, eps),
                          "_native_batch_norm_legit_no_training")


@lowers("aten._native_batch_norm_legit.default", "aten.native_batch_norm.default")
def native_batch_norm(b, x, weight, bias, running_mean, running_var, training, momentum, eps):
    use_batch = training or running_mean is None
    return _stats_outputs(_batch_norm(b, x, weight, bias, None if use_batch else running_mean,
                                      None if use_batch else running_var, eps), "native_batch_norm")


@lowers("aten._native_batch_norm_legit.no_stats")
def native_batch_norm_no_stats(b, x, weight, bias, training, momentum, eps):
    return _stats_outputs(_batch_norm(b, x, weight, bias, None, None, eps), "_native_batch_norm_legit")


@lowers("aten._native_batch_norm_legit_functional.default")
def native_batch_norm_functional(b, x, weight, bias, running_mean, running_var, training, momentum, eps):
    use_batch = training
    return _stats_outputs(_batch_norm(b, x, weight, bias, None if use_batch else running_mean,
                                      None if use_batch else running_var, eps),
                          "_native_batch_norm_legit_functional", 5)


@lowers("aten.instance_norm.default")
def instance_norm(b, x, weight, bias, running_mean, running_var, use_input_stats, momentum, eps,
                  cudnn_enabled=True):
    if use_input_stats:
        c = x.shape[1] if x.rank >= 2 else None
        if not isinstance(c, int):
            raise Unsupported(f"instance_norm needs a static channel count, got input {x.type}")
        return _group_norm(b, x, c, weight, bias, eps, "instance_norm")
    if running_mean is None or running_var is None:
        raise Unsupported("instance_norm without input statistics needs running statistics")
    return _batch_norm(b, x, weight, bias, running_mean, running_var, eps, "instance_norm")
