"""Calibrated 4-bit compression of SmolLM2-135M: pocketml against coremltools' PyTorch-side GPTQ
and sensitive k-means, on the same weights, calibration windows and evaluation windows.

    python benchmarks/bench_coremltools_calibrated.py [--quick] [--rows R,...] [--json PATH]

Needs coremltools 9 in this venv (pip install -e '.[bench]'). Each row runs in its own process
(its time and peak RSS its own), the engines alternating:

  pocketml-gptq     pm.compress(package, Quantize("int4", per_block 32, algorithm="gptq"),
                    calibration=windows): torch-free, on the package
  coremltools-gptq  LayerwiseCompressor: algorithm gptq, uint4 symmetric, per_block 32, its "gpt"
                    input cacher over the decoder layers (coremltools refuses "int4"; a
                    symmetric uint4 grid is the same 16 levels)
  pocketml-skm      pm.compress(package, Palettize(4, per_grouped_channel 16), calibration=windows):
                    k-means weighted by the inputs' energy, torch-free
  pocketml-fisher   the same weighted by the Fisher diagonal (sensitivity=pocketml.training.fisher
                    of the LM loss on the windows; its backward passes counted in the time)
  coremltools-skm   SKMPalettizer: n_bits 4, per_grouped_channel 16, weighted by the Fisher
                    diagonal of the same loss (its own)

Protocol (bench_compression.py's SmolLM2): calibration = 8 windows of 512 tokens of
data.wikipedia_text() from token 2048 (--quick: 2); perplexity over its first 2 windows of 256
tokens (--quick: 1 of 64), each from its first token. The tied embedding/output head: pocketml
keeps it at int8 (its recipe below 8 bits), coremltools' runs leave it in float (its GPTQ takes
only the decoder layers; its SKM is told to skip it), which favours coremltools. Perplexity is
computed by the engine's own model: pocketml's package, coremltools' compressed torch module.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROWS = ("pocketml-gptq", "coremltools-gptq", "pocketml-skm", "pocketml-fisher", "coremltools-skm")
PACKAGE = HERE.parent / "out" / "bench" / "smollm2-nocache.pocket"


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def _protocol(quick: bool):
    sys.path.insert(0, str(HERE))
    from bench_compression import SmolLM2

    return SmolLM2(quick)


def _torch_model():
    """The zoo's SmolLM2 with its rotary tables passed to the layers as keywords, which
    coremltools' "gpt" input cacher caches and hands every layer (positional ones it drops)."""
    import torch

    from pocketml.zoo import smollm2

    model = smollm2.build()

    def forward(self, input_ids):
        x = self.embed_tokens(input_ids)
        cos, sin = self.rotary(torch.arange(input_ids.shape[1]))
        for layer in self.layers:
            x = layer(x, cos=cos, sin=sin)
        return self.logits(x)

    type(model).forward = forward
    return model


def _torch_nll(model, b) -> np.ndarray:
    import torch

    nll = []
    with torch.no_grad():
        for w in range(b.windows):
            x = torch.from_numpy(b.ids[:, w * b.length:(w + 1) * b.length])
            z = model(x)[0, :-1].double()
            nll.append(torch.nn.functional.cross_entropy(z, x[0, 1:], reduction="none").numpy())
    return np.concatenate(nll)


def _lm_loss(model, ids):
    import torch

    z = model(ids)
    return torch.nn.functional.cross_entropy(z[0, :-1], ids[0, 1:])


