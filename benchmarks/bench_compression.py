"""Weight compression: quality and size of every mode on real models, and pocketml vs coremltools.

    python benchmarks/bench_compression.py [--models M,...] [--modes K,...] [--quick] [--json PATH]

Progress goes to stderr, the result tables (Markdown) to stdout.

Models (`--models`, comma-separated; default all): minilm, smollm2, efficientnet-lite0, and
`coremltools` (the numerics comparison). Modes (`--modes`, keys; default all):

    float          the uncompressed package (the reference)
    int8           Quantize("int8", per_channel)
    pal6           Palettize(6) k-means per_tensor        pal6-g16  per_grouped_channel, group_size 16
    pal4           Palettize(4) k-means per_tensor        pal4-g16  per_grouped_channel, group_size 16
    pal4-pcs       pal4 with per_channel_scale=True       pal4-g16-pcs  pal4-g16 with per_channel_scale
    int4-b32       Quantize("int4", per_block 32) (searched scales; int4-b32-minmax: min/max)
    uint4-b32      Quantize("uint4", symmetric=False, per_block 32) (searched scales and offsets)
    prune50        Prune(sparsity=0.5)                    prune2:4  Prune(n_m=(2, 4))
    prune50+pal4   [Prune(0.5), Palettize(4)]
  with each model's calibration data (below):
    pal4-g16-skm   pal4-g16, sensitivity-weighted k-means
    pal4-g16-pcs-gptq, pal3-g16-pcs-gptq   LUT indices by GPTQ (Palettize(gptq=True))
    int4-b32-gptq, uint4-b32-gptq          Quantize(algorithm="gptq")
    prune2:4-sparsegpt                     Prune(n_m=(2, 4), sparsegpt=True)
    mixed@int4-b32 pm.compress(target_size=<int4-b32's weight bytes>): mixed precision

Every mode is a global config over every linear/conv/embedding/matmul weight of >= 2048 elements
(pm.compress's default `min_weight_size`). Where a structured mode cannot apply to a weight
(group_size 16, block 32 or m = 4 not dividing its dimension: MiniLM's 30522-row embedding,
EfficientNet's 24/40/112-channel convs and depthwise convs) the library falls back to the nearest
mode that fits (docs/COMPRESSION.md); the table counts such weights. Output heads (SmolLM2's tied
embedding, EfficientNet's classifier) are int8 under every mode below 8 bits (the library's
recipe). Each compressed model is saved to a temporary .pocket, its file size measured, loaded
back with pm.load and run. "peak RSS" is the process's so far (calibration statistics included).

Protocols (fixed, so runs are comparable):
  minilm        250 real sentences (`data.sentences(250)`: 50 ABC news leads and the 200 Pang & Lee
                movie-review sentences, interleaved), sorted by token count into batches of 50;
                cosine of each sentence embedding with the float package's; mean and min.
                --quick: 32 sentences.
  smollm2       perplexity on `data.wikipedia_text()` (gensim's enwiki test dump, cleaned with
                filter_wiki): the first 2 non-overlapping windows of 256 tokens of the text
                (tokens 0..511), each run alone from its first token (no context carried over);
                perplexity = exp(mean NLL of the 2 x 255 next-token predictions inside windows).
                Also the share of those positions whose top-1 token equals the float package's.
                --quick: 1 window of 64 tokens.
  efficientnet  the 7 real photos of `samples()` and their mirror images (14 inputs; --quick: the
                7 photos); top-1 agreement with the float package, and cosine of the logits.
  calibration   (held apart from the evaluated inputs) minilm: 256 sentences of the Wikipedia
                text, batches of 32 (--quick 64); smollm2: 8 windows of 512 tokens from token 2048
                (--quick 2); efficientnet: 16 other scikit-image pictures (hubble_deep_field, ihc,
                retina, colorwheel, camera, coins, moon, page, text, brick, grass, gravel, clock,
                cell, logo, horse) and their mirror images (--quick: the first 4).
  coremltools   k-means 4-bit palettization (per_tensor; per_grouped_channel, group_size 16) and
                int4 per_block 32 symmetric quantization of (a) a 2048x2048 N(0, 1) float32 weight
                (seed 0) and (b) SmolLM2's linear weights of every 5th layer (0, 5, ..., 25: the 7
                q/k/v/o/gate/up/down matrices each, 42 weights, 21.2 M values; --ct-every 1 for
                all 30 layers; the tied 49152x576 embedding is left out). pocketml: the
                `pocketml.compress` palettize/quantize functions (fp32 LUT), one call per
                weight, timed, then depalettize/dequantize. coremltools: `_coremltools_worker.py`
                in its own venv (benchmarks/.venv-coremltools, or --ct-python): all weights as
                consts of one MIL program -> mlprogram -> `coremltools.optimize.coreml`
                palettize_weights / linear_quantize_weights (only that call timed) ->
                decompress_weights -> weights read back. Error = relative Frobenius norm over all
                weights of the set, sqrt(sum ||W' - W||^2 / sum ||W||^2). coremltools runs with
                fp32 weights (compute_precision FLOAT32: k-means by scikit-learn KMeans) and, for
                palettization, also with fp16 weights (its default precision: kmeans1d for
                tensors/groups of >= 10,000 elements, scikit-learn below). --quick: only (a), at
                1024x1024, fp32.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = ("minilm", "smollm2", "efficientnet-lite0", "coremltools")
MODE_LABELS = {
    "float": "float",
    "int8": "int8 per_channel",
    "pal6": "palettize 6-bit per_tensor",
    "pal6-g16": "palettize 6-bit g16",
    "pal4": "palettize 4-bit per_tensor",
    "pal4-g16": "palettize 4-bit g16",
    "pal4-pcs": "palettize 4-bit per_tensor + per-channel scale",
    "pal4-g16-pcs": "palettize 4-bit g16 + per-channel scale",
    "int4-b32-minmax": "int4 per_block 32, min/max",
    "int4-b32": "int4 per_block 32 (searched scales)",
    "uint4-b32": "affine uint4 per_block 32 (searched)",
    "prune50": "prune 50%",
    "prune2:4": "prune 2:4",
    "prune50+pal4": "prune 50% + palettize 4-bit",
    # calibrated (each model's held-apart calibration data)
    "pal4-g16-skm": "palettize 4-bit g16, sensitivity k-means (cal)",
    "pal4-g16-pcs-gptq": "palettize 4-bit g16 + per-channel scale, GPTQ (cal)",
    "pal3-g16-pcs-gptq": "palettize 3-bit g16 + per-channel scale, GPTQ (cal)",
    "int4-b32-gptq": "int4 per_block 32, GPTQ (cal)",
    "uint4-b32-gptq": "affine uint4 per_block 32, GPTQ (cal)",
    "prune2:4-sparsegpt": "prune 2:4, SparseGPT (cal)",
    "mixed@int4-b32": "mixed precision at int4-b32's size (cal)",
}
MODE_KEYS = tuple(MODE_LABELS)


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# the compression API (pm.compress once exported; the pocketml.compress modules until then)


def _api():
    import pocketml as pm
    from pocketml.errors import ConfigError

    if hasattr(pm, "compress") and callable(pm.compress) and hasattr(pm, "Palettize"):
        ns = dict(compress=pm.compress, compression_report=pm.compression_report,
                  Palettize=pm.Palettize, Quantize=pm.Quantize, Prune=pm.Prune)
    else:
        from pocketml.compress.api import compress, compression_report
        from pocketml.compress.config import Palettize, Prune, Quantize
        ns = dict(compress=compress, compression_report=compression_report, Palettize=Palettize,
                  Quantize=Quantize, Prune=Prune)
    from pocketml.compress.apply import WEIGHT_AXES
    from pocketml.compress.config import OptimizationConfig
    return argparse.Namespace(**ns, OptimizationConfig=OptimizationConfig, WEIGHT_AXES=WEIGHT_AXES,
                              ConfigError=ConfigError)


def mode_config(api, key: str):
    """(config, calibrated) of a mode key; a global config: the library falls back where a
    structured mode does not fit a weight, and keeps output heads at int8 below 8 bits."""
    P, Q, R = api.Palettize, api.Quantize, api.Prune
    g16 = dict(granularity="per_grouped_channel", group_size=16)
    b32 = dict(granularity="per_block", block_size=32)
    return {
        "float": (None, False),
        "int8": (Q("int8", granularity="per_channel"), False),
        "pal6": (P(6), False),
        "pal6-g16": (P(6, **g16), False),
        "pal4": (P(4), False),
        "pal4-g16": (P(4, **g16), False),
        "pal4-pcs": (P(4, per_channel_scale=True), False),
        "pal4-g16-pcs": (P(4, **g16, per_channel_scale=True), False),
        "int4-b32-minmax": (Q("int4", **b32, algorithm="minmax"), False),
        "int4-b32": (Q("int4", **b32), False),
        "uint4-b32": (Q("uint4", symmetric=False, **b32), False),
        "prune50": (R(sparsity=0.5), False),
        "prune2:4": (R(n_m=(2, 4)), False),
        "prune50+pal4": ([R(sparsity=0.5), P(4)], False),
        "pal4-g16-skm": (P(4, **g16), True),
        "pal4-g16-pcs-gptq": (P(4, **g16, per_channel_scale=True, gptq=True), True),
        "pal3-g16-pcs-gptq": (P(3, **g16, per_channel_scale=True, gptq=True), True),
        "int4-b32-gptq": (Q("int4", **b32, algorithm="gptq"), True),
        "uint4-b32-gptq": (Q("uint4", symmetric=False, **b32, algorithm="gptq"), True),
        "prune2:4-sparsegpt": (R(n_m=(2, 4), sparsegpt=True), True),
        "mixed@int4-b32": ("mixed", True),
    }[key]


def compress(api, model, key: str, calibration):
    """(compressed model, number of weights that fell back or stayed dense, seconds)."""
    cfg, calibrated = mode_config(api, key)
    cal = calibration if calibrated else None
    t0 = time.perf_counter()
    if cfg == "mixed":  # the weights of the int4-b32 package as the budget
        target = sum(a.nbytes for a in api.compress(model, mode_config(api, "int4-b32")[0],
                                                    progress=False).program.weights.values())
        t0 = time.perf_counter()
        out = api.compress(model, target_size=target, calibration=cal, progress=False)
    else:
        out = api.compress(model, cfg, progress=False, calibration=cal)
    secs = time.perf_counter() - t0
    fell = sum(r["note"].startswith(("fallback", "skipped")) for r in api.compression_report(out))
    return out, fell, secs


def weight_stats(api, model) -> dict:
    rows = api.compression_report(model)
    nbytes = sum(r["bytes"] for r in rows)
    numel = sum(math.prod(r["shape"]) for r in rows)
    return {"weights": len(rows), "weight_bytes": nbytes, "bits_per_weight": 8.0 * nbytes / max(numel, 1),
            "compressed": sum(r["mode"] != "dense" for r in rows)}


# ------------------------------------------------------------------------------------------
# models


def _convert(name: str):
    import torch

    import pocketml as pm
    from pocketml import zoo

    entry = zoo.get(name)
    t0 = time.perf_counter()
    module = entry.build()
    with torch.no_grad():
        model = pm.convert(module, entry.example_inputs(), input_names=entry.input_names,
                           output_names=entry.output_names,
                           dynamic_shapes=entry.dynamic_shapes() if entry.dynamic_shapes else None)
    del module
    log(f"  converted {name} in {time.perf_counter() - t0:.1f} s")
    return entry, model


def _cos_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(a.shape[0], -1).astype(np.float64)
    b = b.reshape(b.shape[0], -1).astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


class MiniLM:
    name = "minilm"
    title = "all-MiniLM-L6-v2"
    columns = ("cosine mean", "cosine min")

    def __init__(self, quick: bool):
        from pocketml.zoo import data, minilm

        texts = data.sentences(32 if quick else 250)
        # batches of 50 sentences of similar length (sorted by token count): little padding
        lengths = minilm.tokenize(texts)[1].sum(axis=1)
        self.order = np.argsort(lengths, kind="stable")
        ordered = [texts[i] for i in self.order]
        self.batches = [dict(zip(("input_ids", "attention_mask"), minilm.tokenize(ordered[i:i + 50])))
                        for i in range(0, len(ordered), 50)]
        # calibration: sentences of the Wikipedia text (none of the evaluated ones), batches of 32
        n = 64 if quick else 256
        wiki = [t.strip() for t in data.wikipedia_text()[:200000].split(". ") if 40 < len(t.strip()) < 300][:n]
        self.calibration = [dict(zip(("input_ids", "attention_mask"), minilm.tokenize(wiki[i:i + 32])))
                            for i in range(0, n, 32)]
        self.protocol = f"{len(texts)} sentences (data.sentences), batches of 50"

    def run(self, model) -> np.ndarray:
        return np.concatenate([model.predict(b)["embedding"] for b in self.batches])

    def metrics(self, out, ref) -> dict:
        c = _cos_rows(out, ref)
        return {"cosine mean": float(c.mean()), "cosine min": float(c.min())}

    @staticmethod
    def fmt(m: dict) -> list[str]:
        return [f"{m['cosine mean']:.5f}", f"{m['cosine min']:.5f}"]


class SmolLM2:
    name = "smollm2"
    zoo_name = "smollm2-nocache"  # perplexity over whole windows: the stateless forward
    title = "SmolLM2-135M"
    columns = ("perplexity", "vs float", "top-1 = float")

    def __init__(self, quick: bool):
        from pocketml.zoo import data, smollm2

        self.windows, self.length = (1, 64) if quick else (2, 256)
        need = self.windows * self.length
        text = data.wikipedia_text()
        chars = 8 * need
        ids = smollm2.encode(text[:chars])
        while ids.shape[1] < need and chars < len(text):
            chars *= 2
            ids = smollm2.encode(text[:chars])
        if ids.shape[1] < need:
            raise ValueError(f"wikipedia_text() has only {ids.shape[1]} tokens, {need} needed")
        # calibration: windows of 512 tokens from token 2048 on (the evaluated ones end at 512)
        windows = 2 if quick else 8
        cal_ids = smollm2.encode(text[:60000])
        if cal_ids.shape[1] < 2048 + 512 * windows:
            raise ValueError("wikipedia_text() is too short for the calibration windows")
        self.calibration = [{"input_ids": cal_ids[:, 2048 + 512 * i:2048 + 512 * (i + 1)]} for i in range(windows)]
        self.ids = ids[:, :need]
        self.protocol = (f"first {self.windows} x {self.length} tokens of data.wikipedia_text(), "
                         "non-overlapping windows, ppl = exp(mean next-token NLL within windows)")

    def run(self, model):
        nll, top1 = [], []
        for w in range(self.windows):
            x = self.ids[:, w * self.length:(w + 1) * self.length]
            logits = model.predict({"input_ids": x})["logits"][0].astype(np.float64)  # (T, V)
            z = logits[:-1]
            m = z.max(axis=1, keepdims=True)
            logz = (m[:, 0] + np.log(np.exp(z - m).sum(axis=1)))
            nll.append(logz - z[np.arange(len(z)), x[0, 1:]])
            top1.append(z.argmax(axis=1))
        return np.concatenate(nll), np.concatenate(top1)

    def metrics(self, out, ref) -> dict:
        nll, top1 = out
        ppl, ppl_ref = math.exp(nll.mean()), math.exp(ref[0].mean())
        return {"perplexity": ppl, "vs float": ppl / ppl_ref - 1.0, "top-1 = float": float((top1 == ref[1]).mean())}

    @staticmethod
    def fmt(m: dict) -> list[str]:
        return [f"{m['perplexity']:.2f}", f"{100 * m['vs float']:+.1f}%", f"{100 * m['top-1 = float']:.1f}%"]


def raw_pictures(quick: bool = False) -> list[np.ndarray]:
    """scikit-image's pictures that are no ImageNet photo, as HxWx3 uint8 RGB (grey ones too)."""
    import skimage.data as sd

    names = ("hubble_deep_field", "immunohistochemistry", "retina", "colorwheel", "camera", "coins", "moon",
             "page", "text", "brick", "grass", "gravel", "clock", "cell", "logo", "horse")
    out = []
    for name in names[:4] if quick else names:
        im = np.asarray(getattr(sd, name)())
        im = (im * 255).astype(np.uint8) if im.dtype == bool else im.astype(np.uint8)
        out.append(np.ascontiguousarray(np.stack([im] * 3, -1) if im.ndim == 2 else im[..., :3]))
    return out


