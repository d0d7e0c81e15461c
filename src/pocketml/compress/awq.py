"""Activation-aware scaling (AWQ, Lin et al. 2023) for linear quantization with calibration data.

The layers reading one input x store W * s, quantized, and read x / s (a `mul` before them): input
columns with large activations get their weights scaled up before rounding, so their relative
rounding error shrinks where it costs the most output error, and the columns with small
activations, which cost little, take more. s_j = m_j^a with m_j = sqrt(E[x_j^2]) (normalised so
that max s * min s = 1), a in 0.1 ... 1 searched on the layers' calibrated output error
sum tr(dW H dW^T), H = E[x x^T], each candidate's weights rounded as the config rounds them (its
searched grids weighted by the inputs' energy; GPTQ's grids stand in for GPTQ), with no scaling
kept where none does better.
"""
from __future__ import annotations

import numpy as np

from ..formats.quant import dequantize
from .quantize import quantize

ALPHAS = np.linspace(0.1, 1.0, 10)


def best_scales(stats, weights: list[np.ndarray], spec) -> np.ndarray | None:
    """s (K,) float32 for the layers of `weights` ([N_i, K] each) reading the input of `stats`
    (its full second moments), or None where no scaling beats none."""
    h = stats.gram[0] / max(stats.rows, 1)
    ws = [np.asarray(w, np.float64) for w in weights]
    d = np.diag(h)
    algorithm = "minmax" if spec.algorithm == "minmax" else "search"  # (GPTQ's grids are searched)

    def error(s: np.ndarray) -> float:
        total = 0.0
        for w in ws:
            q = quantize(w * s, spec.dtype, spec.symmetric, spec.granularity, 0, spec.block_size, 1, algorithm,
                         (d / (s * s))[None, :])
            dw = dequantize(q.data.astype(np.float64), q.scale, q.zero_point) / s - w
            total += float(np.sum((dw @ h) * dw))
        return total

    m = np.sqrt(np.maximum(d, 1e-30))
    best, choice = error(np.ones_like(m)), None
    for a in ALPHAS:
        s = m ** a
        s = s / np.sqrt(s.max() * s.min())
        e = error(s)
        if e < best:
            best, choice = e, s
    return None if choice is None else choice.astype(np.float32)