def worker(row: str, quick: bool) -> dict:
    """One row, in this process: seconds of the compression call, perplexity, peak RSS."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    warnings.simplefilter("ignore")
    b = _protocol(quick)
    windows = [torch.from_numpy(c["input_ids"]) for c in b.calibration]
    if row.startswith("pocketml"):
        import pocketml as pm

        package = pm.load(PACKAGE)
        float_nll = b.run(package)[0]
        g16 = dict(granularity="per_grouped_channel", group_size=16)
        t0 = time.perf_counter()
        if row == "pocketml-gptq":
            out = pm.compress(package, pm.Quantize("int4", granularity="per_block", block_size=32, algorithm="gptq"),
                              calibration=b.calibration, progress=False)
        elif row == "pocketml-skm":
            out = pm.compress(package, pm.Palettize(4, **g16), calibration=b.calibration, progress=False)
        else:
            from pocketml.training import fisher

            f = fisher(_torch_model(), windows, progress=False)
            f = {k: v for k, v in f.items() if k in package.program.weights}
            out = pm.compress(package, pm.Palettize(4, **g16), sensitivity=f, progress=False)
        seconds = time.perf_counter() - t0
        nll = b.run(out)[0]
    else:
        import logging

        logging.disable(logging.WARNING)
        model = _torch_model()
        float_nll = _torch_nll(model, b)
        t0 = time.perf_counter()
        if row == "coremltools-gptq":
            from coremltools.optimize.torch.layerwise_compression import LayerwiseCompressor, LayerwiseCompressorConfig

            cfg = LayerwiseCompressorConfig.from_dict({
                "global_config": {"algorithm": "gptq", "weight_dtype": "uint4", "granularity": "per_block",
                                  "block_size": 32},
                "input_cacher": "gpt", "calibration_nsamples": len(windows), "layers": ["layers\\.\\d+"]})
            out = LayerwiseCompressor(model, cfg).compress(windows, device="cpu")
        else:
            from coremltools.optimize.torch.palettization import SKMPalettizer, SKMPalettizerConfig

            cfg = SKMPalettizerConfig.from_dict({
                "global_config": {"n_bits": 4, "granularity": "per_grouped_channel", "group_size": 16},
                "module_name_configs": {"embed_tokens": None}, "calibration_nsamples": len(windows)})
            out = SKMPalettizer(model, cfg).compress(dataloader=windows, loss_fn=_lm_loss)
        seconds = time.perf_counter() - t0
        nll = _torch_nll(out, b)
    ppl, ref = math.exp(nll.mean()), math.exp(float_nll.mean())
    return {"row": row, "seconds": seconds, "perplexity": ppl, "float_perplexity": ref, "vs_float": ppl / ref - 1,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _prepare() -> None:
    """The float package (converted once, kept in out/bench)."""
    if PACKAGE.exists():
        return
    sys.path.insert(0, str(HERE))
    from bench_compression import _convert

    _, model = _convert("smollm2-nocache")
    PACKAGE.parent.mkdir(parents=True, exist_ok=True)
    model.save(PACKAGE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", help=f"comma-separated, of {', '.join(ROWS)} (default: all, in that order)")
    ap.add_argument("--quick", action="store_true", help="2 calibration windows, 1 evaluation window of 64 tokens")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.quick)), flush=True)
        return
    rows = ROWS if not args.rows else [r.strip() for r in args.rows.split(",")]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    import importlib.util

    if importlib.util.find_spec("coremltools") is None:
        ap.error("coremltools is not installed here: pip install -e '.[bench]'")
    _prepare()
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
               "quick": args.quick, "rows": []}
    for row in rows:
        log(f"[{row}] running")
        cmd = [sys.executable, __file__, "--worker", row] + (["--quick"] if args.quick else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            log(f"[{row}] FAILED:\n{proc.stderr[-3000:]}")
            results["rows"].append({"row": row, "error": proc.stderr[-500:]})
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results["rows"].append(r)
        log(f"[{row}] {r['seconds']:.1f} s, perplexity {r['perplexity']:.2f} ({100 * r['vs_float']:+.1f} %), "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB")
    results["loadavg_end"] = os.getloadavg()
    print(f"SmolLM2-135M, 4-bit, calibrated ({results['date']}, {results['cpus']} CPUs, load average "
          f"{results['loadavg_start'][0]:.2f} -> {results['loadavg_end'][0]:.2f})\n")
    print("| row | compression s | perplexity | vs float | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for r in results["rows"]:
        if "error" in r:
            print(f"| {r['row']} | failed | | | |")
        else:
            print(f"| {r['row']} | {r['seconds']:.1f} | {r['perplexity']:.2f} | {100 * r['vs_float']:+.1f} % | "
                  f"{r['peak_rss_mib']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
