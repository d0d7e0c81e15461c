"""Arrays in and out of the CLI: .npy/.npz inputs read strictly, .npz outputs written.

Every way a file can be unreadable (missing, a folder, text, pickled objects, a truncated or
corrupt zip, whose members NumPy reads only when accessed) is an InputError naming the file,
so the CLI prints `error: ...` rather than a traceback or NumPy's advice about allow_pickle.
"""
from __future__ import annotations

import zipfile
import zlib

import numpy as np

from ..errors import InputError

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members; an empty zip
# what reading a damaged .npz member can raise: the zip layer, zlib, NumPy's header parser
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, KeyError)
_OBJECTS = ("holds Python objects (a pickled array); pocketml reads only plain numeric arrays "
            "saved with np.save/np.savez")


def _kind(path: str) -> str:
    """'npy' or 'npz', from the file's first bytes (its name may say anything)."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
    except IsADirectoryError:
        raise InputError(f"{path!r} is a folder, not a .npy/.npz file") from None
    except OSError as e:
        raise InputError(f"cannot read {path!r}: {e.strerror or e}") from None
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_ZIP_MAGICS):
        return "npz"
    raise InputError(f"{path!r} is not a .npy or .npz file (it lacks their signature); save "
                     f"arrays with np.save(path, array) or np.savez(path, name=array)")


def _array(read, where: str) -> np.ndarray:
    """`read()` (np.load, or an .npz member access), with its failures as InputErrors."""
    try:
        return read()
    except ValueError as e:
        if "allow_pickle" in str(e):  # NumPy's refusal of an object array (the magic was checked)
            raise InputError(f"{where} {_OBJECTS}") from None
        raise InputError(f"{where} is damaged: {e}") from None
    except _READ_ERRORS as e:
        raise InputError(f"{where} is damaged or truncated ({type(e).__name__}: {e})") from None


def read_npy(path: str) -> np.ndarray:
    """The array of a .npy file."""
    if _kind(path) != "npy":
        raise InputError(f"{path!r} is an .npz; --input takes one .npy file per input, --inputs an .npz")
    return _array(lambda: np.load(path, allow_pickle=False), repr(path))


def read_npz(path: str, input_names: list[str]) -> dict:
    """Arrays of an .npz keyed by the model's input names (or positional arr_0, arr_1, ...)."""
    if _kind(path) != "npz":
        raise InputError(f"{path!r} is a .npy file; --inputs takes an .npz (np.savez(path, name=array))")
    data = _array(lambda: np.load(path, allow_pickle=False), repr(path))
    with data:
        keys = list(data.files)
        if all(n in keys for n in input_names):
            pairs = [(n, n) for n in input_names]
        elif keys == [f"arr_{i}" for i in range(len(input_names))]:
            pairs = list(zip(input_names, keys))
        else:
            missing = [n for n in input_names if n not in keys]
            raise InputError(f"{path!r} lacks input(s) {missing}; it holds {keys}, the model's inputs "
                             f"are {input_names}")
        return {n: _array(lambda k=k: data[k], f"{path!r} (array {k!r})") for n, k in pairs}


def read_arrays(path: str, flag: str) -> dict:
    """Every array of an .npz, by its key."""
    if _kind(path) != "npz":
        raise InputError(f"{flag} takes an .npz (np.savez(path, **arrays)), got {path!r}")
    data = _array(lambda: np.load(path, allow_pickle=False), repr(path))
    with data:
        return {k: _array(lambda k=k: data[k], f"{path!r} (array {k!r})") for k in data.files}


def read_flags(specs: list[str], input_names: list[str]) -> dict:
    """Inputs from repeated --input NAME=FILE.npy (NAME may be left out for one-input models)."""
    inputs = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        if not sep:
            if len(input_names) != 1 or len(specs) != 1:
                raise InputError(f"--input {spec!r}: write NAME=FILE.npy (the model's inputs are "
                                 f"{input_names})")
            name, file = input_names[0], spec
        inputs[name] = read_npy(file)
    return inputs


def save_npz(path: str, arrays: dict) -> None:
    """np.savez, without its clash between an array named `file` and its own argument."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, a in arrays.items():
            with z.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(a), allow_pickle=False)
