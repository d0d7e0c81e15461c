"""`validate`: run a pocketml model and its PyTorch source on the same inputs and compare outputs.

Importing this module does not import torch; `validate` imports it when called.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, InputError
from ..runtime import PRECISIONS
from .metrics import OutputMetrics, aggregate, compare_arrays
from .nonfinite import find_nonfinite, has_nonfinite


@dataclass
class Report:
    """The result of `validate`: per-output metrics and the verdict."""
    outputs: dict[str, OutputMetrics]
    passed: bool
    samples: int
    atol: float
    min_cosine: float
    compute_precision: str
    nonfinite: list[str] = field(default_factory=list)  # where NaN/Inf came from, per sample

    @property
    def failures(self) -> list[str]:
        """One line per failing output, saying why."""
        lines = []
        for m in self.outputs.values():
            if m.passed:
                continue
            why = list(m.problems)
            if not (m.max_abs_error <= self.atol):
                why.append(f"max_abs_error {_num(m.max_abs_error)} > atol {self.atol:g}")
            if not (m.cosine >= self.min_cosine):
                why.append(f"cosine {_cos(m.cosine)} < min_cosine {self.min_cosine:g}")
            lines.append(f"{m.name}: {'; '.join(why)}")
        return lines

    def to_dict(self) -> dict:
        return {"passed": self.passed, "samples": self.samples, "atol": self.atol,
                "min_cosine": self.min_cosine, "compute_precision": self.compute_precision,
                "outputs": {k: m.to_dict() for k, m in self.outputs.items()},
                "failures": self.failures, "nonfinite": self.nonfinite}

    def to_text(self) -> str:
        head = ["output", "shape", "max_abs", "max_rel", "cos_min", "cos_mean", "snr_db", "top1",
                "status"]
        rows = [[m.name, "x".join(str(d) for d in m.shape) or "scalar", _num(m.max_abs_error),
                 _num(m.max_rel_error), _cos(m.cosine), _cos(m.mean_cosine), _db(m.snr_db),
                 "-" if m.top1_agreement is None else f"{100 * m.top1_agreement:.2f}%",
                 "ok" if m.passed else "FAIL"] for m in self.outputs.values()]
        widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
        right = {2, 3, 4, 5, 6, 7}

        def line(cells):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
        out = [line(head), line(["-" * w for w in widths])] + [line(r) for r in rows]
        verdict = "PASSED" if self.passed else "FAILED"
        out.append("")
        out.append(f"{verdict}: {self.samples} sample(s), compute precision {self.compute_precision}, "
                   f"atol {self.atol:g}, min cosine {self.min_cosine:g}")
        out.extend(f"  {f}" for f in self.failures)
        if self.nonfinite:
            out.append("non-finite values:")
            out.extend(f"  {line}" for line in self.nonfinite)
        return "\n".join(out)

    def __str__(self) -> str:
        return self.to_text()


def _num(x: float) -> str:
    return "nan" if math.isnan(x) else "inf" if math.isinf(x) else f"{x:.3e}"


def _cos(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.6f}"


def _db(x: float) -> str:
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf") if math.isinf(x) else f"{x:.1f}"


def _is_sample_list(x) -> bool:
    return isinstance(x, list) and len(x) > 0 and all(isinstance(s, (tuple, list)) for s in x)


def _as_samples(example_inputs) -> list[tuple]:
    """One input tuple, a single tensor, or a list of input tuples -> list of tuples."""
    if _is_sample_list(example_inputs):
        return [tuple(s) for s in example_inputs]
    if isinstance(example_inputs, (tuple, list)):
        if not example_inputs:
            raise InputError("validate needs at least one input sample; got an empty sequence")
        return [tuple(example_inputs)]
    return [(example_inputs,)]


def flatten_outputs(out: Any) -> list:
    """Tensors of a torch output in order: a tensor, tuple/list, dict or ModelOutput-like object
    (nested), skipping None (as Hugging Face's ModelOutput.to_tuple does)."""
    import torch
    if isinstance(out, torch.Tensor):
        return [out]
    if out is None:
        return []
    if isinstance(out, dict):  # includes transformers' ModelOutput (an OrderedDict)
        return [t for v in out.values() for t in flatten_outputs(v)]
    if isinstance(out, (tuple, list)):
        return [t for v in out for t in flatten_outputs(v)]
    if hasattr(out, "to_tuple"):
        return flatten_outputs(tuple(out.to_tuple()))
    raise InputError(f"the torch module returned a {type(out).__name__}, which is not a tensor, "
                     "tuple, list or dict of tensors")


def _to_numpy(t) -> np.ndarray:
    import torch
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.numpy()
    return np.asarray(t)


def _to_torch(a):
    import torch
    return a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))


def _model(model_or_path, compute_precision: str | None):
    from ..model import Model, load
    if isinstance(model_or_path, Model):
        m = model_or_path
        if compute_precision is None or compute_precision == m.compute_precision:
            return m
        return m.variant(compute_precision=compute_precision)
    if isinstance(model_or_path, (str, os.PathLike)):
        return load(model_or_path, compute_precision=compute_precision or "float32")
    raise ConfigError(f"expected a pocketml.Model or a package path, got {type(model_or_path).__name__}")


