"""The main job: convert real models, save packages, run them without torch, validate vs PyTorch.

    python examples/end_to_end.py [NAME ...] [--out DIR] [--samples N]

For each zoo model (default: all): build the PyTorch model from its PyPI weight package, convert
it, save `DIR/NAME.pocket`, run the package in a separate process where torch cannot be imported
(fp32, then fp16 emulation), and compare every output with PyTorch on real samples.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import pocketml as pm
from pocketml import zoo
from pocketml.validation import aggregate, compare_arrays, flatten_outputs

HERE = Path(__file__).parent
MIN_COSINE = 0.99999  # acceptance (fp32), with each zoo entry's own max abs error (entry.atol)


CLASSIFIERS = ("crepe-tiny", "efficientnet-lite0", "smollm2", "smollm2-nocache",
               "whisper-tiny-en-decoder")  # argmax is meaningful


def task_metrics(name: str, got: list[np.ndarray], ref: list[np.ndarray]) -> str:
    """The model's own yardstick: embedding cosine, identical top-1 class or next token."""
    if name == "minilm":
        cos = np.concatenate([np.sum(g.astype(np.float64) * r, -1) /
                              (np.linalg.norm(g, axis=-1) * np.linalg.norm(r, axis=-1)) for g, r in zip(got, ref)])
        return f"{cos.size} sentence embeddings: cosine min {cos.min():.7f}, mean {cos.mean():.7f}"
    if name == "crepe-tiny":
        from pocketml.zoo.crepe import frequency

        same = np.mean(np.concatenate([g.argmax(-1) == r.argmax(-1) for g, r in zip(got, ref)]))
        cents = np.concatenate([1200 * np.abs(np.log2(frequency(g) / frequency(r))) for g, r in zip(got, ref)])
        return f"pitch bin identical on {same:.4f} of frames, max pitch difference {cents.max():.1f} cents"
    if name == "silero-vad" and got[0].shape[-1] == 1:  # the probability output
        same = sum(int(np.all((g >= 0.5) == (r >= 0.5))) for g, r in zip(got, ref))
        return f"speech / no-speech decision identical on {same}/{len(got)} samples"
    if name == "mtcnn" and got[0].ndim == 4 and got[0].shape[1] == 2:  # P-Net's face probabilities
        same = np.mean(np.concatenate([((g[:, 1] > 0.5) == (r[:, 1] > 0.5)).ravel() for g, r in zip(got, ref)]))
        faces = sum(int((r[:, 1] > 0.5).sum()) for r in ref)
        return f"face / no-face decision identical on {same:.4f} of 12x12 windows ({faces} face windows)"
    if name == "efficientnet-lite0":
        same = sum(int(g.argmax(-1)[0] == r.argmax(-1)[0]) for g, r in zip(got, ref))
        return f"top-1 class identical on {same}/{len(got)} photos"
    if name in ("smollm2", "smollm2-nocache", "whisper-tiny-en-decoder"):
        same = sum(int(g[0, -1].argmax() == r[0, -1].argmax()) for g, r in zip(got, ref))
        agree = np.mean(np.concatenate([(g.argmax(-1) == r.argmax(-1)).ravel() for g, r in zip(got, ref)]))
        return f"next token identical on {same}/{len(got)} prompts; top-1 agreement at all positions {agree:.4f}"
    return ""


def run_one(name: str, out_dir: Path, max_samples: int | None) -> bool:
    entry = zoo.get(name)
    print(f"\n=== {name}: {entry.description}", flush=True)
    t0 = time.perf_counter()
    module = entry.build()
    samples = entry.samples()[:max_samples]
    print(f"built PyTorch model from {entry.package} in {time.perf_counter() - t0:.1f} s; "
          f"{len(samples)} real sample(s)")

    t0 = time.perf_counter()
    model = pm.convert(module, entry.example_inputs(), input_names=entry.input_names,
                       output_names=entry.output_names,
                       dynamic_shapes=entry.dynamic_shapes() if entry.dynamic_shapes else None,
                       metadata={"author": entry.author, "license": entry.license,
                                 "description": entry.description,
                                 **(entry.metadata() if entry.metadata else {})})
    if entry.finish is not None:  # e.g. whisper-tiny-en's second function, the cached decoder
        model = entry.finish(model)
    path = out_dir / f"{name}.pocket"
    model.save(path)
    print(f"converted in {time.perf_counter() - t0:.1f} s -> {path} ({path.stat().st_size / 2**20:.1f} MiB, "
          f"{len(model.function.ops)} ops)")

    with torch.no_grad():
        refs = [[t.numpy() for t in flatten_outputs(module(*s))] for s in samples]
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.npz"
        np.savez(inputs, **{f"s{i}_{n}": t.numpy() for i, s in enumerate(samples)
                            for n, t in zip(model.input_names, s)})
        ok = True
        for precision in ("float32", "float16"):
            outputs = Path(tmp) / f"outputs_{precision}.npz"
            r = subprocess.run([sys.executable, str(HERE / "run_package.py"), str(path), str(inputs),
                                str(outputs), precision], capture_output=True, text=True)
            if r.returncode != 0:
                print(r.stderr, file=sys.stderr)
                return False
            print(f"[{precision}] without torch: {r.stdout.strip()}")
            data = np.load(outputs)
            for j, out_name in enumerate(model.output_names):
                got = [data[f"s{i}_{out_name}"] for i in range(len(samples))]
                ref = [refs[i][j] for i in range(len(samples))]
                m = aggregate(out_name, [compare_arrays(g, r) for g, r in zip(got, ref)], ref[0].shape,
                              str(got[0].dtype), entry.atol, MIN_COSINE)
                verdict = ("PASS" if m.passed else "FAIL") if precision == "float32" else "(fp16 loss)"
                print(f"[{precision}] {out_name}: max abs {m.max_abs_error:.3g}, max rel "
                      f"{m.max_rel_error:.3g}, cosine min {m.cosine:.7f}, SNR {m.snr_db:.1f} dB"
                      + (f", top-1 agreement {m.top1_agreement:.4f}" if name in CLASSIFIERS else "")
                      + f"  {verdict}")
                task = task_metrics(name, got, ref)
                if task:
                    print(f"[{precision}] {task}")
                if precision == "float32":
                    ok &= m.passed
    if name == "smollm2":  # the KV-cache package generating a chat answer, against PyTorch
        ok &= check_generation(module, path)
    if name == "whisper-tiny-en":  # encoder + cached decoder transcribing speech, against PyTorch
        ok &= check_transcription(path)
    if name == "silero-vad":  # streaming over an utterance, the state carried call to call
        ok &= check_vad(module, path)
    if name == "mtcnn":  # the package's other two functions on labelled face / non-face crops
        ok &= check_refiners(path)
    return ok


