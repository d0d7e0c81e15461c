"""`pm.convert`: a PyTorch model to a pocketml Model (the only entry point that needs torch)."""
from __future__ import annotations

import datetime
from typing import Mapping, Sequence

from .errors import ConversionError
from .inputs import EnumeratedShapes, RangeDim, TensorType
from .model import Model
from .version import __version__

METADATA_KEYS = ("author", "license", "description", "version", "input_descriptions",
                 "output_descriptions")


def convert(model, example_inputs: Sequence | None = None, *, inputs: Sequence[TensorType] | None = None,
            input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
            metadata: Mapping | None = None, dynamic_shapes=None) -> Model:
    """Convert an `nn.Module` (traced with `example_inputs`) or a `torch.export.ExportedProgram`.

    `inputs`: one `pm.TensorType` per forward() argument, naming it and declaring flexible
    dimensions (`pm.RangeDim`) or a set of shapes (`pm.EnumeratedShapes`); example inputs are then
    made from their defaults unless given. Alternatively `dynamic_shapes` (torch.export's format)
    makes dimensions symbolic, named after their `torch.export.Dim`s. Input names default to the
    forward() argument names, output names to the keys of a returned dict (else "output" /
    "output_i"). Buffers the model updates in place (`register_buffer` + slice assignment, copy_)
    become states (`model.make_state()`). `metadata` may hold author, license, description,
    version, input_descriptions and output_descriptions (dicts name -> text), and any other fields.
    """
    try:
        import torch
    except ImportError:
        raise ConversionError("converting needs PyTorch: pip install 'pocketml[torch]'") from None
    from .frontend.torch import export, to_program
    from .passes import run_passes

    enumerated = {}
    if inputs is not None:
        if dynamic_shapes is not None or input_names is not None:
            raise ConversionError("give either inputs=[pm.TensorType, ...] or input_names/dynamic_shapes, "
                                  "not both")
        example_inputs, input_names, dynamic_shapes, enumerated = _from_specs(torch, inputs, example_inputs)
    ep = export(model, example_inputs, dynamic_shapes)
    program = run_passes(to_program(ep, input_names, output_names, dynamic_shapes))
    program.main.input_shapes.update(enumerated)
    meta = {
        "source_framework": "pytorch",
        "source_framework_version": torch.__version__.split("+")[0],
        "pocketml_version": __version__,
        "conversion_date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    for k, v in (metadata or {}).items():
        if not isinstance(k, str):
            raise ConversionError(f"metadata keys must be strings, got {k!r}")
        meta[k] = v
    fn = program.main
    for key, names in (("input_descriptions", fn.input_names), ("output_descriptions", fn.outputs)):
        unknown = set(meta.get(key, {})) - set(names)
        if unknown:
            raise ConversionError(f"metadata[{key!r}] names {sorted(unknown)}, which are not among {names}")
    return Model(program, meta)


def _from_specs(torch, specs: Sequence[TensorType], example_inputs):
    """(example tensors, names, torch.export dynamic_shapes, enumerated shapes) from input specs."""
    import numpy as np

    specs = list(specs)
    if not all(isinstance(t, TensorType) for t in specs):
        raise ConversionError("inputs must be a list of pm.TensorType(name, shape, dtype)")
    dims: dict[str, tuple] = {}  # name -> ((min, max), torch.export.Dim): one Dim per name

    def dim(name: str, lo: int, hi: int | None):
        if name not in dims:
            dims[name] = ((lo, hi), torch.export.Dim(name, min=lo, **({"max": hi} if hi is not None else {})))
        elif dims[name][0] != (lo, hi):
            raise ConversionError(f"dimension {name!r} is declared with two different ranges")
        return dims[name][1]

    dynamic, enumerated = [], {}
    for t in specs:
        axes = {}
        if isinstance(t.shape, EnumeratedShapes):
            for a, sizes in enumerate(zip(*t.shape.shapes)):
                if len(set(sizes)) > 1:
                    axes[a] = dim(f"{t.name}_{a}", min(sizes), max(sizes))
            enumerated[t.name] = [list(s) for s in t.shape.shapes]
        else:
            for a, d in enumerate(t.shape):
                if isinstance(d, RangeDim):
                    axes[a] = dim(d.name or f"{t.name}_{a}", d.lower, d.upper)
        dynamic.append(axes or None)  # by position: spec names need not match forward()'s
    if example_inputs is None:
        rng = np.random.default_rng(0)
        example_inputs = tuple(torch.from_numpy(t.example(rng)) for t in specs)
    if len(example_inputs) != len(specs):
        raise ConversionError(f"{len(specs)} input specs but {len(example_inputs)} example inputs")
    return example_inputs, [t.name for t in specs], tuple(dynamic), enumerated