def _calibration_pictures(quick: bool) -> list[np.ndarray]:
    """`raw_pictures` and their mirror images, preprocessed: EfficientNet's calibration data,
    apart from the evaluated photos."""
    from pocketml.zoo.efficientnet_lite0 import preprocess

    out = []
    for im in raw_pictures(quick):
        x = preprocess(im)
        out += [x, np.ascontiguousarray(x[..., ::-1])]
    return out


class EfficientNet:
    name = "efficientnet-lite0"
    title = "EfficientNet-Lite0"
    columns = ("top-1 = float", "logit cosine mean", "logit cosine min")

    def __init__(self, quick: bool):
        from pocketml.zoo import get

        photos = [t.numpy() for (t,) in get(self.name).samples()]
        self.inputs = photos if quick else photos + [np.ascontiguousarray(p[..., ::-1]) for p in photos]
        self.calibration = [{"image": x} for x in _calibration_pictures(quick)]
        self.protocol = f"{len(photos)} photos (samples())" + ("" if quick else " and their mirror images")

    def run(self, model) -> np.ndarray:
        return np.concatenate([model.predict({"image": x})["logits"] for x in self.inputs])

    def metrics(self, out, ref) -> dict:
        c = _cos_rows(out, ref)
        agree = int((out.argmax(1) == ref.argmax(1)).sum())
        return {"top-1 = float": f"{agree}/{len(out)}", "logit cosine mean": float(c.mean()),
                "logit cosine min": float(c.min())}

    @staticmethod
    def fmt(m: dict) -> list[str]:
        return [m["top-1 = float"], f"{m['logit cosine mean']:.5f}", f"{m['logit cosine min']:.5f}"]


