"""Mixed precision to a size budget: each weight gets one of several candidate modes so that the
package fits `target_size` with the least total loss.

The loss of weight i at mode m is its layer's relative output error on the calibration inputs,
tr(dW H dW^T) / tr(W H W^T) with H = X^T X (the diagonal of H where only that was collected; the
weight's own relative error for weights no input reaches, such as embeddings, and without
calibration data). Every weight starts at its largest candidate; then, while the weights do not
fit, the step (one weight to its next smaller candidate) that adds the least loss per byte saved
is taken: a greedy descent of the Lagrangian, as HAWQ-style allocators do. Each step's (size,
loss) is the size/quality curve.
"""
from __future__ import annotations

import re
import sys

import numpy as np

from ..errors import ConfigError
from .config import OptimizationConfig, Palettize, Quantize, as_specs
from .gptq import rows_of

# From 8 bits down: int8 per channel, affine int4 per block of 32 (5 bits: Q4_1's), int4 per
# block of 32 (4.5 bits: Q4_0's), a 4-bit LUT per 16 channels, a 3-bit one with channel scales.
DEFAULT_CANDIDATES = (
    Quantize("int8"),
    Quantize("uint4", symmetric=False, granularity="per_block", block_size=32),
    Quantize("int4", granularity="per_block", block_size=32),
    Palettize(4, granularity="per_grouped_channel", group_size=16),
    Palettize(3, granularity="per_grouped_channel", group_size=16, per_channel_scale=True),
)


# With calibration data: the same, each by GPTQ.
GPTQ_CANDIDATES = (
    Quantize("int8", algorithm="gptq"),
    Quantize("uint4", symmetric=False, granularity="per_block", block_size=32, algorithm="gptq"),
    Quantize("int4", granularity="per_block", block_size=32, algorithm="gptq"),
    Palettize(4, granularity="per_grouped_channel", group_size=16, gptq=True),
    Palettize(3, granularity="per_grouped_channel", group_size=16, per_channel_scale=True, gptq=True),
)


def parse_size(size) -> int:
    """Bytes from an int or a string like "60MB", "60 MiB", "1.5GB"."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size > 0:
        return int(size)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]i?[bB]|[bB])?\s*", str(size))
    if not m:
        raise ConfigError(f"target_size must be a number of bytes or a size like '60MB', got {size!r}")
    unit = (m.group(2) or "B").upper()
    scale = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}[unit]
    return int(float(m.group(1)) * scale)


def _loss(w: np.ndarray, dense: np.ndarray, cal, out_axis: int) -> float:
    d = (dense.astype(np.float64) - w)
    if cal is None:
        return float((d * d).sum() / max((w.astype(np.float64) ** 2).sum(), 1e-30))
    st = cal.stats
    D, W = rows_of(d, out_axis), rows_of(w.astype(np.float64), out_axis)
    g = st.diag.shape[0]
    per = D.shape[0] // g
    num = den = 0.0
    for i in range(g):
        r = slice(i * per, (i + 1) * per)
        if st.gram is not None:  # tr(D G D^T) as one matrix product (BLAS)
            num += float(((D[r] @ st.gram[i]) * D[r]).sum())
            den += float(((W[r] @ st.gram[i]) * W[r]).sum())
        else:
            num += float((D[r] ** 2 * st.diag[i]).sum())
            den += float((W[r] ** 2 * st.diag[i]).sum())
    return num / max(den, 1e-30)


def plan(program, candidates, target: int, calibration: dict, min_weight_size: int, progress=None):
    """(OptimizationConfig naming every weight's mode, the curve [(bytes, loss)], the weights'
    bytes at the plan's end) for `target` bytes of package weights."""
    from .apply import _candidates, compress_weight, misfit

    specs = [as_specs(c) for c in candidates]
    fixed = sum(a.nbytes for a in program.weights.values())
    table = {}  # key -> [(bytes, loss, specs)] from the largest down
    work = []
    for fn in program.functions.values():
        for c in _candidates(fn).values():
            key = c[0].attrs["weight"]
            if key not in table and program.weights[key].size >= min_weight_size:
                table[key] = None
                work.append((key, c))
    show = sys.stderr.isatty() if progress is None else progress
    if show and work:
        from rich.progress import track
        work = track(work, description="measuring candidates", transient=True)
    for key, (_, _, out_axis, in_axis) in work:
        w = np.asarray(program.weights[key], np.float32)
        fixed -= program.weights[key].nbytes
        options = []
        for s in specs:
            if misfit(w.shape, s, out_axis, in_axis):
                continue
            chain = compress_weight(key, w, s, out_axis, in_axis, calibration.get(key))
            nbytes = sum(a.nbytes for a in chain.weights.values())
            options.append((nbytes, _loss(w, chain.evaluate(), calibration.get(key), out_axis), s))
        options.sort(key=lambda o: -o[0])
        table[key] = options or [(program.weights[key].nbytes, 0.0, None)]
    choice = {k: 0 for k in table}
    size = fixed + sum(opts[0][0] for opts in table.values())
    loss = sum(opts[0][1] for opts in table.values())
    curve = [(size, loss)]
    while size > target:
        best, best_rate = None, np.inf
        for k, opts in table.items():
            i = choice[k]
            if i + 1 < len(opts):
                saved = opts[i][0] - opts[i + 1][0]
                if saved > 0:
                    rate = (opts[i + 1][1] - opts[i][1]) / saved
                    if rate < best_rate:
                        best, best_rate = k, rate
        if best is None:
            smallest = fixed + sum(opts[-1][0] for opts in table.values())
            raise ConfigError(f"target_size {target:,} bytes is below what the candidates reach: "
                              f"{smallest:,} bytes with every weight at its smallest mode; add smaller "
                              "candidates or raise the target")
        i = choice[best]
        size -= table[best][i][0] - table[best][i + 1][0]
        loss += table[best][i + 1][1] - table[best][i][1]
        choice[best] = i + 1
        curve.append((size, loss))
    names = {k: table[k][i][2] for k, i in choice.items()}
    cfg = OptimizationConfig(op_name_configs=names, min_weight_size=min_weight_size)
    return cfg, curve, size
