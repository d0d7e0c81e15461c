"""`pm.convert`: a PyTorch model to a pocketml Model (the only entry point that needs torch)."""
from __future__ import annotations

import datetime
from typing import Mapping, Sequence

from .errors import ConversionError
from .model import Model
from .version import __version__

METADATA_KEYS = ("author", "license", "description", "version", "input_descriptions",
                 "output_descriptions")


def convert(model, example_inputs: Sequence | None = None, *, input_names: Sequence[str] | None = None,
            output_names: Sequence[str] | None = None, metadata: Mapping | None = None,
            dynamic_shapes=None) -> Model:
    """Convert an `nn.Module` (traced with `example_inputs`) or a `torch.export.ExportedProgram`.

    Input names default to the forward() argument names, output names to the keys of a returned
    dict (else "output" / "output_i"). `dynamic_shapes` (torch.export's format) makes dimensions
    symbolic, named after their `torch.export.Dim`s, so one package serves several sizes. `metadata` may hold author, license, description, version,
    input_descriptions and output_descriptions (dicts name -> text), and any other string fields.
    """
    try:
        import torch
    except ImportError:
        raise ConversionError("converting needs PyTorch: pip install 'pocketml[torch]'") from None
    from .frontend.torch import export, to_program
    from .passes import run_passes

    ep = export(model, example_inputs, dynamic_shapes)
    program = run_passes(to_program(ep, input_names, output_names, dynamic_shapes))
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
