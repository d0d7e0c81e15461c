"""SmolLM2-135M with two LoRA adapters as one multifunction package against three packages.

    python benchmarks/bench_adapters.py [--steps 30] [--rank 8] [--tokens 32]

1. Trains two adapters with PyTorch and `peft` (rank --rank on the attention's q/v projections,
   AdamW, --steps steps of 2 x 128 tokens): "news" on the 300 ABC news documents of
   `data.news_background()`, "reviews" on the 200 movie-review sentences of `data.movie_reviews()`
   (made once into benchmarks/.cache/), and prints each one's held-out loss before and after.
2. Converts the base and each adapter model (KV cache as states), and merges them (`pm.merge`:
   the base's weights once, each adapter's A and B beside them), also saving the three packages.
3. Checks that each function's greedy tokens after a prompt equal its PyTorch model's.
4. In fresh processes (no torch): the merged package against the three separate ones, every
   function generating in turn: peak RSS, the switch to another function (its `Session`: the
   plan), decode tok/s of each.
"""
from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
CACHE = HERE / ".cache" / "adapters"
ADAPTERS = ("news", "reviews")
PROMPT = "The minister said on Tuesday that"


def texts(name: str) -> list[str]:
    from pocketml.zoo import data

    return list(data.news_background()) if name == "news" else [t for _, t in data.movie_reviews()]


def windows(name: str, length: int = 128):
    """Token windows of the adapter's text: (training, held out)."""
    import torch

    from pocketml.zoo import smollm2

    ids = smollm2.encode(" ".join(texts(name)))[0]
    w = [torch.tensor(ids[i:i + length]) for i in range(0, len(ids) - length, length)]
    return w[:-4], w[-4:]


def loss(model, batch) -> "torch.Tensor":
    import torch.nn.functional as F

    logits = model(batch)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


def train(base, name: str, steps: int, rank: int):
    """The peft model of `base` with the adapter `name` (trained, or loaded from the cache)."""
    import peft
    import torch

    torch.manual_seed(0)
    model = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(
        r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))
    path = CACHE / f"{name}-r{rank}-s{steps}.pt"
    train_w, held = windows(name)
    held = torch.stack(held)
    with torch.no_grad():
        before = float(loss(model, held))
    if path.exists():
        model.load_state_dict(torch.load(path), strict=False)
    else:
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        g = torch.Generator().manual_seed(0)
        for step in range(steps):
            batch = torch.stack([train_w[i] for i in torch.randint(len(train_w), (2,), generator=g)])
            opt.zero_grad()
            loss(model, batch).backward()
            opt.step()
            print(f"\r{name}: step {step + 1}/{steps}", end="", file=sys.stderr)
        print(file=sys.stderr)
        CACHE.mkdir(parents=True, exist_ok=True)
        torch.save({k: v for k, v in model.state_dict().items() if "lora_" in k}, path)
    model.eval()
    with torch.no_grad():
        after = float(loss(model, held))
    return model.base_model.model, before, after


def greedy(module, ids: list[int], n: int) -> list[int]:
    import torch

    out = []
    with torch.no_grad():
        for _ in range(n):
            out.append(int(module(torch.tensor([ids + out]))[0, -1].argmax()))
    return out


