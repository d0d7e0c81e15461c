"""SmolLM2-135M generation speed: pocketml's KV-cache package vs PyTorch eager vs llama.cpp.

    python benchmarks/bench_generation.py [--prompt-tokens 128] [--new-tokens 128]
        [--package out/smollm2.pocket] [--llama-python benchmarks/.venv-llamacpp/bin/python]
        [--modes float,int8,int4-b32,lut4-g16,lut4-g32] [--backends native,reference] [--no-peers]
        [--ggufs f32,f16,q8_0,q4_0,q4_1] [--rounds N]

A mode or GGUF ending in "+kv8" also stores the KV cache in 8 bits: pocketml's int8 rows
(`pm.compress(..., kv_cache="int8")`; "kv8" alone: float weights), llama.cpp's Q8_0 cache
(`type_k`/`type_v`, with its flash attention, which a quantized V cache needs); use a long
`--prompt-tokens` to see what the cache costs.

Every engine runs in its own process (clean peak RSS; pocketml's cannot import torch) on the same
prompt: the first N tokens of `data.wikipedia_text()`. Prefill = one call over the prompt;
decode = N new tokens, greedy, EOS ignored, one call each (the first comes from the prefill).
- pocketml: the `smollm2` zoo package (fp32, KV cache as states) and compressed copies of it (one per
  `--modes` entry, made once into benchmarks/.cache/), each on every `--backends` runtime.
- torch: the same float weights in the zoo's `CachedLlama` (same cache approach), eager, no grad.
- llama.cpp (llama-cpp-python, in its own venv, `n_threads` = cores): the Q4_1 GGUF the float
  weights come from (its native, 4-bit format), an F32 GGUF of the dequantized weights (the same
  numbers as pocketml's and torch's, written with the `gguf` package), and F16/Q8_0/Q4_0 GGUFs
  quantized from that F32 one by llama.cpp itself (`llama_model_quantize`, its default recipe).
Each engine first runs an 8-token warm-up (then its cache is emptied). Peak RSS is VmHWM of the
engine's process; tokens/s are wall clock. pocketml's load is `pm.load`; "(+s)" is the `Session`
after it (the tokenizer from the package, the plan).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def prompt_ids(n: int) -> list[int]:
    from pocketml.zoo import data, smollm2

    ids = smollm2.encode(data.wikipedia_text()[: 16 * n])[0].tolist()
    if len(ids) < n:
        raise SystemExit(f"not enough text for {n} prompt tokens")
    return ids[:n]


# -- workers (one per process) ------------------------------------------------------------------
def work_pocketml(package: str, backend: str, ids: list[int], new: int) -> dict:
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is deliberately unavailable in this process")

    sys.meta_path.insert(0, _NoTorch())
    import pocketml as pm
    from pocketml.generation import Session

    t0 = time.perf_counter()
    exact = backend.endswith("-exact")  # "native-exact": fp32 activations in compressed layers
    model = pm.load(package, backend=backend.removesuffix("-exact"), exact=exact)
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    session = Session(model)  # the tokenizer, the plan
    session_s = time.perf_counter() - t0
    list(session.generate(ids[:8], 2))  # warm-up (first-touch of the mapped weights), then reset
    session.reset()
    loop = session.model._executor.loop  # the C++ step loop (native backend), or None
    native_s = 0.0
    for i, _ in enumerate(session.generate(ids, new, ignore_eos=True)):
        if i == 0 and loop is not None:  # the prefill is done: count the decode steps' native time
            native_s = -loop.native_seconds
    st = session.stats
    if loop is not None:
        native_s += loop.native_seconds
    return dict(load_s=load, session_s=session_s, prefill_s=st.prefill_seconds, decode_s=st.decode_seconds,
                python_share=None if loop is None else 1 - native_s / st.decode_seconds,
                decode_steps=st.decode_steps, tokens=session.tokens[len(ids):], peak_rss_mib=peak_rss_mib(),
                weight_bytes=sum(a.nbytes for a in session.model.program.weights.values()))


# pocketml compression modes benchmarked: name -> global config (the smollm2 package's weights)
MODES = {
    "fp16": lambda pm: pm.Quantize("float16"),
    "int8": lambda pm: pm.Quantize("int8"),
    "int4-b32": lambda pm: pm.Quantize("int4", granularity="per_block", block_size=32),
    "uint4-b32": lambda pm: pm.Quantize("uint4", symmetric=False, granularity="per_block", block_size=32),
    "lut4-g16": lambda pm: pm.Palettize(4, granularity="per_grouped_channel", group_size=16),
    "lut4-g32": lambda pm: pm.Palettize(4, granularity="per_grouped_channel", group_size=32),
    "lut6": lambda pm: pm.Palettize(6),
    "lut8": lambda pm: pm.Palettize(8),
    "lut2-g32": lambda pm: pm.Palettize(2, granularity="per_grouped_channel", group_size=32),
    "int4-ch": lambda pm: pm.Quantize("int4"),
    "uint8-asym": lambda pm: pm.Quantize("uint8", symmetric=False),
    "prune50": lambda pm: pm.Prune(0.5),
    "prune50-int8": lambda pm: [pm.Prune(0.5), pm.Quantize("int8", granularity="per_tensor")],
}
READ_BANDWIDTH = 27.5e9  # bytes/s, 2 threads, this machine (shared/docs/kernels.md)


def compressed_package(float_package: Path, mode: str) -> Path:
    """The float package compressed with MODES[mode] (its KV cache too for "<mode>+kv8" and "kv8"),
    made once into benchmarks/.cache/."""
    import hashlib
    import warnings

    import pocketml as pm

    weights, kv8 = mode.removesuffix("+kv8").removesuffix("kv8"), mode.endswith("kv8")
    config = pm.OptimizationConfig(global_config=MODES[weights](pm)) if weights else None
    # named by the config and the compressor's sources: a new default or recipe makes a new package
    compress_dir = Path(pm.__file__).parent / "compress"
    digest = hashlib.sha256(repr((config, kv8)).encode())
    for f in sorted(compress_dir.glob("*.py")):
        digest.update(f.read_bytes())
    out = HERE / ".cache" / f"smollm2-{mode}-{digest.hexdigest()[:10]}.pocket"
    if not out.exists() or out.stat().st_mtime < float_package.stat().st_mtime:
        for stale in out.parent.glob(f"smollm2-{mode}-{'?' * 10}.pocket"):
            stale.unlink()
        out.parent.mkdir(exist_ok=True)
        print(f"compressing {float_package.name} -> {out.name}", file=sys.stderr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the lossy-mode warning: speed is measured here, not quality
            pm.compress(str(float_package), config, kv_cache="int8" if kv8 else None).save(out)
    return out


def work_torch(ids: list[int], new: int) -> dict:
    import torch

    from pocketml.zoo import smollm2

    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    module = smollm2.build_cached(len(ids) + new + 8)
    load = time.perf_counter() - t0
    out = []
    with torch.no_grad():
        module(torch.tensor([ids[:8]]), torch.from_numpy(smollm2.causal_mask(0, 8)))  # warm-up
        for name, b in module.named_buffers():
            if "_cache_" in name:
                b.zero_()
        t0 = time.perf_counter()
        logits = module(torch.tensor([ids]), torch.from_numpy(smollm2.causal_mask(0, len(ids))))
        prefill = time.perf_counter() - t0
        token = int(logits[0, -1].argmax())
        t0 = time.perf_counter()
        past = len(ids)
        for _ in range(new - 1):
            out.append(token)
            logits = module(torch.tensor([[token]]), torch.from_numpy(smollm2.causal_mask(past, 1)))
            past += 1
            token = int(logits[0, -1].argmax())
        decode = time.perf_counter() - t0
    return dict(load_s=load, prefill_s=prefill, decode_s=decode, decode_steps=new - 1, tokens=out,
                peak_rss_mib=peak_rss_mib())


def work_llamacpp(gguf: str, kv8: bool, ids: list[int], new: int) -> dict:
    import numpy as np
    from llama_cpp import Llama

    threads = os.cpu_count() or 1
    cache = dict(type_k=8, type_v=8, flash_attn=True) if kv8 else {}  # GGML_TYPE_Q8_0
    t0 = time.perf_counter()
    llm = Llama(model_path=gguf, n_ctx=len(ids) + new + 8, n_batch=len(ids), n_threads=threads,
                n_threads_batch=threads, logits_all=False, verbose=False, **cache)
    load = time.perf_counter() - t0

    def last_logits():  # logits_all=False keeps no scores: read the context's last row
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))

    llm.eval(ids[:8])  # warm-up, then an empty cache
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    prefill = time.perf_counter() - t0
    token = int(np.argmax(last_logits()))
    out = []
    t0 = time.perf_counter()
    for _ in range(new - 1):
        out.append(token)
        llm.eval([token])
        token = int(np.argmax(last_logits()))
    decode = time.perf_counter() - t0
    return dict(load_s=load, prefill_s=prefill, decode_s=decode, decode_steps=new - 1, tokens=out,
                peak_rss_mib=peak_rss_mib())


def work_quantize(src: str, dst: str, ftype: int) -> dict:
    """llama.cpp's own quantization of a GGUF (runs in the llama.cpp venv)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = os.cpu_count() or 1
    if llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params) != 0:
        raise RuntimeError(f"llama_model_quantize failed for {dst}")
    return {}


