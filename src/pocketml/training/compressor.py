"""`prepare`: a torch module made ready for training-time compression, and the `Compressor` that
steps, finalizes and exports it.

The module is converted once up front so that every weight is trained for exactly the spec that
`pm.compress` gives it under the same config (output heads at int8, grouped tables that do not
tile a weight falling back, small weights left alone: `compress.apply.planned_specs`); batch
norms are folded into their convolutions first, as the package stores them. `finalize` snaps each
weight to the value its packed form decodes to (the spec's own compression of the trained
weight, whose tables the training already fixed), so `export` writes those values exactly."""
from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np

from ..compress.apply import compress_weight, planned_specs
from ..compress.config import OptimizationConfig, Palettize, Prune, Quantize
from ..errors import CompressionWarning, ConfigError
from .batch_norm import fold_batch_norms


def _trainable(key: str, specs) -> tuple:
    """specs as training runs them: one spec a weight; quantization on its min/max grid (what the
    straight-through rounding learns; the searched or GPTQ grid would not keep the trained one)."""
    if len(specs) != 1:
        raise ConfigError(f"{key}: training-time compression takes one spec a weight, got "
                          f"{' + '.join(type(s).__name__ for s in specs)} (joint modes: compress after training)")
    spec = specs[0]
    if isinstance(spec, Palettize):
        spec = replace(spec, gptq=False)  # (GPTQ only chose where training starts)
        if spec.cluster_dim != 1 or spec.per_channel_scale or spec.mode != "kmeans":
            raise ConfigError(f"{key}: training-time palettization takes k-means tables of single values "
                              f"without per-channel scales, got {spec!r}")
    elif isinstance(spec, Quantize):
        if spec.activations or spec.dtype == "float16":
            raise ConfigError(f"{key}: training-time quantization takes integer weights only, got {spec!r}")
        spec = replace(spec, algorithm="minmax")
    elif isinstance(spec, Prune):
        spec = replace(spec, sparsegpt=False)
        if spec.threshold is not None:
            raise ConfigError(f"{key}: training-time pruning takes a sparsity or an n:m pattern, got {spec!r}")
    return (spec,)


class Compressor:
    """A module under training-time compression (made by `prepare`). Train the module with any
    loop; call `step()` after each optimizer step (pruning schedules), then `export()`."""

    def __init__(self, module, plan: dict, steps: int):
        self.module, self.plan, self.steps, self.done = module, plan, max(int(steps), 1), 0
        self.finalized = False

    def step(self) -> None:
        """Advance the pruning schedules by one training step (their masks follow the weights)."""
        from torch.nn.utils import parametrize

        from .modes import Pruned

        self.done += 1
        for name in self.plan:
            owner, attr = self._owner(name)
            if parametrize.is_parametrized(owner, attr):
                for p in owner.parametrizations[attr]:
                    if isinstance(p, Pruned):
                        p.update(owner.parametrizations[attr].original, self.done / self.steps)

    def _owner(self, name: str):
        parent, _, attr = name.rpartition(".")
        return (self.module.get_submodule(parent) if parent else self.module), attr

    def finalize(self):
        """The module with plain weights again, each the value its packed form decodes to."""
        import torch
        from torch.nn.utils import parametrize

        from .modes import SoftPalettized

        if self.finalized:
            return self.module
        self.module.eval()
        with torch.no_grad():
            for name, (specs, _, out_axis, in_axis) in self.plan.items():
                owner, attr = self._owner(name)
                w = getattr(owner, attr)  # the evaluation forward: nearest centres, rounded, masked
                if isinstance(owner.parametrizations[attr][0], SoftPalettized) and specs[0].lut_dtype == "float16":
                    w = w.half().float()  # the package's tables are float16
                snapped = compress_weight(name, w.cpu().numpy().astype(np.float32), specs, out_axis, in_axis).evaluate()
                parametrize.remove_parametrizations(owner, attr, leave_parametrized=False)
                getattr(owner, attr).copy_(torch.from_numpy(np.asarray(snapped, np.float32)))
        self.finalized = True
        return self.module

    def config(self) -> OptimizationConfig:
        """The config that compresses the finalized module's weights to exactly their values."""
        return OptimizationConfig(op_name_configs={k: list(v[0]) for k, v in self.plan.items()})

    def export(self, example_inputs, **convert_options):
        """The finalized module converted (`pm.convert`) and compressed with `config()`: a `pm.Model`
        whose weights decode to the trained values (checked: a ValueError where one does not)."""
        from ..compress.api import compress, decompress
        from ..converter import convert

        module = self.finalize()
        model = compress(convert(module, example_inputs, **convert_options), self.config(), progress=False)
        dense = decompress(model).program.weights
        params = dict(module.named_parameters())
        for name in self.plan:
            want = params[name].detach().cpu().numpy()
            got = np.asarray(dense[name], np.float32)
            if not np.allclose(got, want, rtol=1e-6, atol=0):
                raise ValueError(f"{name}: the package's weight differs from the trained one by up to "
                                 f"{np.abs(got - want).max():g}")
        return model


