"""Multifunction packages: several models as the functions of one package over one weight table.

`merge({"chat": a, "code": b})` keeps each model's inputs, outputs, states and metadata, and stores
every distinct weight array once, compressed ones included (identical packed data is one array):
two fine-tunes that differ in a few layers cost the base plus those layers. A function loads on
its own (`pm.load(path, function="code")`) or beside the others (`model.functions["code"]`),
over the one memory map. Core ML Tools' multifunction models do the same for uncompressed
models; its compression refuses them, pocketml's compresses a shared weight once.
"""
from __future__ import annotations

import copy
import os
from typing import Mapping

from .errors import ConfigError
from .ir.program import Program
from .model import Model, load


def merge(models: Mapping[str, Model | str | os.PathLike], default: str | None = None) -> Model:
    """One Model whose functions are `models`' (a Model or a package path each), named by their
    keys (a model of several functions gives `key.function` for each), the default `default` (or
    the first). metadata: the default function's model's, with every function's entries that
    differ from it under metadata["functions"][name] (read through `Model.function_metadata`)."""
    if not isinstance(models, Mapping) or not models:
        raise ConfigError("merge takes a mapping of function names to models or package paths, e.g. "
                          "pm.merge({'chat': 'chat.pocket', 'code': 'code.pocket'})")
    parts: dict[str, tuple[Program, dict]] = {}  # function name -> a one-function program, metadata
    for key, m in models.items():
        if not isinstance(key, str) or not key or not key.isprintable():
            raise ConfigError(f"function names must be non-empty printable strings, got {key!r}")
        if not isinstance(m, Model):
            m = load(m)
        meta = {k: v for k, v in m.metadata.items() if k != "functions"}
        own = m.metadata.get("functions") if isinstance(m.metadata.get("functions"), dict) else {}
        for fname, fn in m.program.functions.items():
            name = key if len(m.program.functions) == 1 else f"{key}.{fname}"
            if name in parts:
                raise ConfigError(f"two functions named {name!r}: give the models distinct names")
            fmeta = {**meta, **own.get(fname, {})} if isinstance(own.get(fname, {}), dict) else meta
            parts[name] = (Program({fname: fn}, m.program.weights), fmeta)
    if default is None:
        default = next(iter(parts))
    if default not in parts:
        raise ConfigError(f"default {default!r} is none of the functions {list(parts)}")
    if "main" in parts and default != "main":  # a package's reader takes 'main' as the default
        raise ConfigError(f"a function named 'main' must be the default (default={default!r}): rename it")
    program = Program.merge({name: p for name, (p, _) in parts.items()})
    metadata = copy.deepcopy(parts[default][1])
    # each function's own entries: those that differ from the top (a tokenizer all share is stored once)
    metadata["functions"] = {name: {k: copy.deepcopy(v) for k, v in meta.items() if k not in metadata or metadata[k] != v}
                             for name, (_, meta) in parts.items()}
    # the default function first: a reader without function= gets it (Program.main: the first)
    program.functions = {default: program.functions[default],
                         **{n: f for n, f in program.functions.items() if n != default}}
    return Model(program, metadata, default)
