"""EfficientNet-Lite0 image classification: pocketml (float32, int8, 6-bit LUT) vs ONNX Runtime and PyTorch.

    python benchmarks/bench_vision.py [--repeat 20] [--rounds 3] [--batches 1,8] [--engines ...]

Issue 9's goal: batch 1 and 8 at 224x224, pocketml float32 at most 0.8x ONNX Runtime's float32
latency, the int8 and 6-bit LUT packages at least as fast as the float one. Inputs are the zoo's
real photos (batch 8: its 7 photos and the first one mirrored). Every engine runs in its own
process (its own peak RSS), engines alternate within each round; medians over rounds are
printed with the ratios, and each engine's top-1 agreement with PyTorch.
- pocketml: the zoo's `efficientnet-lite0` converted with a dynamic batch, and
  `pm.Quantize("int8")` / `pm.Palettize(6)` of it (data-free).
- ONNX Runtime (`pip install -e '.[bench]'`): the same torch module exported to ONNX (opset 17,
  dynamic batch), default CPU session options (all graph optimizations, its NCHWc layouts).
- PyTorch eager, float32, `torch.no_grad()`.
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
CACHE = HERE / ".cache" / "vision"
PACKAGES = {"pocketml float32": "efficientnet.pocket", "pocketml int8": "efficientnet-int8.pocket",
            "pocketml lut6": "efficientnet-lut6.pocket"}
ENGINES = ("pocketml float32", "onnxruntime float32", "pocketml int8", "pocketml lut6", "torch float32")


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def images(batch: int) -> np.ndarray:
    """`batch` preprocessed real photos (cycled, every other cycle mirrored), from the cache
    `prepare` wrote (so a worker imports neither torch nor the zoo)."""
    photos = list(np.load(CACHE / "photos.npz").values())
    out = [photos[i % len(photos)] if (i // len(photos)) % 2 == 0 else photos[i % len(photos)][..., ::-1]
           for i in range(batch)]
    return np.ascontiguousarray(np.concatenate(out, 0), dtype=np.float32)


def prepare() -> None:
    """The packages and the ONNX file, made once into benchmarks/.cache/vision/."""
    import warnings

    CACHE.mkdir(parents=True, exist_ok=True)
    if not (CACHE / "photos.npz").exists():
        from pocketml.zoo import efficientnet_lite0

        np.savez(CACHE / "photos.npz", *[s[0].numpy() for s in efficientnet_lite0.samples()])
    if all((CACHE / f).exists() for f in (*PACKAGES.values(), "efficientnet.onnx")):
        return
    import torch

    import pocketml as pm
    from pocketml import zoo

    entry = zoo.get("efficientnet-lite0")
    module = entry.build()
    example = (torch.from_numpy(images(2)),)  # batch 2: torch.export specializes a size of 1
    batch = torch.export.Dim("batch", min=1, max=256)
    print("converting efficientnet-lite0", file=sys.stderr)
    pm.convert(module, example, input_names=entry.input_names, output_names=entry.output_names,
               dynamic_shapes=({0: batch},)).save(CACHE / PACKAGES["pocketml float32"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for engine, spec in (("pocketml int8", pm.Quantize("int8")), ("pocketml lut6", pm.Palettize(6))):
            pm.compress(str(CACHE / PACKAGES["pocketml float32"]), spec).save(CACHE / PACKAGES[engine])
        print("exporting efficientnet-lite0 to ONNX", file=sys.stderr)
        torch.onnx.export(module, example, str(CACHE / "efficientnet.onnx"), dynamo=False, opset_version=17,
                          input_names=list(entry.input_names), output_names=list(entry.output_names),
                          dynamic_axes={entry.input_names[0]: {0: "batch"}, entry.output_names[0]: {0: "batch"}})


def worker(engine: str, batch: int, repeat: int) -> dict:
    x = images(batch)
    t0 = time.perf_counter()
    if engine.startswith("pocketml"):
        import pocketml as pm

        model = pm.load(CACHE / PACKAGES[engine])
        run = lambda: model.predict({"image": x})["logits"]  # noqa: E731
    elif engine.startswith("onnxruntime"):
        import onnxruntime as ort

        sess = ort.InferenceSession(str(CACHE / "efficientnet.onnx"), providers=["CPUExecutionProvider"])
        run = lambda: sess.run(None, {"image": x})[0]  # noqa: E731
    else:
        import torch

        from pocketml import zoo

        torch.set_grad_enabled(False)
        module = zoo.get("efficientnet-lite0").build().eval()
        xt = torch.from_numpy(x)
        run = lambda: module(xt).numpy()  # noqa: E731
    load = time.perf_counter() - t0
    out = run()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    np.save(CACHE / f"out-{engine}-{batch}.npy", out)
    return {"load_s": load, "median_ms": float(np.median(times) * 1e3), "peak_rss_mib": _peak_rss_mib()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--worker", nargs=2, metavar=("ENGINE", "BATCH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.repeat)))
        return 0
    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        p.error(f"unknown engine(s) {sorted(unknown)}; choose from {list(ENGINES)}")
    prepare()
    batches = [int(b) for b in args.batches.split(",")]
    runs: dict = {}
    for i in range(args.rounds):
        for batch in batches:
            for engine in engines:
                print(f"round {i + 1}/{args.rounds}: {engine} batch {batch}", file=sys.stderr, flush=True)
                r = subprocess.run([sys.executable, __file__, "--worker", engine, str(batch), "--repeat",
                                    str(args.repeat)], capture_output=True, text=True)
                if r.returncode:
                    print(r.stderr[-2000:], file=sys.stderr)
                    continue
                runs.setdefault((engine, batch), []).append(json.loads(r.stdout.strip().splitlines()[-1]))
    print("| batch | engine | median ms | vs ORT float32 | vs pocketml float32 | top-1 = PyTorch | max abs vs PyTorch "
          "| peak RSS MiB | load s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for batch in batches:
        ref_path = CACHE / f"out-torch float32-{batch}.npy"
        ref = np.load(ref_path) if ref_path.exists() else None
        med = {e: float(np.median([r["median_ms"] for r in runs[(e, batch)]])) for e in engines if (e, batch) in runs}
        for e, ms in med.items():
            rs = runs[(e, batch)]
            out = np.load(CACHE / f"out-{e}-{batch}.npy")
            agree = "-" if ref is None else f"{int((out.argmax(1) == ref.argmax(1)).sum())}/{batch}"
            err = "-" if ref is None else f"{float(np.abs(out - ref).max()):.1e}"
            vs = [f"{ms / med[b]:.2f}x" if b in med else "-" for b in ("onnxruntime float32", "pocketml float32")]
            print(f"| {batch} | {e} | {ms:.2f} | {vs[0]} | {vs[1]} | {agree} | {err} | "
                  f"{np.median([r['peak_rss_mib'] for r in rs]):.0f} | {np.median([r['load_s'] for r in rs]):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