def prepare(module, config, example_inputs, *, calibration=None, steps: int = 1000, temperature: float = 0.003,
            fold_batch_norm: bool = True) -> Compressor:
    """Make `module` (modified in place) train its weights for `config` (any form `pm.compress`
    takes); returns the `Compressor`. `example_inputs`: a tuple of tensors for conversion.
    `calibration` (what `pm.compress` takes for the converted module): the weights start from
    their calibrated compression (GPTQ, SparseGPT or sensitivity-weighted k-means, as the config
    asks), training from where calibration ends; without it, from the data-free compression.
    `steps`: the training steps over which unstructured pruning ramps to its sparsity;
    `temperature`: DKM's softness for palettization (relative to a table's spacing)."""
    import torch
    from torch.nn.utils import parametrize

    from ..compress.api import compress, decompress
    from ..compress.apply import resolve_config
    from ..converter import convert
    from ..model import Model
    from .modes import FakeQuantized, Pruned, SoftPalettized

    config = resolve_config(config)
    if config.quantizes_activations() or (config.uses_gptq() and calibration is None):
        raise ConfigError("training-time compression takes weight specs, GPTQ and SparseGPT only with "
                          "calibration= (they set where training starts), no activation quantization")
    if fold_batch_norm:
        fold_batch_norms(module, example_inputs)
    program = convert(module.eval(), example_inputs).program
    params = dict(module.named_parameters())
    planned = planned_specs(program, config)
    if calibration is not None:  # the calibrated weights as the start
        with warnings.catch_warnings():  # (the start's error is what training is for)
            warnings.simplefilter("ignore", CompressionWarning)
            start = compress(Model(program), config, progress=False, calibration=calibration)
        start = decompress(start).program.weights
        with torch.no_grad():
            for key in planned:
                if key in params and key in start:
                    params[key].copy_(torch.from_numpy(np.asarray(start[key], np.float32)))
    plan = {}
    for key, (specs, op_type, out_axis, in_axis) in planned.items():
        if key not in params:  # a weight the conversion made (folded, fused): not a parameter to train
            raise ConfigError(f"{key}: a compressed weight of the converted model that is no parameter of the "
                              "module; training-time compression needs the two to match")
        plan[key] = (_trainable(key, specs), op_type, out_axis, in_axis)
    for key, (specs, _, out_axis, in_axis) in plan.items():
        parent, _, attr = key.rpartition(".")
        owner = module.get_submodule(parent) if parent else module
        w = getattr(owner, attr)
        spec = specs[0]
        if isinstance(spec, Palettize):
            p = SoftPalettized(w, spec, out_axis, temperature)
        elif isinstance(spec, Quantize):
            p = FakeQuantized(w, spec, out_axis, in_axis)
        else:
            p = Pruned(w, spec, in_axis)
        parametrize.register_parametrization(owner, attr, p.to(w.device))
    return Compressor(module, plan, steps)
