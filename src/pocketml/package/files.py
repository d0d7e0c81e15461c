"""How packages meet the file system: open only regular files, notice a mapped file changing
under a loaded model, and write atomically without leaving the temp files of killed writers.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from ..errors import PackageError


def open_regular(path: Path):
    """`path` opened for binary reading, which must be a regular file: a FIFO or a device would
    block or never end, a directory is a mistake worth naming."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise PackageError(f"cannot open package {str(path)!r}: it is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise PackageError(f"cannot open package {str(path)!r}: not a regular file")
        # O_NONBLOCK: should a FIFO replace the file between stat and open, open must not block
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise PackageError(f"cannot open package {str(path)!r}: {e.strerror}") from None
    except ValueError as e:  # an embedded null byte
        raise PackageError(f"cannot open package {str(path)!r}: {e}") from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise PackageError(f"cannot open package {str(path)!r}: not a regular file")
    return f


class FileWatch:
    """Keeps a loaded package's file open to notice it being changed in place.

    Weights are memory-mapped: if the file shrinks, touching a weight kills the process (SIGBUS),
    and if it is rewritten, weights change silently. `check()` (one fstat) turns both into a
    PackageError. Replacing the file (as `save` does) is safe: the old file stays mapped.
    """

    def __init__(self, f, path: Path):
        self._file, self.path = f, path
        self._stamp = self._now()

    def _now(self) -> tuple[int, int]:
        st = os.fstat(self._file.fileno())
        return st.st_size, st.st_mtime_ns

    def check(self) -> None:
        if self._now() != self._stamp:
            raise PackageError(f"{self.path}: the package file changed on disk while loaded (a package "
                               "must be replaced, never modified in place); load it again")


def check_target(path: Path) -> None:
    """A PackageError naming what prevents writing a package at `path`."""
    folder = path.parent
    try:
        if not folder.exists():
            raise PackageError(f"cannot save package {str(path)!r}: folder {str(folder)!r} does not exist")
        if not folder.is_dir():
            raise PackageError(f"cannot save package {str(path)!r}: {str(folder)!r} is not a folder")
        if path.is_dir():
            raise PackageError(f"cannot save package {str(path)!r}: it is a directory")
    except (OSError, ValueError) as e:  # ValueError: an embedded null byte
        raise PackageError(f"cannot save package {str(path)!r}: {e}") from None


def temp_file(path: Path) -> tuple[int, str]:
    """A new temp file next to `path` named `.NAME.PID.RANDOM.tmp`, after removing those of the
    same target whose writer is dead (a killed save cannot clean up after itself)."""
    remove_stale_temps(path)
    return tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)


def remove_stale_temps(path: Path) -> None:
    if os.name != "posix":  # os.kill(pid, 0) is a liveness probe on POSIX only
        return
    prefix = f".{path.name}."
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for e in entries:
        if not (e.name.startswith(prefix) and e.name.endswith(".tmp")):
            continue
        pid, sep, _ = e.name[len(prefix):-len(".tmp")].partition(".")
        if sep and pid.isdigit() and not _alive(int(pid)):
            try:
                os.unlink(e.path)
            except OSError:
                pass  # another writer removed it first, or it is not ours to remove


def _alive(pid: int) -> bool:
    if pid <= 0 or pid == os.getpid():
        return True  # pid 0 would probe our process group; our own temp files are in use
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: alive, another user's
        return True
    return True
