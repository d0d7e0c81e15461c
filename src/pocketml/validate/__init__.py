"""Validation: compare a pocketml model with its PyTorch source (metrics need NumPy only).

    report = pocketml.validate(model_or_path, torch_module, example_inputs)
    print(report.to_text()); assert report.passed
"""
import sys
import types

from .compare import Report, flatten_outputs, validate
from .metrics import OutputMetrics, SampleMetrics, aggregate, compare_arrays

__all__ = ["OutputMetrics", "Report", "SampleMetrics", "aggregate", "compare_arrays",
           "flatten_outputs", "validate"]


class _CallableModule(types.ModuleType):
    """Importing this package rebinds the attribute `pocketml.validate` (the function exported by
    `pocketml/__init__.py`) to this module; making the module callable keeps `pm.validate(...)`
    working however the two were imported."""

    def __call__(self, *args, **kwargs):
        return validate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
