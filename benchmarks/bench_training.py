"""Training-time compression on EfficientNet-Lite0: 4-bit palettization by DKM, distilled from the
float model on unlabelled, augmented real pictures, against data-free and calibrated 4-bit.

    python benchmarks/bench_training.py [--minutes 25] [--batch 8] [--lr 3e-5] [--mode pal4-g16]
                                        [--start calibrated|data-free] [--features 1.0]

Data: scikit-image's 16 pictures that are no ImageNet photo (the calibration set of
bench_compression.py), each step a batch of random crops (8-100 % of the area, aspect 3/4-4/3,
mirrored, channels shuffled, brightness and contrast jittered, half of them blended with another:
mixup), at 224x224. Loss: the KL divergence of the student's softened logits (T = 2) from the
float teacher's, plus each block's relative output error (`--features`). The start: GPTQ on the
32 calibration pictures (`--start calibrated`, the default) or the data-free compression.
Evaluation, held apart: the 7 real photos of the zoo's `samples()` and their mirror images (14
inputs), top-1 against the float model's and the logits' cosine, on the exported package (native
backend, its default kernels). Prints the training time and peak RSS; trains for `--minutes`
(the issue's budget: 30 minutes of CPU in all).
"""
from __future__ import annotations

import argparse
import copy
import math
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_compression import _calibration_pictures, _cos_rows, raw_pictures  # noqa: E402


