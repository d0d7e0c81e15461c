"""Micro-benchmark of _native.PackedLinear.gemm on SmolLM2-135M-like layer shapes, every packed
format against NumPy's BLAS `x @ W.T` on the dense float32 weight.

Hot: one weight per format, reused call after call (it stays in L2/L3 when small). M = 1 (a
decode step) reports GB/s of packed bytes read; M = 128 (a prefill) GFLOP/s. Each format is timed
with exact=True (fp32 activations) and, where it differs, exact=False (int8 activations: "fast").
Cold: M = 1 cycling through enough distinct copies of each weight that they exceed the L3
(--cold-mib, 64 MiB by default), as a real model's decode step does.
Engines are timed alternately, round after round, and the medians reported (other processes on
the machine add noise). Usage:
  python benchmarks/bench_kernels.py [--threads 2] [--rounds 9] [--no-hot] [--no-cold] [--m 1]
"""

import argparse
import os
import statistics
import time

import numpy as np

SHAPES = [(576, 576), (1536, 576), (576, 1536), (49152, 576)]
MS = [1, 128]
# formats with an int8-activation path (exact=False differs from exact=True)
FAST = ("int8 channel", "int4 block32", "int4 block32 zp", "lut4 tensor", "lut4 16 rows",
        "lut4 16 rows rs")


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
    q = N.quantize(w, "uint4", symmetric=False, granularity="per_block", block_size=32)
    out["int4 block32 zp"] = P.quantized(N.pack_quantized(q.data, "uint4"),
                                         q.scale.astype(np.float16), q.zero_point, "uint4", n, k)
    # random codes and tables: the kernels' speed does not depend on the clustering
    idx = N.pack_bits(rng.integers(0, 16, (n, k)), 4)
    out["lut4 tensor"] = P.lut(idx, rng.standard_normal((1, 1, 16, 1)).astype(np.float32), 4, n, k)
    out["lut4 16 rows"] = P.lut(idx, rng.standard_normal((n // 16, 1, 16, 1)).astype(np.float32),
                                4, n, k)
    out["lut4 16 rows rs"] = P.lut(idx, rng.standard_normal((n // 16, 1, 16, 1)).astype(np.float16),
                                   4, n, k, rng.uniform(0.5, 2, n).astype(np.float32))
    return out


def cold_copies(name, w, rng, total_bytes):
    """Distinct PackedLinear objects of format `name` whose packed bytes add up to total_bytes."""
    from pocketml import _native
    from pocketml.compress import numerics as N
    P = _native.PackedLinear
    n, k = w.shape
    # the arrays of one instance, then copies of them
    if name == "int8 channel":
        q = N.quantize(w, "int8", granularity="per_channel")
        arrs, make = (q.data, q.scale), lambda a: P.quantized(a[0], a[1], None, "int8", n, k)
    elif name == "int4 block32":
        q = N.quantize(w, "int4", granularity="per_block", block_size=32)
        arrs = (N.pack_quantized(q.data, "int4"), q.scale.astype(np.float16))
        make = lambda a: P.quantized(a[0], a[1], None, "int4", n, k)
    elif name == "int4 block32 zp":
        q = N.quantize(w, "uint4", symmetric=False, granularity="per_block", block_size=32)
        arrs = (N.pack_quantized(q.data, "uint4"), q.scale.astype(np.float16), q.zero_point)
        make = lambda a: P.quantized(a[0], a[1], a[2], "uint4", n, k)
    elif name.startswith("lut4"):
        idx = N.pack_bits(rng.integers(0, 16, (n, k)), 4)
        g = 1 if name == "lut4 tensor" else n // 16
        lut = rng.standard_normal((g, 1, 16, 1)).astype(np.float32)
        rs = rng.uniform(0.5, 2, n).astype(np.float32) if name.endswith("rs") else None
        arrs, make = (idx, lut), lambda a: P.lut(a[0], a[1], 4, n, k, rs)
    elif name == "f16":
        arrs, make = (w.astype(np.float16),), lambda a: P.dense(a[0])
    else:
        raise ValueError(name)
    first = make(arrs)
    count = max(2, -(-total_bytes // first.nbytes))
    return [first] + [make(tuple(a.copy() for a in arrs)) for _ in range(count - 1)]


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


def report(title, engines, rounds, m, n, k):
    times = {e: [] for e in engines}
    for _ in range(rounds):
        for e, (fn, _) in engines.items():
            times[e].append(timed(fn))
    print(f"\n{title}")
    for e, (fn, nbytes) in engines.items():
        t = statistics.median(times[e])
        rate = (f"{nbytes / t / 1e9:6.1f} GB/s" if m == 1
                else f"{2 * m * n * k / t / 1e9:6.1f} GFLOP/s")
        print(f"  {e:26s} {t * 1e6:10.1f} us  {rate}  ({nbytes / 1e6:.2f} MB)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--m", type=int, nargs="*", default=MS, help="M values of the hot runs")
    ap.add_argument("--no-hot", action="store_true")
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument("--cold-mib", type=int, default=64)
    args = ap.parse_args()
    from pocketml import _native
    rng = np.random.default_rng(0)
    th = args.threads
    try:  # older builds have no exact= keyword
        _native.PackedLinear.dense(np.zeros((1, 1), np.float32)).gemm(
            np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32), None, 1, exact=False)
        has_fast = True
    except TypeError:
        has_fast = False
    print(f"simd: {_native.simd_level()}, threads: {th}, rounds: {args.rounds} "
          f"(medians; NumPy BLAS with its own threads, OPENBLAS/OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', os.environ.get('OPENBLAS_NUM_THREADS', 'unset'))})"
          f"{'' if has_fast else '; this build has no exact=False'}")
    for n, k in SHAPES:
        w = (rng.standard_normal((n, k)) * 0.05).astype(np.float32)
        if not args.no_hot:
            packed = formats(w, rng)
            for m in args.m:
                x = rng.standard_normal((m, k)).astype(np.float32)
                out = np.empty((m, n), np.float32)
                engines = {"numpy f32 (BLAS)": (lambda: np.matmul(x, w.T, out=out), w.nbytes)}
                for name, p in packed.items():
                    engines[name] = ((lambda p=p: p.gemm(x, out, None, th)), p.nbytes)
                    if has_fast and name in FAST:
                        engines[name + " fast"] = (
                            (lambda p=p: p.gemm(x, out, None, th, exact=False)), p.nbytes)
                report(f"hot N={n} K={k} M={m}", engines, args.rounds, m, n, k)
        if not args.no_cold:
            x = rng.standard_normal((1, k)).astype(np.float32)
            out = np.empty((1, n), np.float32)
            engines = {}
            for name in FAST + ("f16",):
                ps = cold_copies(name, w, rng, args.cold_mib << 20)

                def cycle(ps=ps, exact=True):
                    for p in ps:
                        p.gemm(x, out, None, th, **({} if exact else {"exact": False}))

                total = sum(p.nbytes for p in ps)
                engines[name] = (cycle, total)
                if has_fast and name != "f16":
                    engines[name + " fast"] = ((lambda c=cycle: c(exact=False)), total)
            report(f"cold (> {args.cold_mib} MiB of copies) N={n} K={k} M=1 "
                   f"(times per full cycle)", engines, max(3, args.rounds // 2), 1, n, k)


if __name__ == "__main__":
    main()
