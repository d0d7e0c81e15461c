"""1-D k-means palettization speed: the native core vs the NumPy reference (and kmeans1d).

    python benchmarks/bench_kmeans.py [--repeat 5] [--kmeans1d PYTHON]

Times `pocketml.compress.palettize.palettize(w, 4, mode="kmeans")` on a 2048x2048 N(0, 1) float32
weight (seed 0), per_tensor (one problem of 4.2M values) and per_grouped_channel group_size 16
(128 problems of 32768 values): with pocketml._native, and with the NumPy reference
(`pocketml.compress.kmeans._native` set to None), checking that both give identical tables and indices. Each
time is the best of --repeat runs (the reference: of 2). With --kmeans1d, a Python that has
coremltools (e.g. benchmarks/.venv-coremltools/bin/python) times coremltools' float16 k-means
step on the same values in float16: np.unique with counts, its vendored exact kmeans1d.cluster,
labels (coremltools' palettize_weights adds its own overhead on top). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

from pocketml.compress import kmeans
from pocketml.compress.palettize import palettize

CASES = {"per_tensor": {}, "g16": {"granularity": "per_grouped_channel", "group_size": 16}}

KMEANS1D = r"""
import sys, time, numpy as np
from coremltools._deps import _kmeans1d as kmeans1d  # coremltools' own copy (with weights)
w = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32).astype(np.float16)
repeat = int(sys.argv[1])
for name, groups in (("per_tensor", [w.reshape(-1)]), ("g16", [w[16 * g:16 * g + 16].reshape(-1) for g in range(128)])):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for x in groups:  # coremltools' float16 path (quantization_utils._get_kmeans_lookup_table_and_weight)
            values, indices, counts = np.unique(x, return_inverse=True, return_counts=True)
            res = kmeans1d.cluster(values, min(len(values), 16), weights=counts)
            lut, labels = np.array(res.centroids), np.array(res.clusters)[indices.reshape(-1)]
        best = min(best, time.perf_counter() - t)
    print(name, best)
"""


def best_time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--kmeans1d", metavar="PYTHON", help="a Python with coremltools")
    args = ap.parse_args()
    if kmeans._native is None:
        sys.exit("pocketml._native is not built (run ./scripts/setup.sh)")
    w = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    native = kmeans._native
    rows = {}
    for name, kw in CASES.items():
        got = palettize(w, 4, **kw)
        t_native = best_time(lambda: palettize(w, 4, **kw), args.repeat)
        kmeans._native = None
        try:
            want = palettize(w, 4, **kw)
            t_ref = best_time(lambda: palettize(w, 4, **kw), 2)
        finally:
            kmeans._native = native
        same = np.array_equal(got.lut, want.lut) and np.array_equal(got.indices, want.indices)
        rows[name] = [t_native, t_ref, same]
        print(f"{name}: native {t_native:.3f} s, NumPy {t_ref:.3f} s, identical {same}",
              file=sys.stderr)
    if args.kmeans1d:
        out = subprocess.run([args.kmeans1d, "-c", KMEANS1D, str(min(args.repeat, 2))],
                             check=True, capture_output=True, text=True).stdout
        for line in out.split("\n"):
            if line.strip():
                name, t = line.split()
                rows[name].append(float(t))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"2048x2048 float32 N(0, 1), 4-bit k-means palettize; {cpus} CPUs; load average "
          f"{os.getloadavg()[0]:.1f}; best of {args.repeat} (NumPy: of 2)\n")
    head = "| case | native s | NumPy reference s | speed-up | identical |"
    if args.kmeans1d:
        head += " kmeans1d s | vs kmeans1d |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for name, r in rows.items():
        line = f"| {name} | {r[0]:.3f} | {r[1]:.2f} | {r[1] / r[0]:.0f}x | {r[2]} |"
        if args.kmeans1d:
            line += f" {r[3]:.2f} | {r[3] / r[0]:.0f}x |"
        print(line)


if __name__ == "__main__":
    main()
