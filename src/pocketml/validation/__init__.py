"""Validation: compare a pocketml model with its PyTorch source (metrics need NumPy only).

    report = pocketml.validate(model_or_path, torch_module, example_inputs)
    print(report.to_text()); assert report.passed
"""
from .compare import Report, flatten_outputs, validate
from .metrics import OutputMetrics, SampleMetrics, aggregate, compare_arrays
from .nonfinite import NonFiniteReport, Origin, find_nonfinite, has_nonfinite

__all__ = ["NonFiniteReport", "Origin", "OutputMetrics", "Report", "SampleMetrics", "aggregate",
           "compare_arrays", "find_nonfinite", "flatten_outputs", "has_nonfinite", "validate"]

