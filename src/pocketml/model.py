"""`Model`: a program plus metadata, ready to predict and to save. Needs no torch."""
from __future__ import annotations

import os
from functools import cached_property
from typing import Mapping

import numpy as np

from . import package
from .errors import ConfigError, InputError
from .ir.program import Program
from .ir.types import TensorType
from .runtime import PRECISIONS, Executor, PlanSummary, State, check_inputs, native


class Model:
    def __init__(self, program: Program, metadata: Mapping | None = None, function: str | None = None,
                 compute_precision: str = "float32", backend: str | None = None,
                 threads: int | None = None, exact: bool = False):
        """`backend`: "native" (linear/embedding over packed weights run as native calls that read
        the packed data), "reference" (NumPy references only), or None: native where the
        extension `pocketml._native` is built, else reference. `threads` for native calls: None
        is $POCKETML_THREADS or all cores. `exact`: compressed (int8/int4/4-bit LUT) linear layers
        compute in fp32 like the references (for validation); by default they may quantize their
        activations to int8 blocks of 32 and use integer dot products, as llama.cpp does (about
        0.6 % relative error per output, far below the compression's own). fp16 emulation
        (`compute_precision="float16"`) runs the references whatever the backend."""
        self.program = program
        self.metadata = dict(metadata or {})
        if function is not None and function not in program.functions:
            raise ConfigError(f"no function {function!r}; the package has {list(program.functions)}")
        self.function = program.functions[function] if function else program.main
        if compute_precision not in PRECISIONS:
            raise ConfigError(f"compute_precision must be one of {PRECISIONS}, got {compute_precision!r}")
        self.compute_precision = compute_precision
        self.threads = threads  # as given (None: $POCKETML_THREADS or all cores)
        native.resolve_threads(threads)  # checked now, used when the plan is built
        self._backend = native.resolve_backend(backend)
        self.exact = exact
        self._watch = None  # set by `load`: notices the mapped package file changing on disk

    def variant(self, function: str | None = None, compute_precision: str | None = None) -> "Model":
        """This package as another of its functions or in another precision: same weights (still
        mapped and watched), backend, threads and exactness."""
        m = Model(self.program, self.metadata, function or self.function.name,
                  compute_precision or self.compute_precision, self.backend, self.threads, self.exact)
        m._watch = self._watch
        return m

    @property
    def functions(self) -> dict[str, "Model"]:
        """Every function of the package as a Model (`variant`): one weight table, one mapping."""
        return {name: self if name == self.function.name else self.variant(name) for name in self.program.functions}

    @property
    def function_metadata(self) -> dict:
        """The metadata this function reads (its tokenizer, say): the package's, with a merged
        package's own entries for the function (metadata["functions"][name], `merge`) over it."""
        own = self.metadata.get("functions")
        own = own.get(self.function.name) if isinstance(own, dict) else None
        base = {k: v for k, v in self.metadata.items() if k != "functions"}
        return {**base, **own} if isinstance(own, dict) else base

    @cached_property
    def _executor(self) -> Executor:
        """The plan and its runner, built on first use (a model only inspected or saved, or the
        base of a variant, never pays for it)."""
        return Executor(self.program, self.function, self.compute_precision, self._backend, self.threads,
                        self.exact)

    @property
    def backend(self) -> str:
        """The backend in use: "native" or "reference"."""
        return self._backend

    def plan_summary(self) -> PlanSummary:
        """Each step of the execution plan with the kernel that runs it ("numpy" for a reference,
        "native:..." for a fused native call) and its output shape, plus counts per kernel."""
        return self._executor.plan_summary()

    @property
    def input_names(self) -> list[str]:
        return self.function.input_names

    @property
    def output_names(self) -> list[str]:
        return list(self.function.outputs)

    @property
    def inputs(self) -> dict[str, TensorType]:
        return {v.name: v.type for v in self.function.inputs}

    @property
    def outputs(self) -> dict[str, TensorType]:
        return dict(zip(self.function.outputs, self.function.output_types()))

    @property
    def states(self) -> dict[str, TensorType]:
        return {s.name: s.type for s in self.function.states}

    def make_state(self) -> State:
        """Fresh state (initial values) for a stateful model; one per independent sequence."""
        if not self.function.states:
            raise ConfigError("this model has no states; call predict() without state=")
        self._check_file()  # initial values may be weights
        return State(self.program, self.function)

    def predict(self, inputs: Mapping[str, np.ndarray], state: State | None = None) -> dict[str, np.ndarray]:
        """Run the model: a dict of input name -> array in, a dict of output name -> array out.

        A stateful model needs `state` (from `make_state()`), which it reads and updates in place.
        """
        self._check_file()
        arrays = check_inputs(self.function, inputs)
        if self.function.states and state is None:
            raise InputError(f"this model is stateful ({', '.join(self.states)}): pass "
                             "state=model.make_state() and reuse it for the following calls")
        if state is not None and not self.function.states:
            raise InputError("this model has no states; call predict() without state=")
        live = state.arrays_for(self.function) if state is not None else None
        return dict(zip(self.output_names, self._executor.run(arrays, states=live)))

    def _check_file(self) -> None:
        """PackageError if the mapped package file changed in place: touching the weights of a
        truncated file would kill the process (SIGBUS). Call before running the executor."""
        if self._watch is not None:
            self._watch.check()

    def save(self, path: str | os.PathLike) -> None:
        """Write the package atomically (PackageError naming the path if it cannot be written).
        Saving over the file this model was loaded from is safe: the old file stays mapped."""
        package.write(path, self.program, self.metadata)

    def __repr__(self) -> str:
        ins = ", ".join(f"{k}: {t}" for k, t in self.inputs.items())
        outs = ", ".join(f"{k}: {t}" for k, t in self.outputs.items())
        return f"<pocketml.Model ({ins}) -> ({outs})>"


def load(path: str | os.PathLike, function: str | None = None, compute_precision: str = "float32",
         verify: bool = True, mmap: bool = True, backend: str | None = None,
         threads: int | None = None, exact: bool = False) -> Model:
    """Load a package; `verify` checks the weights' checksums. `backend`, `threads`, `exact`: see `Model`.

    Weights stay memory-mapped: loading is instant and several processes share one copy. The file
    must not be modified in place while loaded (replacing it, as `save` does, is safe); `predict`
    raises PackageError if it was. `mmap=False` reads the weights into memory instead, for a file
    that may change (or a file system that cannot map).
    """
    from .package.format import read_watched

    program, metadata, watch = read_watched(path, verify_checksums=verify, mmap=mmap)
    model = Model(program, metadata, function, compute_precision, backend, threads, exact)
    model._watch = watch
    return model
