"""`State`: the persistent buffers of one stateful model instance (one conversation).

Make one per independent sequence with `model.make_state()`; `predict(..., state=s)` reads and
updates it in place. Arrays are owned by the state, so two states never share memory.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError, PackageError
from ..ir.program import Function, Program


class State:
    def __init__(self, program: Program, function: Function):
        self._function = function.name
        self._types = {s.name: s.type for s in function.states}
        self._init = {s.name: s.init for s in function.states}
        self._program = program
        self._arrays = {}
        for name, t in self._types.items():
            try:
                self._arrays[name] = np.zeros(t.shape, t.dtype.np)  # zeroed pages: no need to fill
            except (MemoryError, ValueError) as e:  # ValueError: more than NumPy can index
                self._arrays.clear()
                raise PackageError(f"cannot allocate state {name!r} ({t}, {t.numel() * t.dtype.itemsize} "
                                   f"bytes) of function {function.name!r}: {e}") from None
            if self._init[name] is not None:
                np.copyto(self._arrays[name], program.weights[self._init[name]])

    @property
    def names(self) -> list[str]:
        return list(self._types)

    def read(self, name: str) -> np.ndarray:
        """A copy of the state's current value."""
        return self._arrays[self._check_name(name)].copy()

    def write(self, name: str, value) -> None:
        """Replace the state's value (same shape and dtype as declared)."""
        t = self._types[self._check_name(name)]
        a = np.asarray(value)
        if a.dtype != t.dtype.np or a.shape != tuple(t.shape):
            raise InputError(f"state {name!r} is {t}; got {a.dtype}{list(a.shape)}"
                             + (f" (convert with .astype(np.{t.dtype.value}))" if a.shape == tuple(t.shape)
                                else ""))
        np.copyto(self._arrays[name], a)

    def reset(self) -> None:
        """Back to the initial values (zeros unless the model declared others)."""
        for name, a in self._arrays.items():
            init = self._init[name]
            if init is None:
                a.fill(0)
            else:
                np.copyto(a, self._program.weights[init])

    def arrays_for(self, function: Function) -> dict[str, np.ndarray]:
        """The live arrays, for the executor of `function` (which must declare the same states)."""
        if function.name != self._function or {s.name: s.type for s in function.states} != self._types:
            raise InputError(f"this state was made for function {self._function!r}; make one for "
                             f"{function.name!r} with its model's make_state()")
        return self._arrays

    def _check_name(self, name: str) -> str:
        if name not in self._types:
            raise InputError(f"no state {name!r}; this model's states are {self.names}")
        return name

    def __repr__(self) -> str:
        return f"<pocketml.State {', '.join(f'{k}: {t}' for k, t in self._types.items())}>"
