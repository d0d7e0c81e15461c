"""Calibration: the input activations of each compressible weight, seen on the user's data by
running the package itself (pocketml's runtime; no PyTorch).

For a weight W (out, in) that a layer applies as y = W x, the output error of a compressed W'
is (W - W') X over the calibration inputs X, so the layer's loss is the trace of
(W - W') H (W - W')^T with H = X^T X: its diagonal weighs each input column (sensitivity-
weighted k-means, the searched scales), the full matrix is GPTQ's and SparseGPT's. Convolutions
see their unfolded input patches (per group), a matmul `x @ W` its x. H is accumulated in float64
over every row of every sample.

Data: an iterable of input dicts, or of strings for a package that carries a tokenizer (each
string's tokens, in windows of `MAX_TOKENS`, as `input_ids`; a stateful language model gets a
fresh state and its causal mask per window); a path to a .txt file (its text, the same way) or
an .npz file (arrays keyed by input name, one sample per index of their first axis: x of
shape (S, *input shape) holds S samples). For a package of several functions (`per_function`):
a mapping from function names to such data, each function calibrated on its own; or, for a
speech-recognition package, WAV paths (both functions' inputs recorded while it transcribes
them, `Transcriber.calibration_samples`).
"""
from __future__ import annotations

import copy
import os
import sys
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import ConfigError, InputError
from ..ir.program import Program

MAX_TOKENS = 512  # tokens per window of text
MAX_FULL = 8192  # inputs per row above which only the diagonal of H is kept
MAX_SAMPLE = 1 << 20  # activation values kept per weight's input (activation quantization)


