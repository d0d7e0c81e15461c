"""`Model`: a program plus metadata, ready to predict and to save. Needs no torch."""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from . import package
from .errors import ConfigError, InputError
from .ir.program import Program
from .ir.types import TensorType
from .runtime import Executor, State, check_inputs


class Model:
    def __init__(self, program: Program, metadata: Mapping | None = None, function: str | None = None,
                 compute_precision: str = "float32"):
        self.program = program
        self.metadata = dict(metadata or {})
        if function is not None and function not in program.functions:
            raise ConfigError(f"no function {function!r}; the package has {list(program.functions)}")
        self.function = program.functions[function] if function else program.main
        self.compute_precision = compute_precision
        self._executor = Executor(program, self.function, compute_precision)

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
        return State(self.program, self.function)

    def predict(self, inputs: Mapping[str, np.ndarray], state: State | None = None) -> dict[str, np.ndarray]:
        """Run the model: a dict of input name -> array in, a dict of output name -> array out.

        A stateful model needs `state` (from `make_state()`), which it reads and updates in place.
        """
        arrays = check_inputs(self.function, inputs)
        if self.function.states and state is None:
            raise InputError(f"this model is stateful ({', '.join(self.states)}): pass "
                             "state=model.make_state() and reuse it for the following calls")
        if state is not None and not self.function.states:
            raise InputError("this model has no states; call predict() without state=")
        live = state.arrays_for(self.function) if state is not None else None
        return dict(zip(self.output_names, self._executor.run(arrays, states=live)))

    def save(self, path: str | os.PathLike) -> None:
        package.write(path, self.program, self.metadata)

    def __repr__(self) -> str:
        ins = ", ".join(f"{k}: {t}" for k, t in self.inputs.items())
        outs = ", ".join(f"{k}: {t}" for k, t in self.outputs.items())
        return f"<pocketml.Model ({ins}) -> ({outs})>"


def load(path: str | os.PathLike, function: str | None = None, compute_precision: str = "float32",
         verify: bool = True) -> Model:
    """Load a package. Weights stay memory-mapped; `verify` checks their checksums."""
    program, metadata = package.read(path, verify_checksums=verify)
    return Model(program, metadata, function, compute_precision)