def _crop(im: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop of 8-100 % of the area (aspect 3/4-4/3) at 224x224, mirrored half the time,
    its channels shuffled one time in five, brightness and contrast jittered ±20 %: float 0-255."""
    from PIL import Image

    h, w = im.shape[:2]
    for _ in range(10):
        area = h * w * rng.uniform(0.08, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        ch, cw = int(round(math.sqrt(area / aspect))), int(round(math.sqrt(area * aspect)))
        if 0 < ch <= h and 0 < cw <= w:
            break
    else:
        ch, cw = min(h, w), min(h, w)
    top, left = rng.integers(h - ch + 1), rng.integers(w - cw + 1)
    x = np.asarray(Image.fromarray(im[top:top + ch, left:left + cw]).resize((224, 224), Image.Resampling.BICUBIC),
                   np.float32)
    if rng.random() < 0.5:
        x = x[:, ::-1]
    if rng.random() < 0.2:
        x = x[..., rng.permutation(3)]
    mean = x.mean()
    return np.clip((x - mean) * rng.uniform(0.8, 1.2) + mean * rng.uniform(0.8, 1.2), 0, 255)


def _augmented(images: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """n random crops of the images, half of them blended with a crop of another (mixup, weight
    0.3-0.7), as the model's (n, 3, 224, 224) input."""
    out = np.empty((n, 3, 224, 224), np.float32)
    for i in range(n):
        x = _crop(images[rng.integers(len(images))], rng)
        if rng.random() < 0.5:
            lam = rng.uniform(0.3, 0.7)
            x = lam * x + (1 - lam) * _crop(images[rng.integers(len(images))], rng)
        out[i] = ((x - 127.0) / 128.0).transpose(2, 0, 1)
    return out


def _evaluate(model, inputs: list[np.ndarray], ref: np.ndarray) -> tuple[int, float, float]:
    out = np.concatenate([model.predict({"image": x})["logits"] for x in inputs])
    c = _cos_rows(out, ref)
    return int((out.argmax(1) == ref.argmax(1)).sum()), float(c.mean()), float(c.min())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=25.0, help="training time budget")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--temperature", type=float, default=0.003, help="DKM softness, relative to a table's spacing")
    ap.add_argument("--mode", choices=("pal4-g16", "pal4", "int4-b32"), default="pal4-g16")
    ap.add_argument("--start", choices=("data-free", "calibrated"), default="calibrated",
                    help="where training starts: the data-free compression, or GPTQ on the 32 pictures")
    ap.add_argument("--features", type=float, default=1.0,
                    help="weight of the blocks' output error (relative MSE) next to the logits' KL")
    args = ap.parse_args()

    import torch

    import pocketml as pm
    from pocketml.zoo import get

    warnings.simplefilter("ignore", pm.CompressionWarning)
    torch.manual_seed(0)
    spec = {"pal4-g16": pm.Palettize(4, granularity="per_grouped_channel", group_size=16),
            "pal4": pm.Palettize(4),
            "int4-b32": pm.Quantize("int4", granularity="per_block", block_size=32)}[args.mode]
    entry = get("efficientnet-lite0")
    teacher = entry.build().eval()
    example = tuple(entry.example_inputs())
    photos = [t.numpy() for (t,) in entry.samples()]
    inputs = photos + [np.ascontiguousarray(p[..., ::-1]) for p in photos]
    names = dict(input_names=list(entry.input_names), output_names=list(entry.output_names))
    float_pkg = pm.convert(teacher, example, **names)
    ref = np.concatenate([float_pkg.predict({"image": x})["logits"] for x in inputs])

    rows = []
    t0 = time.perf_counter()
    rows.append(("data-free", *_evaluate(pm.compress(float_pkg, spec, progress=False), inputs, ref), "-"))
    cal = [{"image": x} for x in _calibration_pictures(False)]
    g = dict(granularity=spec.granularity, group_size=spec.group_size) if isinstance(spec, pm.Palettize) else {}
    calibrated = {  # label: spec (the training starts from the last: no channel scales in training)
        "calibrated (GPTQ + channel scales, 32 pictures)": pm.Palettize(4, **g, per_channel_scale=True, gptq=True),
        "calibrated (GPTQ, 32 pictures)": pm.Palettize(4, **g, gptq=True),
    } if isinstance(spec, pm.Palettize) else {
        "calibrated (GPTQ, 32 pictures)": pm.Quantize("int4", granularity="per_block", block_size=32,
                                                      algorithm="gptq")}
    for label, c in calibrated.items():
        rows.append((label, *_evaluate(pm.compress(float_pkg, c, progress=False, calibration=cal), inputs, ref),
                     "-"))
    print(f"baselines in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    student = copy.deepcopy(teacher)
    t0 = time.perf_counter()
    begin = args.start == "calibrated"
    compressor = pm.training.prepare(student, c if begin else spec, example, temperature=args.temperature,
                                     calibration=cal if begin else None)
    prep = time.perf_counter() - t0
    pm.training.fold_batch_norms(teacher, example)  # the teacher's blocks as the student's
    mine, theirs = {}, {}
    for i, (a, b) in enumerate(zip(student._blocks, teacher._blocks)):
        a.register_forward_hook(lambda m, inp, out, i=i: mine.__setitem__(i, out))
        b.register_forward_hook(lambda m, inp, out, i=i: theirs.__setitem__(i, out))
    opt = torch.optim.Adam(student.parameters(), lr=args.lr)
    images, rng = raw_pictures(), np.random.default_rng(0)
    student.train()
    T, steps, losses = 2.0, 0, []
    budget = args.minutes * 60
    t0 = time.perf_counter()
    show = sys.stderr.isatty()
    while time.perf_counter() - t0 < budget:
        x = torch.from_numpy(_augmented(images, args.batch, rng))
        with torch.no_grad():
            target = torch.log_softmax(teacher(x) / T, -1)
        out = torch.log_softmax(student(x) / T, -1)
        loss = torch.nn.functional.kl_div(out, target, log_target=True, reduction="batchmean") * T * T
        if args.features:  # each block's output as the teacher's (the logits alone generalise less)
            loss = loss + args.features / len(theirs) * sum(
                ((mine[i] - t) ** 2).mean() / (t ** 2).mean().clamp_min(1e-12) for i, t in theirs.items())
        opt.zero_grad()
        loss.backward()
        opt.step()
        compressor.step()
        steps += 1
        losses.append(loss.item())
        if show and steps % 10 == 0:
            print(f"\rstep {steps}  loss {np.mean(losses[-10:]):.4f}  {time.perf_counter() - t0:.0f} s",
                  end="", file=sys.stderr)
    train_s = time.perf_counter() - t0
    if show:
        print(file=sys.stderr)
    model = compressor.export(example, **names)
    rows.append((f"training-time from {args.start} (DKM, {steps} steps of {args.batch})", *_evaluate(model, inputs, ref),
                 f"{(prep + train_s) / 60:.1f} min"))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"\nEfficientNet-Lite0, {args.mode}: 14 inputs (7 photos + mirrors), top-1 = float's, logit cosine")
    print(f"loss (KL, T=2, + {args.features} x blocks' relative MSE) first 10 steps {np.mean(losses[:10]):.4f}, "
          f"last 10 {np.mean(losses[-10:]):.4f}; "
          f"lr {args.lr}, DKM temperature {args.temperature}; peak RSS {rss:.0f} MiB")
    print(f"{'mode':50} {'top-1':>6} {'cos mean':>9} {'cos min':>8} {'time':>8}")
    for name, top1, cmean, cmin, t in rows:
        print(f"{name:50} {top1:>3}/14 {cmean:9.4f} {cmin:8.4f} {t:>8}")


if __name__ == "__main__":
    main()