def check_generation(module, path: Path, prompt: str = "What is the capital of France?", n: int = 32) -> bool:
    from pocketml.zoo import smollm2

    ids = smollm2.encode(smollm2.chat_prompt(prompt))
    want = smollm2.decode(smollm2.generate_greedy(module.model, ids, n))
    r = subprocess.run([sys.executable, str(HERE / "run_package.py"), "--generate", str(path), prompt, str(n)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        return False
    got, stats = r.stdout.rstrip("\n").rsplit("\n", 1)
    same = got == want
    print(f"[generate] {prompt!r} -> {got!r}\n[generate] {stats}; identical to PyTorch's greedy "
          f"answer: {'yes' if same else 'NO: ' + repr(want)}")
    return same


def check_refiners(path: Path) -> bool:
    from pocketml.zoo import mtcnn

    ok = True
    for net in ("rnet", "onet"):
        crops, labels = mtcnn.face_crops(mtcnn.CROP[net])
        model = pm.load(path, function=net)
        got = model.predict({"crops": crops})
        with torch.no_grad():
            want = dict(zip(model.output_names, (t.numpy() for t in mtcnn.build_net(net)(torch.from_numpy(crops)))))
        diff = max(float(np.abs(got[n] - w).max()) for n, w in want.items())
        faces, ref_faces = got["probabilities"][:, 1] > 0.5, want["probabilities"][:, 1] > 0.5
        same = bool(np.all(faces == ref_faces))
        print(f"[{net}] {len(crops)} labelled crops: max abs difference {diff:.2g}, face decision identical: "
              f"{same}, correct on {int(np.sum(faces == (labels == 1)))}/{len(crops)} (PyTorch: "
              f"{int(np.sum(ref_faces == (labels == 1)))})")
        ok &= same and diff < 1e-4
    return ok


def check_vad(module, path: Path) -> bool:
    from pocketml.zoo import silero_vad

    audio = silero_vad._speech(1)
    model = pm.load(path)

    def package_step(chunk, state):
        out = model.predict({"audio": chunk, "state": state})
        return out["probability"], out["state_out"]

    def torch_step(chunk, state):
        with torch.no_grad():
            return tuple(t.numpy() for t in module(torch.from_numpy(chunk), torch.from_numpy(state)))
    t0 = time.perf_counter()
    got = silero_vad.speech_probabilities(package_step, audio)
    seconds = time.perf_counter() - t0
    want = silero_vad.speech_probabilities(torch_step, audio)
    same = silero_vad.speech_segments(got) == silero_vad.speech_segments(want)
    print(f"streamed {len(got)} chunks of 32 ms ({len(audio) / 16000:.1f} s of speech) in {seconds * 1e3:.0f} ms: "
          f"max probability difference {np.abs(got - want).max():.2g}, speech segments identical: {same}")
    return same


def check_transcription(path: Path) -> bool:
    """`pm.transcribe` on the package (no torch) gives PyTorch's greedy transcript of spoken sentences."""
    from pocketml.zoo import data, whisper

    texts = data.SPEECH_TEXTS[:3]
    audio = [data.speech(t) for t in texts]
    encoder, decoder = whisper.build_encoder(), whisper.build_decoder()
    want = [whisper.transcribe_reference(a, encoder, decoder) for a in audio]
    with tempfile.TemporaryDirectory() as tmp:
        clips = Path(tmp) / "speech.npz"
        np.savez(clips, *audio)
        r = subprocess.run([sys.executable, str(HERE / "run_package.py"), "--transcribe", str(path), str(clips)],
                           capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        return False
    *got, stats = r.stdout.rstrip("\n").split("\n")
    for text, g, w in zip(texts, got, want):
        print(f"[transcribe] spoken {text!r} -> {g!r}; identical to PyTorch's: "
              f"{'yes' if g == w else 'NO: ' + repr(w)}")
    print(f"[transcribe] {stats}")
    return got == want


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", default=zoo.names(), help=f"zoo models (default: all of {zoo.names()})")
    p.add_argument("--out", type=Path, default=Path("out"), help="folder for the packages (default: out/)")
    p.add_argument("--samples", type=int, default=None, help="use at most N samples per model")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {name: run_one(name, args.out, args.samples) for name in args.names}
    print("\n" + "\n".join(f"{'PASS' if ok else 'FAIL'}  {name}" for name, ok in results.items()))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
