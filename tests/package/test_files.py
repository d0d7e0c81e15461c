"""Packages and the file system: odd paths, files changed while mapped, stale temp files."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pocketml as pm
from pocketml import package
from pocketml.package.files import remove_stale_temps

from test_format import tiny_program

X = np.ones((3, 4), np.float32)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "m.pocket"
    package.write(path, tiny_program(), {})
    return path


def test_a_null_byte_in_the_path(saved):
    with pytest.raises(pm.PackageError, match="cannot open"):
        pm.load(str(saved) + "\0")


def test_a_directory(tmp_path):
    with pytest.raises(pm.PackageError, match="is a directory"):
        pm.load(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "m.pocket"
    os.mkfifo(fifo)
    with pytest.raises(pm.PackageError, match="not a regular file"):
        pm.load(fifo)  # would block forever in open() if it were opened like a file


def test_saving_into_a_missing_folder(tmp_path):
    target = tmp_path / "nope" / "m.pocket"
    with pytest.raises(pm.PackageError, match=r"folder .*nope.* does not exist"):
        pm.Model(tiny_program()).save(target)


def test_saving_onto_a_directory(tmp_path):
    (tmp_path / "m.pocket").mkdir()
    with pytest.raises(pm.PackageError, match="m.pocket.*is a directory"):
        pm.Model(tiny_program()).save(tmp_path / "m.pocket")
    assert [p.name for p in tmp_path.iterdir()] == ["m.pocket"]  # no temp file left behind


def test_an_os_error_while_saving_names_the_target(tmp_path):
    """Any OSError (here a name too long for the file system; for users also permissions or a
    full disk) is a PackageError naming the target, not the hidden temp file."""
    target = tmp_path / ("m" * 250 + ".pocket")
    with pytest.raises(pm.PackageError, match=r"cannot save package .*mmmm\.pocket.*too long") as e:
        pm.Model(tiny_program()).save(target)
    assert ".tmp" not in str(e.value) and list(tmp_path.iterdir()) == []


def test_predict_after_the_file_is_truncated_in_place(saved, tmp_path):
    """A SIGBUS would kill the interpreter: run in a child process."""
    script = textwrap.dedent(f"""
        import numpy as np, pocketml as pm
        path = {str(saved)!r}
        m = pm.load(path)
        copy = pm.load(path, mmap=False)
        x = np.ones((3, 4), np.float32)
        want = m.predict({{"x": x}})["y"]
        with open(path, "r+b") as f:
            f.truncate(100)
        try:
            m.predict({{"x": x}})
        except pm.PackageError as e:
            print("refused:", e)
        np.testing.assert_array_equal(copy.predict({{"x": x}})["y"], want)
        print("copy ok")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "refused:" in r.stdout and "changed on disk" in r.stdout and "copy ok" in r.stdout


def test_predict_after_the_file_is_rewritten_in_place(saved):
    m = pm.load(saved)
    raw = saved.read_bytes()
    with open(saved, "r+b") as f:
        f.write(raw[:len(raw) - 8] + b"\1" * 8)  # same size, new mtime
        os.utime(f.fileno(), ns=(0, 0))  # a different mtime even on a coarse clock
    with pytest.raises(pm.PackageError, match="changed on disk"):
        m.predict({"x": X})


def test_replacing_a_loaded_package_is_safe(saved):
    m = pm.load(saved)
    want = m.predict({"x": X})["y"]
    other = tiny_program()
    other.weights["layer.weight"] = other.weights["layer.weight"] * 0
    pm.Model(other).save(saved)  # atomic: the loaded model keeps the old file
    np.testing.assert_array_equal(m.predict({"x": X})["y"], want)
    np.testing.assert_array_equal(pm.load(saved).predict({"x": X})["y"], X)


def test_loading_without_mmap_owns_aligned_read_only_weights(saved):
    m = pm.load(saved, mmap=False)
    w = m.program.weights["layer.weight"]
    assert w.ctypes.data % 64 == 0 and not w.flags.writeable
    saved.unlink()
    np.testing.assert_array_equal(m.predict({"x": X})["y"], X + w)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid  # reaped: no process has it (until reused, which takes a while)


@pytest.mark.skipif(os.name != "posix", reason="stale temp files are recognised by pid on POSIX")
def test_a_save_removes_temp_files_of_killed_saves(saved):
    folder = saved.parent
    dead = folder / f".m.pocket.{_dead_pid()}.abc123.tmp"
    alive = folder / f".m.pocket.{os.getppid()}.def456.tmp"  # a writer still running
    other = folder / f".other.pocket.{_dead_pid()}.x.tmp"  # another target's
    old_style = folder / ".m.pocket.k2j3h4.tmp"  # no pid: not ours to judge
    for p in (dead, alive, other, old_style):
        p.write_bytes(b"partial")
    pm.Model(tiny_program()).save(saved)
    assert not dead.exists()
    assert alive.exists() and other.exists() and old_style.exists()
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".m.pocket.")) == sorted(
        [alive.name, old_style.name])


def test_stale_temp_cleanup_tolerates_odd_names(tmp_path):
    for name in [".m.pocket.0.x.tmp", ".m.pocket.99999999999999999999.x.tmp", ".m.pocket..tmp",
                 ".m.pocket.12.tmp"]:
        (tmp_path / name).write_bytes(b"")
    remove_stale_temps(tmp_path / "m.pocket")  # pid 0 or out of range: kept
    assert len(list(tmp_path.iterdir())) == 4


def test_metadata_a_reader_would_refuse_is_refused_at_save(tmp_path):
    deep = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(pm.ConfigError, match="nested deeper"):
        pm.Model(tiny_program(), {"deep": deep}).save(tmp_path / "m.pocket")
    assert list(tmp_path.iterdir()) == []
