"""`State`: the persistent buffers of one stateful model instance (one conversation).

Make one per independent sequence with `model.make_state()`; `predict(..., state=s)` reads and
updates it in place. Arrays are owned by the state, so two states never share memory.
"""
from __future__ import annotations

import mmap

import numpy as np

from ..errors import InputError, PackageError
from ..ir.program import Function, Program


class State:
    def __init__(self, program: Program, function: Function):
        self._function = function.name
        self._types = {s.name: s.type for s in function.states}
        self._init = {s.name: s.init for s in function.states}
        self._program = program
        self._fits = None  # the last function arrays_for accepted
        self._arrays = {}
        for name, t in self._types.items():
            try:
                self._arrays[name] = _zeros(t.shape, t.dtype.np)
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
        """Back to the initial values (zeros unless the model declared others). Zeroing gives the
        pages back to the OS rather than writing them: a KV cache sized for the model's whole
        context takes memory only for the tokens written since."""
        for name, a in self._arrays.items():
            init = self._init[name]
            if init is not None:
                np.copyto(a, self._program.weights[init])
            elif not _drop_pages(a):
                a.fill(0)

    def arrays_for(self, function: Function) -> dict[str, np.ndarray]:
        """The live arrays, for the executor of `function` (which must declare the same states)."""
        if function is self._fits:  # checked before (a decode loop asks once per token)
            return self._arrays
        if function.name != self._function or {s.name: s.type for s in function.states} != self._types:
            raise InputError(f"this state was made for function {self._function!r}; make one for "
                             f"{function.name!r} with its model's make_state()")
        self._fits = function
        return self._arrays

    def _check_name(self, name: str) -> str:
        if name not in self._types:
            raise InputError(f"no state {name!r}; this model's states are {self.names}")
        return name

    def __repr__(self) -> str:
        return f"<pocketml.State {', '.join(f'{k}: {t}' for k, t in self._types.items())}>"


# Arrays at least this big are anonymous private mappings: their pages stay unbacked until
# written, and zeroing them drops the pages (np.zeros' calloc gives neither once the allocator
# reuses freed heap memory).
_MAPPED_MIN = 1 << 16


def _zeros(shape, dtype) -> np.ndarray:
    """A zeroed array; a big one backed by its own anonymous mapping (see `_drop_pages`)."""
    n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    flags = getattr(mmap, "MAP_PRIVATE", None), getattr(mmap, "MAP_ANONYMOUS", None)
    if n < _MAPPED_MIN or None in flags or not hasattr(mmap, "MADV_DONTNEED"):
        return np.zeros(shape, dtype)
    buf = mmap.mmap(-1, n, flags=flags[0] | flags[1])
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def _drop_pages(a: np.ndarray) -> bool:
    """Zero `a` by dropping its pages, if it is a whole mapping made by `_zeros`."""
    buf = a.base
    while isinstance(buf, np.ndarray):
        buf = buf.base
    if isinstance(buf, memoryview):
        buf = buf.obj
    if not isinstance(buf, mmap.mmap) or len(buf) != a.nbytes:
        return False
    buf.madvise(mmap.MADV_DONTNEED)  # private anonymous pages read back as zeros
    return True
