"""all-MiniLM-L6-v2 sentence embeddings: pocketml (float32, int8) vs ONNX Runtime (float32, dynamic int8).

    python benchmarks/bench_encoder.py [--repeat 10] [--rounds 3] [--shapes 1x128,32x128]

The issue's encoder goal: batch 1 x 128 tokens and batch 32 x 128, pocketml float32 at most 0.8x
ONNX Runtime's float32 latency, pocketml 8-bit at most ONNX Runtime's dynamic int8 latency, with
a cosine of at least 0.999 against the float embeddings. Inputs are real text (the zoo's
Wikipedia article cut into 128-token pieces). Every engine runs in its own process (its own peak
RSS), engines alternate within each round, medians over rounds are printed with the ratios.
- pocketml: the zoo's `minilm` package (float32) and `pm.Quantize("int8")` of it (per-channel
  weights; int8 activations per block of 32 on the native backend's default path).
- ONNX Runtime (`pip install -e '.[bench]'`): the same torch module exported to ONNX, and
  `onnxruntime.quantization.quantize_dynamic` of it (int8 weights, activations quantized per call).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
CACHE = HERE / ".cache" / "encoder"


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def inputs(batch: int, tokens: int) -> dict:
    """`batch` rows of `tokens` real tokens each (consecutive pieces of the Wikipedia text)."""
    from pocketml.zoo import data, minilm

    words = data.wikipedia_text().split()
    pieces = [" ".join(words[i * 120:(i + 1) * 120]) for i in range(batch)]
    ids, mask = minilm.tokenize(pieces)
    if ids.shape[1] < tokens:
        raise SystemExit(f"not enough text for {tokens} tokens per row")
    return {"input_ids": np.ascontiguousarray(ids[:, :tokens]), "attention_mask": np.ascontiguousarray(mask[:, :tokens])}


def prepare() -> None:
    """The packages and ONNX files, made once into benchmarks/.cache/encoder/."""
    import warnings

    CACHE.mkdir(parents=True, exist_ok=True)
    if not (CACHE / "minilm.pocket").exists():
        import torch

        import pocketml as pm
        from pocketml import zoo

        entry = zoo.get("minilm")
        module = entry.build()
        print("converting minilm", file=sys.stderr)
        pm.convert(module, entry.example_inputs(), input_names=entry.input_names, output_names=entry.output_names,
                   dynamic_shapes=entry.dynamic_shapes()).save(CACHE / "minilm.pocket")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm.compress(str(CACHE / "minilm.pocket"), pm.Quantize("int8")).save(CACHE / "minilm-int8.pocket")
        print("exporting minilm to ONNX", file=sys.stderr)
        axes = {n: {0: "batch", 1: "seq"} for n in entry.input_names}
        torch.onnx.export(module, tuple(entry.example_inputs()), str(CACHE / "minilm.onnx"), dynamo=False,
                          input_names=list(entry.input_names), output_names=list(entry.output_names),
                          dynamic_axes={**axes, entry.output_names[0]: {0: "batch"}})
    if not (CACHE / "minilm-int8.onnx").exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(CACHE / "minilm.onnx"), str(CACHE / "minilm-int8.onnx"), weight_type=QuantType.QInt8)


def worker(engine: str, shape: str, repeat: int) -> dict:
    batch, tokens = map(int, shape.split("x"))
    feeds = inputs(batch, tokens)
    t0 = time.perf_counter()
    if engine.startswith("pocketml"):
        import pocketml as pm

        model = pm.load(CACHE / ("minilm-int8.pocket" if engine.endswith("int8") else "minilm.pocket"))
        run = lambda: model.predict(feeds)[model.output_names[0]]  # noqa: E731
    else:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(CACHE / ("minilm-int8.onnx" if engine.endswith("int8") else "minilm.onnx")),
                                    providers=["CPUExecutionProvider"])
        run = lambda: sess.run(None, feeds)[0]  # noqa: E731
    load = time.perf_counter() - t0
    out = run()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    np.save(CACHE / f"out-{engine}-{shape}.npy", out)
    return {"load_s": load, "median_ms": float(np.median(times) * 1e3), "peak_rss_mib": _peak_rss_mib()}


ENGINES = ("pocketml float32", "onnxruntime float32", "pocketml int8", "onnxruntime int8")


def _cos_min(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return float(np.min(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--shapes", default="1x128,32x128")
    p.add_argument("--worker", nargs=2, metavar=("ENGINE", "SHAPE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.repeat)))
        return 0
    prepare()
    shapes = args.shapes.split(",")
    runs: dict = {}
    for i in range(args.rounds):
        for shape in shapes:
            for engine in ENGINES:
                print(f"round {i + 1}/{args.rounds}: {engine} {shape}", file=sys.stderr, flush=True)
                r = subprocess.run([sys.executable, __file__, "--worker", engine, shape, "--repeat", str(args.repeat)],
                                   capture_output=True, text=True)
                if r.returncode:
                    print(r.stderr[-2000:], file=sys.stderr)
                    continue
                runs.setdefault((engine, shape), []).append(json.loads(r.stdout.strip().splitlines()[-1]))
    print("| shape | engine | median ms | vs ORT float32 | vs ORT int8 | cosine min vs float | peak RSS MiB | load s |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in shapes:
        ref = np.load(CACHE / f"out-pocketml float32-{shape}.npy")
        med = {e: float(np.median([r["median_ms"] for r in runs[(e, shape)]])) for e in ENGINES if (e, shape) in runs}
        for e, ms in med.items():
            rs = runs[(e, shape)]
            cos = _cos_min(np.load(CACHE / f"out-{e}-{shape}.npy"), ref)
            vs = [f"{ms / med[b]:.2f}x" if b in med else "-" for b in ("onnxruntime float32", "onnxruntime int8")]
            print(f"| {shape} | {e} | {ms:.1f} | {vs[0]} | {vs[1]} | {cos:.5f} | "
                  f"{np.median([r['peak_rss_mib'] for r in rs]):.0f} | {np.median([r['load_s'] for r in rs]):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
