"""`pocketml predict --check`: where NaN/Inf come from (the inputs, or the first op making them),
as `pocketml.validation.find_nonfinite` reports it, escaped for the terminal."""
from __future__ import annotations

from ..inspect import printable
from ..validation import find_nonfinite, has_nonfinite


def nonfinite_warning(outputs: dict) -> str | None:
    """The warning `predict` prints without --check when an output holds NaN/Inf, else None."""
    bad = [printable(n) for n, a in outputs.items() if has_nonfinite([a])]
    if not bad:
        return None
    return (f"output(s) {', '.join(repr(n) for n in bad)} hold NaN or Inf; run with --check to see "
            "where they first appear")


def run_checked(model, inputs: dict) -> tuple[dict, list[str], bool]:
    """Run `model` on `inputs` once; (outputs, report lines, whether anything was non-finite)."""
    report = find_nonfinite(model, inputs)
    lines = [printable(line) for line in report.lines()] or ["all inputs, op outputs and outputs are finite"]
    return report.prediction, lines, bool(report)