BENCHES = {"minilm": MiniLM, "smollm2": SmolLM2, "efficientnet-lite0": EfficientNet}


def bench_model(api, name: str, modes: list[str], quick: bool) -> dict:
    import pocketml as pm

    bench = BENCHES[name](quick)
    log(f"[{name}] {bench.protocol}")
    _, model = _convert(getattr(bench, "zoo_name", name))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_compression_") as tmp:
        ref_path = Path(tmp) / "float.pocket"
        model.save(ref_path)
        float_mib = ref_path.stat().st_size / 2**20
        t0 = time.perf_counter()
        ref = bench.run(pm.load(ref_path))
        ref_s = time.perf_counter() - t0
        log(f"  float: {float_mib:.1f} MiB, evaluated in {ref_s:.1f} s")
        for key in modes:
            row = {"mode": key, "label": MODE_LABELS[key]}
            try:
                if key == "float":
                    cm, nfb, secs, path = model, 0, 0.0, ref_path
                else:
                    cm, nfb, secs = compress(api, model, key, bench.calibration)
                    path = Path(tmp) / f"{key.replace(':', '_').replace('+', '_')}.pocket"
                    cm.save(path)
                row.update(weight_stats(api, cm), compress_s=secs, fallbacks=nfb, mib=path.stat().st_size / 2**20,
                           peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
                del cm
                t0 = time.perf_counter()
                out = ref if key == "float" else bench.run(pm.load(path))
                row["eval_s"] = ref_s if key == "float" else time.perf_counter() - t0
                row["metrics"] = bench.metrics(out, ref)
                if path != ref_path:
                    path.unlink()
                log(f"  {key}: {row['mib']:.1f} MiB, compress {secs:.1f} s, eval {row['eval_s']:.1f} s, "
                    f"{row['metrics']}" + (f", {nfb} weight(s) fell back" if nfb else ""))
            except Exception as e:  # report and go on: one broken mode must not hide the others
                row["error"] = f"{type(e).__name__}: {e}"
                log(f"  {key}: FAILED {row['error']}")
            rows.append(row)
    return {"model": name, "title": bench.title, "protocol": bench.protocol, "float_mib": float_mib,
            "columns": list(bench.columns), "rows": rows}


def table_model(res: dict) -> str:
    bench = BENCHES[res["model"]]
    head = ["mode", "package MiB", "vs float", "bits/weight", *bench.columns, "compress s", "peak RSS MiB",
            "fallbacks"]
    lines = [f"### {res['title']} — {res['protocol']}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in res["rows"]:
        if "error" in r:
            lines.append(f"| {r['label']} | FAILED: {r['error'][:150]} |" + " |" * (len(head) - 2))
            continue
        fb = str(r["fallbacks"]) if r["fallbacks"] else "—"
        lines.append("| " + " | ".join([
            r["label"], f"{r['mib']:.1f}", f"{r['mib'] / res['float_mib']:.3f}",
            f"{r['bits_per_weight']:.2f}", *bench.fmt(r["metrics"]),
            f"{r['compress_s']:.1f}" if r["mode"] != "float" else "—", f"{r['peak_rss_mib']:.0f}", fb]) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# pocketml vs coremltools


CT_CONFIGS = ("pal4", "pal4-g16", "int4-b32")
CT_LABELS = {"pal4": "k-means 4-bit per_tensor", "pal4-g16": "k-means 4-bit g16",
             "int4-b32": "int4 per_block 32"}


def pocketml_numerics(weights: dict[str, np.ndarray], config: str) -> tuple[float, float]:
    """(seconds in the compression calls, relative Frobenius error over all weights)."""
    from pocketml.compress.palettize import palettize
    from pocketml.compress.quantize import quantize
    from pocketml.formats import depalettize, dequantize

    seconds, num, den = 0.0, 0.0, 0.0
    for w in weights.values():
        t0 = time.perf_counter()
        if config.startswith("pal"):
            p = palettize(w, int(config[3]), mode="kmeans",
                          granularity="per_grouped_channel" if config.endswith("g16") else "per_tensor",
                          group_size=16, axis=0)
            seconds += time.perf_counter() - t0
            d = depalettize(p.indices, p.lut, p.scale, p.vector_axis)
        else:
            q = quantize(w, "int4", symmetric=True, granularity="per_block", axis=0, block_size=32,
                         input_axis=1)
            seconds += time.perf_counter() - t0
            d = dequantize(q.data, q.scale, q.zero_point)
        diff = d.astype(np.float64) - w
        num += float((diff * diff).sum())
        den += float((w.astype(np.float64) ** 2).sum())
    return seconds, math.sqrt(num / den)


def coremltools_worker(python: str, npz: Path, config: str, precision: str) -> dict:
    cmd = [python, str(HERE / "_coremltools_worker.py"), str(npz), config, "--precision", precision]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"coremltools worker failed ({proc.returncode}): {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_coremltools(quick: bool, ct_python: str, ct_every: int) -> dict:
    sets = []
    n = 1024 if quick else 2048
    sets.append((f"Gaussian {n}×{n}", {"gaussian": np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)}))
    if not quick:
        from pocketml.zoo import smollm2

        sd = smollm2._state_dict()
        layers = sorted({int(k.split(".")[1]) for k in sd if k.startswith("layers.")})
        chosen = layers[::ct_every]
        ws = {k: np.asarray(v, dtype=np.float32) for k, v in sd.items()
              if k.startswith("layers.") and int(k.split(".")[1]) in chosen and v.ndim == 2}
        what = "all 30 layers" if ct_every == 1 else f"layers {', '.join(map(str, chosen))}"
        sets.append((f"SmolLM2 linear weights, {what} ({len(ws)} matrices, "
                     f"{sum(w.size for w in ws.values()) / 1e6:.1f} M values)", ws))
    precisions = ("float32",) if quick else ("float32", "float16")
    rows = []
    version = None
    with tempfile.TemporaryDirectory(prefix="bench_ct_") as tmp:
        for title, ws in sets:
            npz = Path(tmp) / "weights.npz"
            np.savez(npz, **ws)
            for config in CT_CONFIGS:
                t_pm, e_pm = pocketml_numerics(ws, config)
                log(f"[coremltools] {title} {config}: pocketml {t_pm:.2f} s, error {e_pm:.5f}")
                for prec in precisions if config.startswith("pal") else ("float32",):
                    row = {"set": title, "config": config, "precision": prec, "pm_s": t_pm, "pm_err": e_pm}
                    try:
                        r = coremltools_worker(ct_python, npz, config, prec)
                        version = r["coremltools"]
                        row.update(ct_s=r["seconds"], ct_err=r["rel_error"], kmeans1d=r["kmeans1d"])
                        log(f"  coremltools ({prec} weights) {r['seconds']:.2f} s, error {r['rel_error']:.5f}")
                    except Exception as e:
                        row["error"] = f"{type(e).__name__}: {e}"
                        log(f"  coremltools ({prec}): FAILED {row['error']}")
                    rows.append(row)
    return {"coremltools": version, "rows": rows}


def table_coremltools(res: dict) -> str:
    head = ["weights", "method", "coremltools weights", "pocketml error", "coremltools error",
            "pocketml s", "coremltools s", "speed-up"]
    lines = [f"### pocketml vs coremltools {res['coremltools']} (`coremltools.optimize.coreml` on an mlprogram)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in res["rows"]:
        base = [r["set"], CT_LABELS[r["config"]], r["precision"].replace("float", "fp"), f"{r['pm_err']:.5f}"]
        if "error" in r:
            lines.append("| " + " | ".join(base + [f"FAILED: {r['error'][:120]}", f"{r['pm_s']:.2f}", "", ""]) + " |")
            continue
        lines.append("| " + " | ".join(base + [f"{r['ct_err']:.5f}", f"{r['pm_s']:.2f}", f"{r['ct_s']:.2f}",
                                               f"{r['ct_s'] / max(r['pm_s'], 1e-9):.1f}×"]) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------


def _csv(value: str | None, allowed, what: str) -> list[str]:
    if not value:
        return list(allowed)
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise SystemExit(f"unknown {what} {bad}; known: {', '.join(allowed)}")
    return list(dict.fromkeys(items))  # in the order given


QUICK_MODES = ("float", "int8", "pal4", "int4-b32")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help=f"comma-separated, of {', '.join(MODELS)} (default: all)")
    ap.add_argument("--modes", help=f"comma-separated, run in that order, of {', '.join(MODE_KEYS)} (default: all; "
                                    f"--quick: {', '.join(QUICK_MODES)})")
    ap.add_argument("--quick", action="store_true", help="fewer inputs and modes, small coremltools test")
    ap.add_argument("--ct-python", default=str(HERE / ".venv-coremltools" / "bin" / "python"),
                    help="python of a venv with coremltools (default: benchmarks/.venv-coremltools)")
    ap.add_argument("--ct-every", type=int, default=5, help="coremltools test: every N-th SmolLM2 layer")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()
    models = _csv(args.models, MODELS, "models")
    modes = _csv(args.modes, MODE_KEYS, "modes") if args.modes or not args.quick else list(QUICK_MODES)
    if "float" not in modes:
        modes = ["float", *modes]

    api = _api()
    started = time.perf_counter()
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine(),
               "cpus": os.cpu_count(), "quick": args.quick, "loadavg_start": os.getloadavg(), "models": []}
    tables = []
    for name in models:
        t0 = time.perf_counter()
        if name == "coremltools":
            if not Path(args.ct_python).exists():
                log(f"[coremltools] skipped: {args.ct_python} not found (python -m venv "
                    "benchmarks/.venv-coremltools && benchmarks/.venv-coremltools/bin/pip install "
                    "coremltools numpy scikit-learn kmeans1d)")
                continue
            res = bench_coremltools(args.quick, args.ct_python, args.ct_every)
            results["coremltools"] = res
            tables.append(table_coremltools(res))
        else:
            res = bench_model(api, name, modes, args.quick)
            results["models"].append(res)
            tables.append(table_model(res))
        log(f"[{name}] done in {time.perf_counter() - t0:.0f} s")
        print(tables[-1] + "\n", flush=True)
    results["total_s"] = time.perf_counter() - started
    results["loadavg_end"] = os.getloadavg()
    log(f"total {results['total_s']:.0f} s; load average {results['loadavg_start'][0]:.1f} at start, "
        f"{results['loadavg_end'][0]:.1f} at end")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
