"""Silero VAD streaming over speech: pocketml vs the silero-vad package's own ONNX model on ONNX
Runtime and its TorchScript model on PyTorch, the same audio, 32 ms a call.

    python benchmarks/bench_vad.py [--rounds N] [--repeat N] [--out DIR]

The audio is every espeak-ng utterance of `zoo.data.SPEECH_TEXTS`, each between half-second
silences (about 25 s). Each engine runs in its own process (peak RSS its own) and streams the
whole audio `--repeat` times after one warm-up pass; engines alternate over `--rounds` rounds and
the medians are printed: milliseconds per pass, microseconds per call, real-time factor, ratios
to PyTorch and ONNX Runtime, and whether the speech segments equal PyTorch's.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_runtime import _peak_rss_mib  # this folder is on sys.path when a benchmark runs

ENGINES = ("pocketml", "onnxruntime", "torch")


def worker(engine: str, out_dir: Path, repeat: int) -> dict:
    from pocketml.zoo import silero_vad

    audio = np.load(out_dir / "vad_audio.npy")
    t0 = time.perf_counter()
    if engine == "pocketml":
        import pocketml as pm

        model = pm.load(out_dir / "silero-vad.pocket")

        def step(chunk, state):
            out = model.predict({"audio": chunk, "state": state})
            return out["probability"], out["state_out"]
        run = lambda: silero_vad.speech_probabilities(step, audio)  # noqa: E731
    elif engine == "onnxruntime":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(silero_vad.onnx_path()), providers=["CPUExecutionProvider"])
        sr = np.array(silero_vad.SAMPLE_RATE, dtype=np.int64)

        def step(chunk, state):
            return sess.run(None, {"input": chunk, "state": state, "sr": sr})
        run = lambda: silero_vad.speech_probabilities(step, audio)  # noqa: E731
    else:  # the package's TorchScript model, as its README runs it: 512 samples a call
        import torch

        torch.set_grad_enabled(False)
        jit = torch.jit.load(str(silero_vad.weights_path()), map_location="cpu")
        chunks = [torch.from_numpy(c[silero_vad.CONTEXT:].copy())[None] for c in silero_vad.chunks(audio)]

        def run():
            jit.reset_states()
            return np.array([float(jit(c, silero_vad.SAMPLE_RATE)) for c in chunks], dtype=np.float32)
    load_s = time.perf_counter() - t0
    probs = run()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    np.save(out_dir / f"vad_probs_{engine}.npy", probs)
    return {"load_s": load_s, "median_ms": float(np.median(times) * 1e3), "peak_rss_mib": _peak_rss_mib()}


def prepare(out_dir: Path) -> float:
    """Convert the zoo entry and save the audio; returns its length in seconds."""
    import pocketml as pm
    from pocketml import zoo
    from pocketml.zoo import data, silero_vad

    entry = zoo.get("silero-vad")
    pm.convert(entry.build(), entry.example_inputs(), input_names=entry.input_names,
               output_names=entry.output_names, dynamic_shapes=entry.dynamic_shapes()).save(
        out_dir / "silero-vad.pocket")
    audio = np.concatenate([silero_vad._speech(i) for i in range(len(data.SPEECH_TEXTS))])
    np.save(out_dir / "vad_audio.npy", audio)
    return audio.size / silero_vad.SAMPLE_RATE


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("out/bench"))
    p.add_argument("--worker", metavar="ENGINE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        print(json.dumps(worker(args.worker, args.out, args.repeat)))
        return 0
    from pocketml.zoo import silero_vad

    seconds = prepare(args.out)
    calls = -(-round(seconds * silero_vad.SAMPLE_RATE) // silero_vad.CHUNK)
    runs: dict = {}
    for i in range(args.rounds):
        for engine in ENGINES:
            print(f"round {i + 1}/{args.rounds}: {engine}", file=sys.stderr, flush=True)
            r = subprocess.run([sys.executable, __file__, "--worker", engine, "--out", str(args.out),
                                "--repeat", str(args.repeat)], capture_output=True, text=True)
            if r.returncode:
                print(r.stderr[-2000:], file=sys.stderr)
                continue
            runs.setdefault(engine, []).append(json.loads(r.stdout.strip().splitlines()[-1]))
    res = {e: {k: float(np.median([r[k] for r in rs])) for k in rs[0]} for e, rs in runs.items()}
    ref = np.load(args.out / "vad_probs_torch.npy") if "torch" in res else None
    print(f"\nSilero VAD over {seconds:.1f} s of speech and silence, {calls} calls of 32 ms; package "
          f"{(args.out / 'silero-vad.pocket').stat().st_size / 2**20:.2f} MiB")
    print(f"{'engine':12} {'load s':>7} {'ms / pass':>10} {'us / call':>10} {'RTF':>8} {'vs torch':>9} {'vs ORT':>7} "
          f"{'peak RSS MiB':>13} {'max |dp|':>9} {'segments':>9}")
    for engine, r in res.items():
        ms = r["median_ms"]
        probs = np.load(args.out / f"vad_probs_{engine}.npy")
        diff = f"{np.abs(probs - ref).max():.1e}" if ref is not None else "-"
        same = "-" if ref is None else ("same" if silero_vad.speech_segments(probs) == silero_vad.speech_segments(ref)
                                        else "DIFFER")
        vs = [f"{ms / res[e]['median_ms']:.2f}x" if e in res else "-" for e in ("torch", "onnxruntime")]
        print(f"{engine:12} {r['load_s']:7.2f} {ms:10.1f} {ms * 1e3 / calls:10.0f} {ms / 1e3 / seconds:8.4f} "
              f"{vs[0]:>9} {vs[1]:>7} {r['peak_rss_mib']:13.0f} {diff:>9} {same:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
