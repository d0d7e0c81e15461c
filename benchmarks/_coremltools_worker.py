"""coremltools side of `bench_compression.py` (runs in its own venv, with coremltools installed).

    python _coremltools_worker.py WEIGHTS.npz CONFIG [--precision float32|float16]

WEIGHTS.npz holds 2-D linear weights (out, in). They all go into ONE MIL program (one `linear`
per weight, the weight a const), converted to an mlprogram (iOS18, skip_model_load: no Core ML
runtime on Linux); then the whole model is compressed with `coremltools.optimize.coreml`
(`palettize_weights` / `linear_quantize_weights`) — only that call is timed — and decompressed
with `decompress_weights`, and each linear's dense weight is read back from the MIL program.

CONFIG: pal4 (k-means 4-bit per_tensor), pal4-g16 (per_grouped_channel, group_size 16),
pal6, pal6-g16, int4-b32 (linear_symmetric int4 per_block, block_size 32).
--precision: the mlprogram's compute precision; float32 keeps the weights fp32 (k-means by
scikit-learn), float16 stores them as fp16 (coremltools then uses kmeans1d, if installed, for
tensors of >= 10,000 elements). Errors are always against the fp32 weights given.

Prints one JSON object to stdout (progress of coremltools goes to stderr).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import warnings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("weights")
    ap.add_argument("config", choices=["pal4", "pal4-g16", "pal6", "pal6-g16", "int4-b32"])
    ap.add_argument("--precision", choices=["float32", "float16"], default="float32")
    args = ap.parse_args()

    # coremltools prints "Failed to load ..." for its macOS-only native proxies on import: stderr
    with contextlib.redirect_stdout(sys.stderr):
        warnings.filterwarnings("ignore")
        logging.disable(logging.WARNING)
        import numpy as np
        import coremltools as ct
        import coremltools.optimize as cto
        from coremltools.converters.mil import Builder as mb

    data = np.load(args.weights)
    names = list(data.files)
    weights = {n: np.ascontiguousarray(data[n], dtype=np.float32) for n in names}
    dims = sorted({w.shape[1] for w in weights.values()})

    def body(*xs):
        x = dict(zip(dims, xs))
        return tuple(mb.linear(x=x[w.shape[1]], weight=w, name=f"lin_{i}")
                     for i, w in enumerate(weights.values()))

    arglist = ", ".join(f"x{i}" for i in range(len(dims)))
    ns = {"body": body}
    exec(f"def prog({arglist}):\n    return body({arglist})", ns)  # mb.program wants named args
    prog = mb.program(input_specs=[mb.TensorSpec(shape=(1, d)) for d in dims],
                      opset_version=ct.target.iOS18)(ns["prog"])
    precision = ct.precision.FLOAT32 if args.precision == "float32" else ct.precision.FLOAT16

    with contextlib.redirect_stdout(sys.stderr):
        mlmodel = ct.convert(prog, convert_to="mlprogram", skip_model_load=True,
                             compute_precision=precision, minimum_deployment_target=ct.target.iOS18)
        threshold = 2048  # biases (<= 1536 elements) stay dense; every weight here is larger
        if args.config.startswith("pal"):
            nbits = int(args.config[3])
            grouped = args.config.endswith("g16")
            op_cfg = cto.coreml.OpPalettizerConfig(
                mode="kmeans", nbits=nbits,
                granularity="per_grouped_channel" if grouped else "per_tensor",
                group_size=16 if grouped else 0, weight_threshold=threshold)
            fn = cto.coreml.palettize_weights
        else:
            op_cfg = cto.coreml.OpLinearQuantizerConfig(
                mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=32,
                weight_threshold=threshold)
            fn = cto.coreml.linear_quantize_weights
        config = cto.coreml.OptimizationConfig(global_config=op_cfg)
        t0 = time.perf_counter()
        compressed = fn(mlmodel, config)
        seconds = time.perf_counter() - t0
        dense = cto.coreml.decompress_weights(compressed)

    got = {}
    for f in dense._mil_program.functions.values():
        for op in f.operations:
            if op.op_type == "linear" and op.name.startswith("lin_"):  # fp16: "lin_3_cast_fp16"
                got[int(op.name[4:].split("_")[0])] = np.asarray(op.weight.val, dtype=np.float32)
    if len(got) != len(names):
        raise SystemExit(f"read back {len(got)} of {len(names)} weights")
    errs, num, den = {}, 0.0, 0.0
    for i, n in enumerate(names):
        w, d = weights[n].astype(np.float64), got[i].reshape(weights[n].shape).astype(np.float64)
        e2, w2 = float(((d - w) ** 2).sum()), float((w * w).sum())
        errs[n] = (e2 / w2) ** 0.5
        num, den = num + e2, den + w2
    try:
        import kmeans1d  # noqa: F401
        have_kmeans1d = True
    except ImportError:
        have_kmeans1d = False
    print(json.dumps({"seconds": seconds, "rel_error": (num / den) ** 0.5, "per_weight": errs,
                      "coremltools": ct.__version__, "precision": args.precision,
                      "kmeans1d": have_kmeans1d, "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
