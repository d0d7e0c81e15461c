"""Micro-benchmark of _native.PackedLinear.gemm on SmolLM2-135M-like layer shapes, every packed
format against NumPy's BLAS `x @ W.T` on the dense float32 weight.

M = 1 (a decode step) reports GB/s of packed bytes read; M = 128 (a prefill) GFLOP/s. Engines
are timed alternately, round after round, and the medians reported (other processes on the
machine add noise). Usage: python benchmarks/bench_kernels.py [--threads 2] [--rounds 15]
"""

import argparse
import os
import statistics
import time

import numpy as np

SHAPES = [(576, 576), (1536, 576), (576, 1536), (49152, 576)]
MS = [1, 128]


def formats(w, rng):
    from pocketml import _native
    from pocketml.compress import numerics as N
    P = _native.PackedLinear
    n, k = w.shape
    out = {"f32": P.dense(w), "f16": P.dense(w.astype(np.float16))}
    q = N.quantize(w, "int8", granularity="per_channel")
    out["int8 channel"] = P.quantized(q.data, q.scale, None, "int8", n, k)
    q = N.quantize(w, "int4", granularity="per_block", block_size=32)
    out["int4 block32"] = P.quantized(N.pack_quantized(q.data, "int4"),
                                      q.scale.astype(np.float16), None, "int4", n, k)
    # random codes and tables: the kernels' speed does not depend on the clustering
    idx = N.pack_bits(rng.integers(0, 16, (n, k)), 4)
    out["lut4 tensor"] = P.lut(idx, rng.standard_normal((1, 1, 16, 1)).astype(np.float32), 4, n, k)
    out["lut4 16 rows"] = P.lut(idx, rng.standard_normal((n // 16, 1, 16, 1)).astype(np.float32),
                                4, n, k)
    return out


def timed(fn, min_s=0.02):
    """Seconds per call of fn: a few warm-up calls (other engines' threads settle), then enough
    calls to last min_s."""
    t0 = time.perf_counter()
    fn(), fn(), fn()
    once = max((time.perf_counter() - t0) / 3, 1e-7)
    reps = max(1, int(min_s / once))
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    from pocketml import _native
    rng = np.random.default_rng(0)
    print(f"simd: {_native.simd_level()}, threads: {args.threads}, rounds: {args.rounds} "
          f"(medians; NumPy BLAS with its own threads, OPENBLAS/OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', os.environ.get('OPENBLAS_NUM_THREADS', 'unset'))})")
    for n, k in SHAPES:
        w = (rng.standard_normal((n, k)) * 0.05).astype(np.float32)
        packed = formats(w, rng)
        for m in MS:
            x = rng.standard_normal((m, k)).astype(np.float32)
            out = np.empty((m, n), np.float32)
            engines = {"numpy f32 (BLAS)": (lambda: np.matmul(x, w.T, out=out), w.nbytes)}
            for name, p in packed.items():
                engines[name] = ((lambda p=p: p.gemm(x, out, None, args.threads)), p.nbytes)
            times = {e: [] for e in engines}
            for _ in range(args.rounds):
                for e, (fn, _) in engines.items():
                    times[e].append(timed(fn))
            print(f"\nN={n} K={k} M={m}")
            for e, (fn, nbytes) in engines.items():
                t = statistics.median(times[e])
                rate = (f"{nbytes / t / 1e9:6.1f} GB/s" if m == 1
                        else f"{2 * m * n * k / t / 1e9:6.1f} GFLOP/s")
                print(f"  {e:18s} {t * 1e6:10.1f} us  {rate}  ({nbytes / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