GGUF_TYPES = {"f16": 1, "q8_0": 7, "q4_0": 2}  # llama_ftype values


# -- driver ---------------------------------------------------------------------------------------
def _median_run(rs: list[dict]) -> dict:
    """The run whose decode time is the median of the rounds (its other figures with it)."""
    return sorted(rs, key=lambda r: r["decode_s"])[len(rs) // 2]



def write_f32_gguf(path: Path) -> None:
    """The Q4_1 GGUF with every tensor dequantized to F32: the float weights as llama.cpp reads them."""
    import gguf
    import numpy as np

    from pocketml.zoo import smollm2

    reader = gguf.GGUFReader(str(smollm2.gguf_path()))
    writer = gguf.GGUFWriter(str(path), arch="llama")
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        if field.name == "general.file_type":
            writer.add_uint32(field.name, int(gguf.LlamaFileType.ALL_F32))
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            sub = field.types[-1]
            vals = [field.parts[i].tobytes().decode("utf-8") if sub == gguf.GGUFValueType.STRING
                    else field.parts[i][0].item() for i in field.data]
            writer.add_array(field.name, vals)
        elif vtype == gguf.GGUFValueType.STRING:
            writer.add_string(field.name, field.parts[field.data[0]].tobytes().decode("utf-8"))
        else:
            writer.add_key_value(field.name, field.parts[field.data[0]][0], vtype)
    for t in reader.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        writer.add_tensor(t.name, w.reshape([int(d) for d in reversed(t.shape)]))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def run_worker(python: str, engine: str, args: list, ids: list[int] | None, new: int | None, env=None) -> dict:
    call = f"b.work_{engine}(*{args!r})" if ids is None else f"b.work_{engine}(*{args!r}, {ids!r}, {new})"
    code = (f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import bench_generation as b; "
            f"print('RESULT' + json.dumps({call}))")
    r = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{engine} worker failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.split("RESULT", 1)[1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--package", default=str(ROOT / "out" / "smollm2.pocket"),
                   help="the smollm2 KV-cache package (converted if missing)")
    p.add_argument("--llama-python", default=str(HERE / ".venv-llamacpp" / "bin" / "python"),
                   help="a Python with llama-cpp-python installed (skipped if missing)")
    p.add_argument("--modes", default="float", help=f"pocketml packages: float and/or {','.join(MODES)}")
    p.add_argument("--backends", default="native", help="pocketml runtimes: native (int8 activations in "
                   "compressed layers), native-exact (fp32 activations) and/or reference")
    p.add_argument("--no-peers", action="store_true", help="pocketml only (no PyTorch, no llama.cpp)")
    p.add_argument("--ggufs", default="f32,q4_1", help="llama.cpp files: f32, f16, q8_0, q4_0 (quantized "
                   "from f32 by llama.cpp) and q4_1 (the file SmolLM2 ships as)")
    p.add_argument("--rounds", type=int, default=1, help="run every engine this many times, alternating; "
                   "medians are printed")
    args = p.parse_args(argv)
    ids = prompt_ids(args.prompt_tokens)
    pkg = Path(args.package)
    if not pkg.exists():
        from pocketml.cli.main import main as cli
        print(f"converting smollm2 -> {pkg}", file=sys.stderr)
        pkg.parent.mkdir(parents=True, exist_ok=True)
        if cli(["zoo", "convert", "smollm2", str(pkg)]) != 0:
            return 1
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    print(f"prompt {len(ids)} tokens, {args.new_tokens} new tokens, {os.cpu_count()} cores", file=sys.stderr)
    modes = [m for m in args.modes.split(",") if m]
    packages = {m: pkg if m == "float" else compressed_package(pkg, m) for m in modes}
    jobs = {}  # name -> (python, engine, worker args, environment)
    for mode, path in packages.items():
        for backend in args.backends.split(","):
            jobs[f"pocketml {mode} ({backend})"] = (sys.executable, "pocketml", [str(path), backend], env)
    if not args.no_peers:
        jobs["PyTorch eager (fp32)"] = (sys.executable, "torch", [], env)
    if not args.no_peers and Path(args.llama_python).exists():
        from pocketml.zoo import smollm2
        f32 = HERE / ".cache" / "SmolLM2-135M-Instruct.F32.gguf"
        if not f32.exists():
            f32.parent.mkdir(exist_ok=True)
            write_f32_gguf(f32)
        for spec in args.ggufs.split(","):
            kind = spec.removesuffix("+kv8")
            path = {"f32": f32, "q4_1": smollm2.gguf_path()}.get(kind, HERE / ".cache" / f"SmolLM2-135M-Instruct.{kind.upper()}.gguf")
            if not Path(path).exists():
                print(f"quantizing {f32.name} -> {path.name} with llama.cpp", file=sys.stderr)
                run_worker(args.llama_python, "quantize", [str(f32), str(path), GGUF_TYPES[kind]], None, None)
            name = f"llama.cpp {kind.upper()} GGUF" + (" Q8_0 cache" if spec != kind else "")
            jobs[name] = (args.llama_python, "llamacpp", [str(path), spec != kind], None)
    results: dict[str, list[dict]] = {name: [] for name in jobs}
    for i in range(args.rounds):
        for name, (python, engine, wargs, wenv) in jobs.items():
            print(f"round {i + 1}/{args.rounds}: {name}", file=sys.stderr)
            results[name].append(run_worker(python, engine, wargs, ids, args.new_tokens, wenv))
    runs = {name: _median_run(rs) for name, rs in results.items()}
    ref = next(iter(runs.values()))["tokens"] if args.no_peers else runs["PyTorch eager (fp32)"]["tokens"]
    print(f"| engine | prefill tok/s ({len(ids)}) | decode tok/s ({args.new_tokens}) | weights MB | "
          "bandwidth share | Python share of decode | peak RSS MiB | load s | greedy tokens = reference's |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        same = next((i for i, (a, b) in enumerate(zip(r["tokens"], ref)) if a != b), None)
        tok_s = r["decode_steps"] / r["decode_s"]
        wb = r.get("weight_bytes")  # pocketml: every weight is read once per token (tied head included)
        mb, share = (f"{wb / 1e6:.0f}", f"{wb * tok_s / READ_BANDWIDTH:.0%}") if wb else ("-", "-")
        py = "-" if r.get("python_share") is None else f"{r['python_share']:.0%}"
        session = f" (+{r['session_s']:.2f})" if "session_s" in r else ""
        print(f"| {name} | {len(ids) / r['prefill_s']:.1f} | {tok_s:.1f} | {mb} | {share} | {py} | "
              f"{r['peak_rss_mib']:.0f} | {r['load_s']:.2f}{session} | "
              f"{'all ' + str(len(ref)) if same is None else f'first {same} of {len(ref)}'} |")
    peers = {n: r for n, r in runs.items() if n.startswith("llama.cpp")}
    for name, r in runs.items():  # side-by-side ratios (> 1: pocketml faster)
        if name.startswith("pocketml") and peers:
            ratios = ", ".join(
                f"{p.removeprefix('llama.cpp ').replace(' GGUF', '')} decode "
                f"{q['decode_s'] / q['decode_steps'] / (r['decode_s'] / r['decode_steps']):.2f}x "
                f"prefill {q['prefill_s'] / r['prefill_s']:.2f}x" for p, q in peers.items())
            print(f"{name} vs llama.cpp: {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
