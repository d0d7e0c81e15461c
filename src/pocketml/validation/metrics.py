"""Accuracy metrics between a pocketml output and its reference (NumPy only, all in float64).

Definitions (per output; `got` is pocketml's output, `ref` the reference, both as float64):

* max_abs_error  = max |got - ref|
* max_rel_error  = max |got - ref| / max |ref|   (relative to the largest reference magnitude, not
  elementwise, so near-zero reference values do not blow it up; 0/0 = 0 and x/0 = inf)
* cosine         = <got, ref> / (|got| |ref|) over the flattened arrays (1.0 when both are all
  zeros, 0.0 when only one is)
* snr_db         = 10 log10(sum ref^2 / sum (got - ref)^2)   (inf when the outputs are identical)
* top1_agreement = fraction of positions (all but the last axis) where argmax over the last axis
  agrees; only for outputs that look like logits: floating point with a last dimension > 1.

Non-finite values: a position where both outputs hold the same infinity is consistent and left out
of the metrics (masks often hold -inf). Any NaN in pocketml's output, any other infinity in it, and
any non-finite reference value that pocketml does not reproduce make the output fail; the report
says how many there are and where the first one is. The other metrics cover the finite positions.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class SampleMetrics:
    """Metrics of one output on one input sample."""
    max_abs_error: float
    max_rel_error: float
    cosine: float
    snr_db: float
    top1_agree: int | None = None  # positions whose argmax agrees (None: not logits-like)
    top1_total: int | None = None
    problem: str | None = None  # non-finite values or a shape mismatch, said in words


@dataclass
class OutputMetrics:
    """Metrics of one output, aggregated over all samples (worst case, except mean_cosine)."""
    name: str
    shape: tuple  # shape of the (first sample's) reference output
    dtype: str  # dtype of pocketml's output
    max_abs_error: float  # worst over samples
    max_rel_error: float  # worst over samples
    cosine: float  # minimum over samples
    mean_cosine: float  # mean over samples
    snr_db: float  # minimum over samples
    top1_agreement: float | None  # agreeing positions / all positions over all samples, or None
    passed: bool
    samples: int = 1
    problems: list[str] = field(default_factory=list)  # non-finite values, shape mismatches

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


def _first_index(mask: np.ndarray) -> tuple:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _nonfinite_problem(got: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(mask of positions the metrics use, description of inconsistent non-finite values or None)."""
    got_ok, ref_ok = np.isfinite(got), np.isfinite(ref)
    if got_ok.all() and ref_ok.all():
        return np.ones(got.shape, dtype=bool), None
    same_inf = np.isinf(got) & (got == ref)
    parts = []
    nan = np.isnan(got)
    bad_inf = np.isinf(got) & ~same_inf
    ref_bad = ~ref_ok & got_ok
    if nan.any():
        parts.append(f"{int(nan.sum())} NaN in the pocketml output (first at index {_first_index(nan)})")
    if bad_inf.any():
        parts.append(f"{int(bad_inf.sum())} Inf in the pocketml output where the reference differs "
                     f"(first at index {_first_index(bad_inf)})")
    if ref_bad.any():
        parts.append(f"{int(ref_bad.sum())} non-finite reference value(s) where pocketml's is finite "
                     f"(first at index {_first_index(ref_bad)})")
    return got_ok & ref_ok, "; ".join(parts) or None


def is_logits_like(shape: tuple, dtype) -> bool:
    """Floating point with a last dimension > 1: top-1 agreement is meaningful."""
    return len(shape) >= 1 and shape[-1] > 1 and np.issubdtype(np.dtype(dtype), np.floating)


def compare_arrays(got, ref) -> SampleMetrics:
    """Metrics of one output array `got` against the reference `ref` (see the module docstring)."""
    got, ref = np.asarray(got), np.asarray(ref)
    if got.shape != ref.shape:
        nan = float("nan")
        return SampleMetrics(nan, nan, nan, nan,
                             problem=f"shape mismatch: pocketml {got.shape}, reference {ref.shape}")
    logits = is_logits_like(ref.shape, ref.dtype) or is_logits_like(got.shape, got.dtype)
    g, r = got.astype(np.float64), ref.astype(np.float64)
    mask, problem = _nonfinite_problem(g, r)
    if not mask.all():
        g, r = np.where(mask, g, 0.0), np.where(mask, r, 0.0)  # excluded positions count as equal
    diff = g - r
    max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    ref_max = float(np.max(np.abs(r))) if r.size else 0.0
    max_rel = max_abs / ref_max if ref_max > 0 else (0.0 if max_abs == 0 else math.inf)
    gg, rr, gr = float(np.dot(g.ravel(), g.ravel())), float(np.dot(r.ravel(), r.ravel())), \
        float(np.dot(g.ravel(), r.ravel()))
    if gg == 0 and rr == 0:
        cosine = 1.0
    elif gg == 0 or rr == 0:
        cosine = 0.0
    else:
        cosine = min(1.0, max(-1.0, gr / (math.sqrt(gg) * math.sqrt(rr))))
    noise = float(np.dot(diff.ravel(), diff.ravel()))
    if noise == 0:
        snr = math.inf
    elif rr == 0:
        snr = -math.inf
    else:
        snr = 10.0 * math.log10(rr / noise)
    agree = total = None
    if logits:
        a, b = np.argmax(g, axis=-1), np.argmax(r, axis=-1)
        agree, total = int(np.sum(a == b)), int(a.size)
    return SampleMetrics(max_abs, max_rel, cosine, snr, agree, total, problem)


def aggregate(name: str, per_sample: list[SampleMetrics], shape: tuple, dtype: str, atol: float,
              min_cosine: float) -> OutputMetrics:
    """One OutputMetrics over several samples: worst max errors, min and mean cosine, min SNR,
    top-1 agreement over all positions of all samples; passes when every sample does."""
    def worst(values, fn):
        values = list(values)
        return math.nan if any(math.isnan(v) for v in values) else fn(values)

    problems = [f"sample {i}: {m.problem}" if len(per_sample) > 1 else m.problem
                for i, m in enumerate(per_sample) if m.problem]
    max_abs = worst((m.max_abs_error for m in per_sample), max)
    max_rel = worst((m.max_rel_error for m in per_sample), max)
    cosine = worst((m.cosine for m in per_sample), min)
    mean_cosine = worst((m.cosine for m in per_sample), lambda v: float(np.mean(v)))
    snr = worst((m.snr_db for m in per_sample), min)
    totals = [(m.top1_agree, m.top1_total) for m in per_sample if m.top1_total is not None]
    top1 = None
    if totals and len(totals) == len(per_sample):
        n = sum(t for _, t in totals)
        top1 = sum(a for a, _ in totals) / n if n else 1.0
    passed = (not problems and max_abs <= atol and cosine >= min_cosine)  # NaN compares False
    return OutputMetrics(name, tuple(shape), str(dtype), max_abs, max_rel, cosine, mean_cosine, snr,
                         top1, bool(passed), len(per_sample), problems)