def work(paths: dict[str, str], merged: bool, ids: list[int], n: int) -> dict:
    """In a fresh process: load (one merged package, or one package per function), then each
    function in turn: its Session (the switch) and n greedy tokens."""
    import pocketml as pm
    from pocketml.generation import Session

    t0 = time.perf_counter()
    models = pm.load(paths["merged"]).functions if merged else {k: pm.load(p) for k, p in paths.items() if k != "merged"}
    load_s = time.perf_counter() - t0
    out = {}
    for name, m in models.items():
        t0 = time.perf_counter()
        s = Session(m)
        switch = time.perf_counter() - t0
        text = "".join(s.generate(ids, n, ignore_eos=True))
        out[name] = {"switch_s": switch, "tok_s": s.stats.decode_steps / s.stats.decode_seconds,
                     "tokens": s.tokens[len(ids):], "text": text}
    with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
    return {"load_s": load_s, "functions": out, "peak_rss_mib": rss}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--tokens", type=int, default=32)
    args = p.parse_args(argv)
    import pocketml as pm
    from pocketml.zoo import smollm2
    from pocketml.zoo._llama import CachedLlama

    base = smollm2.build()
    tuned, losses = {}, {}
    for name in ADAPTERS:
        tuned[name], *losses[name] = train(base, name, args.steps, args.rank)
    ids = smollm2.encode(PROMPT)[0].tolist()
    CACHE.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, module in {"base": base, **tuned}.items():
        print(f"converting {name}", file=sys.stderr)
        pkg = _convert(CachedLlama(module, 512).eval(), smollm2.package_metadata())
        paths[name] = str(CACHE / f"{name}.pocket")
        pkg.save(paths[name])
    merged = pm.merge({n: paths[n] for n in ("base", *ADAPTERS)}, default="base")
    paths["merged"] = str(CACHE / "merged.pocket")
    merged.save(paths["merged"])
    want = {"base": greedy(base, ids, args.tokens), **{n: greedy(m, ids, args.tokens) for n, m in tuned.items()}}
    runs = {}
    for kind in ("merged", "separate", "merged", "separate"):  # alternating, the second of each kept
        code = (f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import bench_adapters as b; "
                f"print('RESULT' + json.dumps(b.work({paths!r}, {kind == 'merged'}, {ids!r}, {args.tokens})))")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(r.stderr[-3000:])
        runs[kind] = json.loads(r.stdout.split("RESULT", 1)[1])
    size = {k: Path(v).stat().st_size for k, v in paths.items()}
    from pocketml.inspect import summary

    info = summary(paths["merged"])["function_bytes"]
    print(f"SmolLM2-135M + LoRA adapters (rank {args.rank}, q/v, {args.steps} steps of 2 x 128 tokens)")
    print("| adapter | held-out loss before -> after | adapter bytes in the merged package |")
    print("|---|---|---|")
    for n in ADAPTERS:
        print(f"| {n} | {losses[n][0]:.3f} -> {losses[n][1]:.3f} | {info[n]['own'] / 2**10:.0f} KiB |")
    sep = sum(size[n] for n in ("base", *ADAPTERS))
    print(f"\nmerged package {size['merged'] / 2**20:.1f} MiB against three packages {sep / 2**20:.1f} MiB "
          f"(the base alone {size['base'] / 2**20:.1f} MiB)\n")
    print("| packages | peak RSS MiB | load s | function | switch s | decode tok/s | greedy tokens = PyTorch's |")
    print("|---|---|---|---|---|---|---|")
    for kind, r in runs.items():
        for n, f in r["functions"].items():
            same = f["tokens"] == want[n][:len(f["tokens"])] and len(f["tokens"]) >= args.tokens - 1
            print(f"| {kind} | {r['peak_rss_mib']:.0f} | {r['load_s']:.2f} | {n} | {f['switch_s']:.3f} | "
                  f"{f['tok_s']:.1f} | {'yes' if same else 'NO'} |")
    for n, f in runs["merged"]["functions"].items():
        print(f"{n}: {f['text']!r}")
    return 0


def _convert(module, metadata):
    import torch

    import pocketml as pm
    from pocketml.generation import causal_mask

    seq, ctx = torch.export.Dim("seq", min=1, max=512), torch.export.Dim("context", min=1, max=512)
    m = pm.convert(module, (torch.zeros(1, 3, dtype=torch.int64), torch.from_numpy(causal_mask(0, 3))),
                   input_names=["input_ids", "causal_mask"], output_names=["logits"],
                   dynamic_shapes=({1: seq}, {2: seq, 3: ctx}))
    m.metadata.update(metadata)
    return m


if __name__ == "__main__":
    sys.exit(main())
