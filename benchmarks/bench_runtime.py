"""pocketml (native backend, the default) vs PyTorch eager and ONNX Runtime on zoo models, same inputs.

    python benchmarks/bench_runtime.py [NAME ...] [--repeat N] [--rounds N] [--out DIR]

Each engine runs in its own process (so peak RSS is its own): load the model, run the first real
sample once to warm up, then N timed runs; engines alternate over `--rounds` rounds and the
medians over rounds are printed, with each engine's ratio to PyTorch and to ONNX Runtime.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, it does not inherit the parent's across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(engine: str, name: str, out_dir: Path, repeat: int) -> dict:
    """Runs inside a fresh process; returns load time, latency and peak RSS."""
    inputs = dict(np.load(out_dir / f"{name}.inputs.npz"))
    t0 = time.perf_counter()
    if engine == "pocketml":
        import pocketml as pm
        model = pm.load(out_dir / f"{name}.pocket")
        state = model.make_state() if model.states else None  # a prefill from an empty cache
        run = lambda: model.predict(inputs, state=state)  # noqa: E731
    elif engine == "torch":
        import torch
        from pocketml import zoo
        torch.set_grad_enabled(False)
        module = zoo.get(name).build()
        args = [torch.from_numpy(v) for v in inputs.values()]
        run = lambda: module(*args)  # noqa: E731
    elif engine == "onnxruntime":
        import onnxruntime as ort
        sess = ort.InferenceSession(str(out_dir / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        run = lambda: sess.run(None, inputs)  # noqa: E731
    load_s = time.perf_counter() - t0
    run()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return {"load_s": load_s, "median_ms": float(np.median(times) * 1e3), "peak_rss_mib": _peak_rss_mib()}


def prepare(name: str, out_dir: Path) -> list[str]:
    """Convert to .pocket (and .onnx where torch.onnx can export it); save the first sample."""
    import torch

    import pocketml as pm
    from pocketml import zoo

    entry = zoo.get(name)
    module = entry.build()
    sample = entry.samples()[0]
    np.savez(out_dir / f"{name}.inputs.npz", **{n: t.numpy() for n, t in zip(entry.input_names, sample)})
    dyn = entry.dynamic_shapes() if entry.dynamic_shapes else None
    pm.convert(module, entry.example_inputs(), input_names=entry.input_names,
               output_names=entry.output_names, dynamic_shapes=dyn).save(out_dir / f"{name}.pocket")
    engines = ["pocketml", "torch"]
    try:
        torch.onnx.export(module, tuple(sample), str(out_dir / f"{name}.onnx"), dynamo=False,
                          input_names=list(entry.input_names), output_names=list(entry.output_names))
        engines.append("onnxruntime")
    except Exception as e:  # report, don't hide: the table says ONNX Runtime was not measured
        print(f"  onnx export of {name} failed ({type(e).__name__}: {str(e)[:120]}); skipping ORT",
              file=sys.stderr)
    return engines


def main(argv=None) -> int:
    from pocketml import zoo

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", default=zoo.names())
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("out/bench"))
    p.add_argument("--worker", nargs=2, metavar=("ENGINE", "NAME"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.out, args.repeat)))
        return 0
    rows = []
    for name in args.names:
        print(f"[{name}] preparing", file=sys.stderr, flush=True)
        engines = prepare(name, args.out)
        runs: dict = {}
        for i in range(args.rounds):
            for engine in engines:
                print(f"[{name}] round {i + 1}/{args.rounds}: {engine}", file=sys.stderr, flush=True)
                r = subprocess.run([sys.executable, __file__, "--worker", engine, name, "--out", str(args.out),
                                    "--repeat", str(args.repeat)], capture_output=True, text=True)
                if r.returncode:
                    print(r.stderr[-2000:], file=sys.stderr)
                    continue
                runs.setdefault(engine, []).append(json.loads(r.stdout.strip().splitlines()[-1]))
        res = {e: {k: float(np.median([r[k] for r in rs])) for k in rs[0]} for e, rs in runs.items()}
        size = (args.out / f"{name}.pocket").stat().st_size / 2**20
        rows.append((name, size, res))
    print(f"\n{'model':26} {'engine':12} {'load s':>7} {'median ms':>10} {'vs torch':>9} {'vs ORT':>7} "
          f"{'peak RSS MiB':>13}")
    for name, size, res in rows:
        base = res.get("torch", {}).get("median_ms")
        ort = res.get("onnxruntime", {}).get("median_ms")
        for engine, r in res.items():
            ratio = f"{r['median_ms'] / base:.2f}x" if base else "-"
            vs_ort = f"{r['median_ms'] / ort:.2f}x" if ort else "-"
            print(f"{name:26} {engine:12} {r['load_s']:7.2f} {r['median_ms']:10.1f} {ratio:>9} {vs_ort:>7} "
                  f"{r['peak_rss_mib']:13.0f}")
        print(f"{name:26} package size {size:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
