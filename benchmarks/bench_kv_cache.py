"""SmolLM2-135M with its KV cache in int8 rows against the float cache: quality and memory.

    python benchmarks/bench_kv_cache.py [--package out/smollm2.pocket] [--windows 4] [--tokens 1024]

Quality: perplexity of held-out Wikipedia text (`data.wikipedia_text()`, windows of --tokens
tokens, each one prefill over a fresh cache, so every position attends the cache's stored keys and
values) and the share of positions whose top-1 token equals the float cache's. Memory: the cache's
bytes at the package's full context. Speed: `bench_generation.py --modes float,kv8,int8,int8+kv8
--prompt-tokens 1536` (llama.cpp's Q8_0 cache with `--ggufs q4_1,q4_1+kv8`).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parent.parent


def nll_and_top1(model, windows):
    from pocketml.generation import causal_mask

    nll, top = [], []
    for ids in windows:
        state = model.make_state()
        z = model.predict({"input_ids": ids[None], "causal_mask": causal_mask(0, len(ids))}, state=state)["logits"]
        z = z[0, :-1].astype(np.float64)
        mx = z.max(1, keepdims=True)
        lz = mx[:, 0] + np.log(np.exp(z - mx).sum(1))
        nll.append(lz - z[np.arange(len(z)), ids[1:]])
        top.append(z.argmax(1))
    return np.concatenate(nll), np.concatenate(top)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--package", default=str(ROOT / "out" / "smollm2.pocket"))
    p.add_argument("--windows", type=int, default=4)
    p.add_argument("--tokens", type=int, default=1024)
    args = p.parse_args(argv)
    import pocketml as pm
    from pocketml.zoo import data, smollm2

    ids = smollm2.encode(data.wikipedia_text())[0]
    if len(ids) < args.windows * args.tokens:
        raise SystemExit(f"the text holds {len(ids)} tokens, fewer than {args.windows} x {args.tokens}")
    windows = [ids[i * args.tokens:(i + 1) * args.tokens].astype(np.int64) for i in range(args.windows)]
    float_model = pm.load(args.package)
    t0 = time.perf_counter()
    int8_model = pm.compress(float_model, kv_cache="int8")
    rewrite_s = time.perf_counter() - t0
    rows = {}
    for name, m in (("float32 cache", float_model), ("int8 cache", int8_model)):
        print(f"{name}: {args.windows} windows of {args.tokens} tokens", file=sys.stderr)
        cache = sum(s.type.numel() * s.type.dtype.itemsize for s in m.program.main.states)
        rows[name] = (*nll_and_top1(m, windows), cache)
    base_nll, base_top, base_cache = rows["float32 cache"]
    print(f"SmolLM2-135M, {args.windows} x {args.tokens} held-out tokens (the int8 rewrite took {rewrite_s:.2f} s)")
    print("| KV cache | perplexity | vs float | top-1 = float cache's | cache MiB (full context) |")
    print("|---|---|---|---|---|")
    for name, (nll, top, cache) in rows.items():
        ppl = math.exp(nll.mean())
        print(f"| {name} | {ppl:.3f} | {ppl / math.exp(base_nll.mean()) - 1:+.2%} | {(top == base_top).mean():.2%} | "
              f"{cache / 2**20:.1f} ({cache / base_cache:.2f}x) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