def _torch_callable(torch_module):
    import torch
    if isinstance(torch_module, torch.export.ExportedProgram):
        return torch_module.module()
    if isinstance(torch_module, torch.nn.Module):
        try:
            torch_module.eval()
        except NotImplementedError:  # modules unlifted from an ExportedProgram
            pass
        return torch_module
    if callable(torch_module):
        return torch_module
    raise ConfigError(f"expected a torch.nn.Module or ExportedProgram, got {type(torch_module).__name__}")


def validate(model_or_path, torch_module, example_inputs: Sequence | list[Sequence], *,
             atol: float = 1e-4, min_cosine: float = 0.9999, compute_precision: str | None = None
             ) -> Report:
    """Run pocketml and PyTorch on the same inputs and compare every output.

    `model_or_path` is a `pocketml.Model` or a package path (loaded with `pocketml.load`);
    `torch_module` an `nn.Module` (put in eval mode) or a `torch.export.ExportedProgram`.
    `example_inputs` is one tuple of tensors (or NumPy arrays), matched by position to the model's
    inputs, or a list of such tuples (samples), whose metrics are aggregated: worst max-abs and
    max-rel error, minimum and mean cosine, minimum SNR, top-1 agreement rate over all positions.
    Torch outputs are flattened in order (tensor / tuple / list / dict / ModelOutput) and matched by
    position to the model's outputs.

    Metrics, in float64 per output: max_abs_error = max|got - ref|; max_rel_error = max|got - ref| /
    max|ref| (relative to the largest reference magnitude, not elementwise); cosine similarity of
    the flattened outputs; snr_db = 10 log10(sum ref^2 / sum (got - ref)^2) (inf if identical); and
    for logits-like outputs (float, last dim > 1) top-1 agreement of the argmax over the last axis
    at every position. An output passes when max_abs_error <= atol and cosine >= min_cosine on
    every sample and pocketml's output holds no NaN/Inf (an infinity the reference has at the same
    place is allowed); see `pocketml.validation.metrics` for the edge cases.
    `compute_precision` ("float32"/"float16") overrides the model's.
    """
    try:
        import torch
    except ImportError:
        raise ConfigError("validating against PyTorch needs PyTorch: pip install 'pocketml[torch]'") from None
    if not isinstance(atol, (int, float)) or not atol >= 0 or math.isinf(atol):
        raise ConfigError(f"atol must be a finite number >= 0, got {atol!r}")
    if not isinstance(min_cosine, (int, float)) or not -1.0 <= min_cosine <= 1.0:
        raise ConfigError(f"min_cosine must be a number in [-1, 1], got {min_cosine!r}")
    if compute_precision is not None and compute_precision not in PRECISIONS:
        raise ConfigError(f"compute_precision must be one of {PRECISIONS}, got {compute_precision!r}")
    model = _model(model_or_path, compute_precision)
    module = _torch_callable(torch_module)
    samples = _as_samples(example_inputs)
    names = model.input_names
    per_output: dict[str, list] = {n: [] for n in model.output_names}
    initial_buffers = None
    if model.states and isinstance(torch_module, torch.nn.Module):
        initial_buffers = [(b, b.detach().clone()) for b in torch_module.buffers()]
    first: dict[str, tuple] = {}
    nonfinite: list[str] = []
    for i, sample in enumerate(samples):
        where = f"sample {i}: " if len(samples) > 1 else ""
        if len(sample) != len(names):
            raise InputError(f"{where}got {len(sample)} input(s) but the model takes {len(names)} "
                             f"({', '.join(names)})")
        arrays = {n: _to_numpy(t) for n, t in zip(names, sample)}
        try:
            # a stateful model: every sample is a new sequence, on both sides
            state = model.make_state() if model.states else None
            if initial_buffers is not None:
                for buf, init in initial_buffers:
                    buf.copy_(init)
            got = model.predict(arrays, state=state)
        except InputError as e:
            if not where:
                raise
            raise InputError(f"{where}{e} (every sample must fit the model's input types: "
                             f"{', '.join(f'{k}: {t}' for k, t in model.inputs.items())})") from None
        with torch.no_grad():
            ref = flatten_outputs(module(*(_to_torch(t) for t in sample)))
        if len(ref) != len(model.output_names):
            raise InputError(f"{where}the torch module returned {len(ref)} tensor(s) but the model has "
                             f"{len(model.output_names)} output(s) ({', '.join(model.output_names)})")
        if has_nonfinite(arrays.values()) or has_nonfinite(got.values()):
            nonfinite += [f"{where}{line}" for line in find_nonfinite(model, arrays).lines()]
        for name, r in zip(model.output_names, ref):
            r = _to_numpy(r)
            first.setdefault(name, (r.shape, got[name].dtype))
            per_output[name].append(compare_arrays(got[name], r))
    outputs = {n: aggregate(n, per_output[n], first[n][0], str(first[n][1]), atol, min_cosine)
               for n in model.output_names}
    return Report(outputs, all(m.passed for m in outputs.values()), len(samples), float(atol),
                  float(min_cosine), model.compute_precision, nonfinite)