@dataclass
class Stats:
    """Second moments of one weight's input rows: `gram` (groups, K, K) = sum of x x^T (None
    when only the diagonal was asked for, or K > MAX_FULL), `diag` (groups, K) = sum of x^2,
    `rows` = how many rows were summed; `amax` (K,) the largest |x| of each input column, `sample`
    up to MAX_SAMPLE values of whole rows (rows, K) (an activation quantization's scale)."""
    diag: np.ndarray
    gram: np.ndarray | None
    rows: int = 0
    amax: np.ndarray | None = None
    sample: np.ndarray | None = None

    def activation_grid(self) -> tuple[float, int | None]:
        """(step, zero point) of fake_quantize for these inputs: of the clipping points max|x| * t,
        t in [0.5, 1], the one whose quantized sample has the least squared error (outliers
        clipped where that costs less than a coarser grid for the rest); uint8 from 0 where no
        input is negative (after a ReLU: twice the resolution), else int8 around 0."""
        amax = 0.0 if self.amax is None else float(self.amax.max(initial=0.0))
        if not np.isfinite(amax) or amax <= 0 or self.sample is None:
            return 1.0, None
        x = self.sample.astype(np.float64)
        levels, lo = (255, 0) if x.min(initial=0.0) >= 0 else (127, -127)
        best, scale = np.inf, amax / levels
        for t in np.linspace(0.5, 1.0, 51):
            s = amax * t / levels
            err = float(np.square(np.clip(np.round(x / s), lo, levels) * s - x).sum())
            if err < best:
                best, scale = err, s
        return float(np.float32(scale)), (0 if lo == 0 else None)

    def importance(self, shape, op_type: str) -> np.ndarray:
        """The diagonal as per-element weights of a weight of `shape` (broadcastable): each
        element weighs as much as the input it multiplies."""
        d = self.diag / max(self.rows, 1)
        if op_type == "linear":
            return d[0][None, :]
        if op_type == "matmul":
            return d[0][:, None]
        # conv (out, in/groups, *kernel): group g's rows use d[g], laid out as (in/g, *kernel)
        groups = d.shape[0]
        per = d.reshape(groups, 1, *shape[1:])
        return np.repeat(per, shape[0] // groups, axis=0).reshape(shape)


@dataclass(frozen=True)
class Target:
    """A weight whose input is calibrated: the value feeding it and how it is applied."""
    op_type: str  # linear | matmul | conv
    value: str  # the activation's value name
    attrs: dict
    kernel: tuple  # conv: the weight's spatial shape


@dataclass
class Calibrated:
    """One weight's calibration: the statistics of the inputs it multiplies, and how."""
    stats: Stats
    target: Target

    def importance(self, shape) -> np.ndarray:
        return self.stats.importance(shape, self.target.op_type)


@dataclass
class Weighted:
    """A weight's per-element sensitivity given by the caller (`pm.compress(..., sensitivity=)`:
    the Fisher diagonal of `pocketml.training.fisher`, say), standing in for its inputs' energy
    as the weights of k-means and of the searched scales; `calibrated`: its inputs' statistics
    where calibration data reached it too (GPTQ's and SparseGPT's H)."""
    sensitivity: np.ndarray
    calibrated: Calibrated | None = None

    @property
    def stats(self) -> Stats | None:
        return None if self.calibrated is None else self.calibrated.stats

    def importance(self, shape) -> np.ndarray:
        return self.sensitivity


def targets(program: Program, function: str, candidates: dict) -> dict[str, Target]:
    """Weight key -> Target for the weights of `candidates` (apply._candidates of the function)
    that multiply an activation: linear, matmul (x @ W) and conv; embeddings and transposed
    convolutions have none here and stay data-free."""
    fn = program.functions[function]
    users: dict[str, list] = {}
    for op in fn.ops:
        for i, name in enumerate(op.inputs):
            users.setdefault(name, []).append((op, i))
    out = {}
    for value_name, (const_op, op_type, _, _) in candidates.items():
        key = const_op.attrs["weight"]
        for op, pos in users.get(value_name, []):
            if op.type == "linear" and pos == 1 and op.inputs[0] is not None:
                out[key] = Target("linear", op.inputs[0], {}, ())
            elif op.type == "matmul" and pos == 1 and op.inputs[0] is not None and const_op.output.type.rank == 2:
                out[key] = Target("matmul", op.inputs[0], {}, ())
            elif op.type == "conv" and pos == 1:
                from ..ir import registry
                attrs = registry.get("conv").with_defaults(op.attrs)
                out[key] = Target("conv", op.inputs[0], attrs, tuple(const_op.output.type.shape[2:]))
            else:
                continue
            break  # a weight shared by several ops: its first user's inputs
    return out


def _rows(x: np.ndarray, t: Target) -> np.ndarray:
    """x as (groups, rows, K): the rows the weight multiplies."""
    x = np.asarray(x, np.float32)
    if t.op_type in ("linear", "matmul"):
        return x.reshape(1, -1, x.shape[-1])
    from ..ir.ops.conv import _pad, spatial_attrs, windows
    n = len(t.kernel)
    strides, pads, dilations = spatial_attrs(t.attrs, n)
    g = t.attrs["groups"]
    xp = _pad(x, pads)
    win = windows(xp, t.kernel, strides, dilations)  # (N, C, *out, *kernel)
    N, C = win.shape[:2]
    win = win.reshape(N, g, C // g, *win.shape[2:])
    spatial = tuple(range(3, 3 + n))
    kernel = tuple(range(3 + n, 3 + 2 * n))
    # (g, N, *out, C/g, *kernel) -> (g, rows, K)
    patches = win.transpose(1, 0, *spatial, 2, *kernel)
    K = (C // g) * int(np.prod(t.kernel))
    return np.ascontiguousarray(patches).reshape(g, -1, K)


def _subsample(x: np.ndarray) -> np.ndarray:
    """At most MAX_SAMPLE values' worth of x's rows (at least one), drawn evenly (seeded: the same
    data gives the same)."""
    keep = max(1, MAX_SAMPLE // max(x.shape[1], 1))
    if len(x) <= keep:
        return x
    return x[np.sort(np.random.default_rng(len(x)).choice(len(x), keep, replace=False))]


class _Accumulator:
    def __init__(self, full: bool, sample: bool):
        self.full, self.sample = full, sample
        self.stats: Stats | None = None

    def add(self, rows: np.ndarray) -> None:
        g, n, K = rows.shape
        if self.stats is None:
            gram = np.zeros((g, K, K)) if self.full and K <= MAX_FULL else None
            self.stats = Stats(np.zeros((g, K)), gram)
        s = self.stats
        if self.sample and rows.size:
            amax = np.abs(rows).max(axis=(0, 1))
            s.amax = amax if s.amax is None else np.maximum(s.amax, amax)
            flat = rows.reshape(-1, K)
            some = max(1, MAX_SAMPLE // (4 * K))
            if len(flat) > some:
                flat = flat[np.sort(np.random.default_rng(s.rows).choice(len(flat), some, replace=False))]
            s.sample = _subsample(flat if s.sample is None else np.concatenate([s.sample, flat]))
        for start in range(0, n, 1024):  # float32 products of at most 1024 rows, summed in float64
            chunk = rows[:, start:start + 1024]
            s.diag += np.einsum("gnk,gnk->gk", chunk, chunk, dtype=np.float64)
            if s.gram is not None:
                s.gram += np.matmul(chunk.transpose(0, 2, 1), chunk)
        s.rows += n


def per_function(model, data) -> dict:
    """Function name -> its calibration data: a mapping from the package's function names (to
    data) as given; WAV paths for a speech-recognition package, recorded per function while it
    transcribes them; anything else for the model's own function."""
    functions = model.program.functions
    if isinstance(data, Mapping) and data and not any(isinstance(v, np.ndarray) for v in data.values()):
        named = [k for k in data if k in functions]
        if named:
            unknown = [k for k in data if k not in functions]
            if unknown:
                raise ConfigError(f"calibration data for functions {unknown}: the package has {list(functions)}")
            return dict(data)
    wavs = _wav_paths(data)
    if wavs is not None:
        from ..transcription import Transcriber
        if not {"encoder", "decoder"} <= set(functions):
            raise InputError(f"calibration data of WAV files is for a speech-recognition package (functions "
                             f"encoder and decoder); this one has {list(functions)}: give input dicts")
        return Transcriber(model).calibration_samples(wavs)
    return {model.function.name: data}


def _wav_paths(data) -> list | None:
    items = [data] if isinstance(data, (str, os.PathLike)) else data if isinstance(data, (list, tuple)) else ()
    if items and all(isinstance(p, (str, os.PathLike)) and os.fspath(p).lower().endswith(".wav") for p in items):
        return list(items)
    return None


def merge(into: dict, more: dict) -> None:
    """`more`'s statistics added to `into`'s: a weight that several functions multiply (by the
    same kind of op) is calibrated on the rows of all of them."""
    for key, c in more.items():
        have = into.get(key)
        if have is None:
            into[key] = c
        elif have.target.op_type == c.target.op_type and have.stats.diag.shape == c.stats.diag.shape:
            a, b = have.stats, c.stats
            gram = None if a.gram is None or b.gram is None else a.gram + b.gram
            amax = a.amax if b.amax is None else b.amax if a.amax is None else np.maximum(a.amax, b.amax)
            rows = [v for v in (a.sample, b.sample) if v is not None]
            into[key] = Calibrated(Stats(a.diag + b.diag, gram, a.rows + b.rows, amax,
                                         _subsample(np.concatenate(rows)) if rows else None), have.target)


def smoothed(c: Calibrated, s: np.ndarray) -> Calibrated:
    """c for the inputs x / s (column by column): a linear layer's input after smoothing (its
    weight's columns multiplied by s)."""
    st = c.stats
    gram = None if st.gram is None else st.gram / np.outer(s, s)[None]
    return Calibrated(Stats(st.diag / (s * s)[None], gram, st.rows, None if st.amax is None else st.amax / s,
                            None if st.sample is None else (st.sample / s).astype(np.float32)), c.target)


def samples(model, data):
    """The calibration data as input dicts for `model` (see the module docstring)."""
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if not path.endswith((".npz", ".txt")):
            raise ConfigError(f"calibration data {path!r}: give a .txt (text) or .npz (arrays) file")
        try:
            if path.endswith(".txt"):
                with open(path, encoding="utf-8") as f:
                    data = [f.read()]
            else:
                with np.load(path, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
        except OSError as e:
            raise InputError(f"cannot read calibration data {path!r}: {e.strerror or e}") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise InputError(f"calibration data {path!r} is not a valid {path[-3:]} file: {e}") from None
        if path.endswith(".npz"):
            n = {len(a) for a in arrays.values()}
            if not arrays or 0 in n:
                raise InputError(f"calibration data {path!r} holds no samples")
            if len(n) != 1:
                raise InputError(f"{path}: the arrays' first axes (samples) differ: "
                                 f"{ {k: len(a) for k, a in arrays.items()} }")
            data = [{k: a[i] for k, a in arrays.items()} for i in range(n.pop())]
    if isinstance(data, (dict, str)):
        data = [data]
    tokenizer = None
    for item in data:
        if isinstance(item, str):
            if tokenizer is None:
                from ..generation import tokenizer_of
                tokenizer = tokenizer_of(model)
            ids = tokenizer.encode(item)
            for start in range(0, len(ids), MAX_TOKENS):
                window = ids[start:start + MAX_TOKENS]
                if len(window) >= 2:
                    yield _text_inputs(model, window)
        elif isinstance(item, dict):
            yield item
        else:
            raise InputError(f"calibration data holds {type(item).__name__}; give input dicts "
                             "(name -> array) or strings of text")


def _text_inputs(model, ids) -> dict:
    if "input_ids" not in model.input_names:
        raise InputError(f"text calibration needs a model with an 'input_ids' input; this one has "
                         f"{model.input_names}: give input dicts")
    inputs = {"input_ids": np.asarray([ids], np.int64)}
    if "attention_mask" in model.input_names:  # an encoder's: every token real
        inputs["attention_mask"] = np.ones((1, len(ids)), model.inputs["attention_mask"].dtype.np)
    if "causal_mask" in model.input_names:
        from ..generation import causal_mask
        inputs["causal_mask"] = causal_mask(0, len(ids))
    return inputs


def _signature(t: Target) -> tuple:
    return t.value, t.op_type, repr(sorted(t.attrs.items())), t.kernel


def collect(model, data, wanted: dict[str, Target], full: bool, progress: bool | None = None,
            sample: bool = False) -> dict[str, Calibrated]:
    """Stats of each weight key in `wanted` over the data; `full`: keep the whole H (GPTQ);
    `sample`: also each input column's largest |x| and a sample of rows (activation quantization)."""
    from ..model import Model

    fn = model.function
    values = sorted({t.value for t in wanted.values()})
    program = Program(copy.deepcopy(model.program.functions), model.program.weights)
    tapped = program.functions[fn.name]
    tapped.outputs = list(tapped.outputs) + [v for v in values if v not in tapped.outputs]
    runner = Model(program, model.metadata, fn.name)
    accs: dict[tuple, tuple[_Accumulator, Target]] = {}  # one per activation and way of reading it
    for t in wanted.values():
        accs.setdefault(_signature(t), (_Accumulator(full, sample), t))
    items = list(samples(model, data))
    if not items:
        raise InputError("the calibration data holds no samples")
    show = sys.stderr.isatty() if progress is None else progress
    iterator = items
    if show:
        from rich.progress import track
        what = f"calibrating {fn.name}" if len(model.program.functions) > 1 else "calibrating"
        iterator = track(items, description=what, transient=True)
    for inputs in iterator:
        try:
            if runner.states:
                out = runner.predict(inputs, state=runner.make_state())
            else:
                out = runner.predict(inputs)
        except InputError as e:
            raise InputError(f"calibration sample: {e}") from None
        for acc, t in accs.values():
            acc.add(_rows(out[t.value], t))
    result = {key: Calibrated(accs[_signature(t)][0].stats, t) for key, t in wanted.items()}
    return result
