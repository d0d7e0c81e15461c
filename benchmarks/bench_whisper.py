"""Whisper tiny.en transcription: pocketml's package vs PyTorch eager (and ONNX Runtime's encoder), same audio.

    python benchmarks/bench_whisper.py [--text TEXT | --wav FILE] [--repeat N] [--rounds N] [--threads N] [--out DIR]

Both engines do the same work the same way: the WAV read and resampled to 16 kHz, log-mel in
NumPy (pocketml.audio), the encoder plus every decoder layer's cross-attention keys/values once
per 30 s window, then greedy decoding with a self-attention KV cache (the prompt in one call,
then one token per call) and the same suppression. PyTorch runs the zoo's modules
(`whisper.build_cross_kv`, `whisper.build_cached_decoder`) that the package was converted from.
Each engine runs in its own process (so peak RSS is its own): one warm-up transcription, then N
timed ones; medians are printed. The real-time factor is processing time / audio duration.
`--threads N` limits both engines' math libraries (OpenBLAS/OpenMP, torch) to N threads, which
gives steadier figures on a machine shared with other jobs. Where onnxruntime and onnx are installed
(`pip install -e '.[bench]'`), the same encoder function exported to ONNX (`whisper.build_cross_kv`:
the encoder and every decoder layer's cross-attention keys/values, what the package's encoder
function and the PyTorch run compute) runs on the same log-mel windows too (that function only:
the decoder's cache does not export), so the encoder column compares all three.
Engines alternate over `--rounds` rounds; medians over rounds are printed.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PARAGRAPH = ("The quick brown fox jumps over the lazy dog. Please call Stella and ask her to bring these "
             "things with her from the store. The weather today is sunny with a light breeze from the "
             "north, and the museum in London will be open until half past nine on Tuesday.")


def _peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, it does not inherit the parent's across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pocketml(package: Path):
    from pocketml.transcription import Transcriber

    transcriber = Transcriber(package)

    def run(wav: Path) -> dict:
        r = transcriber.transcribe(wav)
        s = r.stats
        return {"text": r.text, "tokens": r.tokens, "audio_s": s.audio_seconds, "features_s": s.features_seconds,
                "encoder_s": s.encoder_seconds, "decode_s": s.decode_seconds, "calls": s.decoder_calls}

    return run


def _torch():
    import torch

    from pocketml.audio import log_mel_spectrogram, read_wav, resample
    from pocketml.transcription import split_windows
    from pocketml.zoo import whisper

    torch.set_grad_enabled(False)
    cross_kv, decoder = whisper.build_cross_kv(), whisper.build_cached_decoder()

    def run(wav: Path) -> dict:
        out = {"tokens": [], "features_s": 0.0, "encoder_s": 0.0, "decode_s": 0.0, "calls": 0}
        t0 = time.perf_counter()
        samples, rate = read_wav(wav)
        x = resample(samples, rate, whisper.SAMPLE_RATE)
        out["audio_s"] = x.size / whisper.SAMPLE_RATE
        out["features_s"] += time.perf_counter() - t0
        for window in split_windows(x, whisper.SAMPLE_RATE):
            t0 = time.perf_counter()
            features = torch.from_numpy(log_mel_spectrogram(window, whisper.N_MELS)[None])
            t1 = time.perf_counter()
            kv = cross_kv(features)
            t2 = time.perf_counter()
            ids = whisper.greedy_decode_cached(decoder, kv)
            t3 = time.perf_counter()
            out["features_s"] += t1 - t0
            out["encoder_s"] += t2 - t1
            out["decode_s"] += t3 - t2
            out["calls"] += len(ids) + (len(ids) < whisper.MAX_NEW_TOKENS)  # + the end-of-text call
            out["tokens"].append(ids)
        texts = (whisper.tokenizer().decode(ids, skip_special_tokens=True).strip() for ids in out["tokens"])
        out["text"] = " ".join(t for t in texts if t)
        return out

    return run


def _onnxruntime(model: Path):
    """The encoder function (encoder + cross-attention keys/values) through ONNX Runtime, on the same
    windows and features."""
    import onnxruntime as ort

    from pocketml.audio import log_mel_spectrogram, read_wav, resample
    from pocketml.transcription import split_windows
    from pocketml.zoo import whisper

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def run(wav: Path) -> dict:
        out = {"tokens": [], "features_s": 0.0, "encoder_s": 0.0, "decode_s": float("nan"), "calls": 0, "text": ""}
        samples, rate = read_wav(wav)
        x = resample(samples, rate, whisper.SAMPLE_RATE)
        out["audio_s"] = x.size / whisper.SAMPLE_RATE
        for window in split_windows(x, whisper.SAMPLE_RATE):
            features = log_mel_spectrogram(window, whisper.N_MELS)[None].astype(np.float32)
            t0 = time.perf_counter()
            sess.run(None, {name: features})
            out["encoder_s"] += time.perf_counter() - t0
        return out

    return run


def worker(engine: str, out_dir: Path, repeat: int) -> dict:
    """Runs inside a fresh process: load, one warm-up, `repeat` timed transcriptions."""
    wav = out_dir / "speech.wav"
    t0 = time.perf_counter()
    run = (_pocketml(out_dir / "whisper-tiny-en.pocket") if engine == "pocketml"
           else _onnxruntime(out_dir / "whisper-cross-kv.onnx") if engine == "onnxruntime" else _torch())
    load_s = time.perf_counter() - t0
    first = run(wav)
    runs = [run(wav) for _ in range(repeat)]
    med = {k: float(np.median([r[k] for r in runs])) for k in ("features_s", "encoder_s", "decode_s")}
    total = med["features_s"] + med["encoder_s"] + med["decode_s"]
    return {"load_s": load_s, "text": first["text"], "tokens": first["tokens"], "audio_s": first["audio_s"],
            "calls": first["calls"], **med, "total_s": total,
            "decode_tok_s": first["calls"] / med["decode_s"] if first["calls"] else float("nan"),
            "rtf": total / first["audio_s"], "peak_rss_mib": _peak_rss_mib()}


def prepare(out_dir: Path, text: str | None, wav: Path | None, reuse: bool) -> None:
    """The package (pocketml zoo convert whisper-tiny-en) and the speech (espeak-ng) in out_dir."""
    package = out_dir / "whisper-tiny-en.pocket"
    if not (reuse and package.exists()):
        subprocess.run([sys.executable, "-m", "pocketml.cli.main", "zoo", "convert", "whisper-tiny-en",
                        str(package)], check=True)
    onnx_path = out_dir / "whisper-cross-kv.onnx"
    if not (reuse and onnx_path.exists()):
        try:
            import warnings

            import onnx  # noqa: F401  (torch.onnx.export needs it)
            import torch

            from pocketml import zoo

            from pocketml.zoo import whisper

            entry = zoo.get("whisper-tiny-en-encoder")  # its example log-mel window
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(whisper.build_cross_kv(), tuple(entry.example_inputs()), str(onnx_path),
                                  dynamo=False, opset_version=17, input_names=list(entry.input_names),
                                  output_names=list(whisper.cross_kv_names()))
        except ImportError:
            print("onnx/onnxruntime not installed: no ONNX Runtime row (pip install -e '.[bench]')", file=sys.stderr)
    target = out_dir / "speech.wav"
    if wav is not None:
        target.write_bytes(wav.read_bytes())
    else:
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(target), text or PARAGRAPH],
                       check=True, timeout=120)


def _machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--text", help="what espeak-ng says (default: a 3-sentence paragraph)")
    g.add_argument("--wav", type=Path, help="transcribe this WAV file instead")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1, help="engines alternate this many times; medians over rounds")
    p.add_argument("--out", type=Path, default=Path("out/bench"))
    p.add_argument("--threads", type=int, help="threads for each engine's math (default: the libraries' own)")
    p.add_argument("--reuse", action="store_true", help="keep an already converted package in --out")
    p.add_argument("--worker", metavar="ENGINE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        print(json.dumps(worker(args.worker, args.out, args.repeat)))
        return 0
    print("preparing: converting whisper-tiny-en, synthesising speech", file=sys.stderr, flush=True)
    prepare(args.out, args.text, args.wav, args.reuse)
    before = _machine()
    env = dict(os.environ)
    if args.threads:
        env.update({k: str(args.threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    engines = ["pocketml", "torch"]
    try:
        import onnxruntime  # noqa: F401
        if (args.out / "whisper-cross-kv.onnx").exists():
            engines.append("onnxruntime")
    except ImportError:
        pass
    runs: dict = {}
    for i in range(args.rounds):
        for engine in engines:
            print(f"round {i + 1}/{args.rounds}: {engine}", file=sys.stderr, flush=True)
            r = subprocess.run([sys.executable, __file__, "--worker", engine, "--out", str(args.out),
                                "--repeat", str(args.repeat)], capture_output=True, text=True, env=env)
            if r.returncode:
                print(r.stderr[-3000:], file=sys.stderr)
                return 1
            runs.setdefault(engine, []).append(json.loads(r.stdout.strip().splitlines()[-1]))
    res = {}
    for engine, rs in runs.items():
        res[engine] = dict(rs[0])
        for k in ("load_s", "features_s", "encoder_s", "decode_s", "total_s", "decode_tok_s", "rtf", "peak_rss_mib"):
            res[engine][k] = float(np.median([r[k] for r in rs]))
    audio = res["pocketml"]["audio_s"]
    threads = f"{args.threads} thread(s) per engine" if args.threads else "default threads"
    print(f"\nmachine: {before} before, {_machine()} after (other jobs may share it); {threads}")
    print(f"audio: {audio:.2f} s, {args.repeat} timed run(s) after a warm-up, medians over {args.rounds} "
          f"round(s) of alternating engines; ONNX Runtime: the encoder function only\n")
    print(f"{'engine':10} {'load s':>7} {'features s':>11} {'encoder s':>10} {'decode calls':>13} "
          f"{'decode tok/s':>13} {'total s':>8} {'RTF':>7} {'peak RSS MiB':>13}")
    for engine, r in res.items():
        print(f"{engine:10} {r['load_s']:7.2f} {r['features_s']:11.3f} {r['encoder_s']:10.3f} {r['calls']:13d} "
              f"{r['decode_tok_s']:13.1f} {r['total_s']:8.2f} {r['rtf']:7.3f} {r['peak_rss_mib']:13.0f}")
    enc = res["pocketml"]["encoder_s"]
    print("\nencoder vs " + ", ".join(f"{e} {enc / r['encoder_s']:.2f}x" for e, r in res.items() if e != "pocketml")
          + f"; real-time factor vs torch {res['pocketml']['rtf'] / res['torch']['rtf']:.2f}x")
    print()
    for engine, r in res.items():
        if r["text"]:
            print(f"{engine:10} {r['text']}")
    same = res["pocketml"]["tokens"] == res["torch"]["tokens"]
    print(f"\nidentical tokens: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
