"""The CLI on hostile or broken input: escaped package strings, a closed pipe, unreadable array
files, NaN/Inf checks, in-place compress, the "saved" line, and error-only exits (2)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import pocketml as pm
from pocketml.cli.main import main
from pocketml.inspect import human_bytes, printable
from pocketml.ir import DType, Function, Op, Program, TensorType, Value

EVIL = "x\x1b[2J\ud800\u009b\u202e\nTraceback (most recent call last):"
T = TensorType(DType.float32, (3, 4))


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_error(rc, err, *fragments):
    assert rc == 2, err
    assert err.startswith("error: ") and "Traceback" not in err.replace("  Traceback", "")
    for f in fragments:
        assert f in err


def assert_clean(text):
    """Nothing that drives a terminal, fakes a line or cannot be encoded."""
    assert not any(c in text for c in "\x1b\x9b\u202e\ud800\r")
    text.encode("utf-8")
    assert not any(line.startswith("Traceback") for line in text.splitlines())


def _package(path, metadata=None, loc="", op="add", weight="w"):
    fn = Function("main", [Value("x", T)], [
        Op("const", [], [Value("w", T)], {"weight": weight}),
        Op(op, ["x", "w"], [Value("y", T)], loc=loc),
    ], ["y"])
    pm.Model(Program({"main": fn}, {weight: np.ones((3, 4), np.float32)}), metadata or {}).save(path)
    return path


def _linear_package(path, metadata):
    fn = Function("main", [Value("x", T)], [
        Op("const", [], [Value("w", TensorType(DType.float32, (5, 4)))], {"weight": "fc.weight"}),
        Op("linear", ["x", "w"], [Value("y", TensorType(DType.float32, (3, 5)))]),
    ], ["y"])
    pm.Model(Program({"main": fn}, {"fc.weight": np.ones((5, 4), np.float32)}), metadata).save(path)
    return path


def test_printable_escapes_controls_and_surrogates():
    assert printable("a\x1bb\x7f\x9b\ud800\u202e\tc\n") == "a\\x1bb\\x7f\\x9b\\ud800\\u202e\\x09c\\x0a"
    assert printable("a\nb\x1b", keep="\n") == "a\nb\\x1b"
    assert printable("héllo 日本 ok") == "héllo 日本 ok"


@pytest.mark.parametrize("compression", [[1, 2], "x", {"fc.weight": [1]}, {"fc.weight": {"mode": 3}},
                                         {"fc.weight": {"mode": "palettize", "rel_error": "big"}}])
def test_inspect_ignores_malformed_compression_metadata(tmp_path, capsys, compression):
    path = _linear_package(tmp_path / "m.pocket", {"compression": compression})
    rc, out, err = run(capsys, "inspect", path)
    assert rc == 0 and err == "" and "compression" in out
    rc, out, _ = run(capsys, "inspect", path, "--json")
    assert rc == 0 and json.loads(out)["compression"][0]["weight"] == "fc.weight"


def test_inspect_escapes_package_strings(tmp_path, capsys):
    path = _package(tmp_path / "evil.pocket", {"author": EVIL, EVIL: {"nested": EVIL}}, loc=EVIL,
                    weight="w" + EVIL)
    for flags in ([], ["--ir"], ["--all-weights"]):
        rc, out, err = run(capsys, "inspect", path, *flags)
        assert rc == 0 and err == ""
        assert_clean(out)
        assert "x\\x1b[2J\\ud800\\x9b\\u202e\\x0aTraceback" in out
    rc, out, _ = run(capsys, "inspect", path, "--ir", "--json")
    assert rc == 0 and out.isascii()
    info = json.loads(out)
    assert info["metadata"]["author"] == EVIL and EVIL in info["ir"]


def test_inspect_in_a_subprocess_with_surrogates(tmp_path):
    path = _package(tmp_path / "evil.pocket", {"author": EVIL}, loc=EVIL)
    for flags in ([], ["--json"], ["--ir"]):
        r = subprocess.run([sys.executable, "-m", "pocketml.cli.main", "inspect", str(path), *flags],
                           capture_output=True, timeout=120)
        assert r.returncode == 0 and r.stderr == b"", r.stderr
        assert_clean(r.stdout.decode("utf-8"))


def test_error_messages_cannot_fake_lines(tmp_path, capsys):
    # a declared type that does not match: the load error quotes the op's location
    fn = Function("main", [Value("x", T)], [
        Op("const", [], [Value("w", T)], {"weight": "w"}),
        Op("add", ["x", "w"], [Value("y", TensorType(DType.float32, (3, 5)))], loc=EVIL),
    ], ["y"])
    pm.Model(Program({"main": fn}, {"w": np.ones((3, 4), np.float32)})).save(tmp_path / "bad.pocket")
    rc, out, err = run(capsys, "inspect", tmp_path / "bad.pocket")
    assert_error(rc, err, "invalid program")
    assert_clean(err)
    assert all(line.startswith(("error: ", "  ")) for line in err.splitlines())


def test_closed_pipe_exits_quietly(tmp_path):
    path = _package(tmp_path / "m.pocket")
    for flags in (["--ir"], ["--json"], []):
        p = subprocess.Popen([sys.executable, "-m", "pocketml.cli.main", "inspect", str(path), *flags],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.close()  # before the CLI writes anything: every write meets a closed pipe
        err = p.stderr.read()
        p.stderr.close()
        assert p.wait(timeout=120) == 0 and err == b""


@pytest.fixture
def arrays(tmp_path):
    d = tmp_path
    np.save(d / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(d / "obj.npz", x=np.array([{"a": 1}], dtype=object))
    np.savez(d / "good.npz", x=np.ones((3, 4), np.float32))
    np.save(d / "x.npy", np.ones((3, 4), np.float32))
    data = (d / "good.npz").read_bytes()
    (d / "truncated.npz").write_bytes(data[:-30])
    corrupt = bytearray(data)
    corrupt[60] ^= 0xFF  # inside the member's data: its CRC fails when it is read
    (d / "corrupt.npz").write_bytes(bytes(corrupt))
    (d / "text.npy").write_text("1 2 3\n")
    return d


@pytest.mark.parametrize("flag, name, fragments", [
    ("--input", "obj.npy", ["'", "obj.npy' holds Python objects", "np.save/np.savez"]),
    ("--inputs", "obj.npz", ["obj.npz' (array 'x') holds Python objects"]),
    ("--inputs", "truncated.npz", ["truncated.npz' is damaged or truncated"]),
    ("--inputs", "corrupt.npz", ["corrupt.npz' (array 'x') is damaged or truncated", "CRC"]),
    ("--input", "text.npy", ["text.npy' is not a .npy or .npz file"]),
    ("--inputs", "text.npy", ["text.npy' is not a .npy or .npz file"]),
    ("--input", "good.npz", ["good.npz' is an .npz"]),
    ("--inputs", "x.npy", ["x.npy' is a .npy file"]),
    ("--input", "missing.npy", ["missing.npy", "No such file"]),
    ("--input", ".", ["is a folder"]),
])
def test_predict_unreadable_inputs(arrays, capsys, flag, name, fragments):
    path = _package(arrays / "m.pocket")
    rc, out, err = run(capsys, "predict", path, flag, arrays / name if name != "." else arrays)
    assert_error(rc, err, *fragments)
    assert "allow_pickle" not in err and out == ""


def test_predict_check_and_nan_warning(arrays, capsys):
    path = _package(arrays / "m.pocket", op="div", loc="model.div (m.py:3)")
    np.save(arrays / "nan.npy", np.array([[np.nan, 1, 1, 1]] * 3, np.float32))
    np.save(arrays / "zeros.npy", np.zeros((3, 4), np.float32))
    rc, out, err = run(capsys, "predict", path, "--input", arrays / "x.npy")
    assert rc == 0 and err == ""
    rc, out, err = run(capsys, "predict", path, "--input", arrays / "x.npy", "--check")
    assert rc == 0 and "all inputs, op outputs and outputs are finite" in out
    # NaN in an input: reported, and the output warning suggests --check
    rc, out, err = run(capsys, "predict", path, "--input", arrays / "nan.npy")
    assert rc == 0 and err.startswith("warning: output(s) 'y' hold NaN or Inf") and "--check" in err
    rc, out, err = run(capsys, "predict", path, "--input", arrays / "nan.npy", "--check")
    assert rc == 1 and "input 'x' holds 3 NaN of 12 values, first at index (0, 0)" in out
    # the op that makes them from finite inputs (x / 0 with x = 0: NaN)
    fn_w = np.zeros((3, 4), np.float32)
    m = pm.load(path)
    pm.Model(Program(m.program.functions, {"w": fn_w}), {}).save(arrays / "div0.pocket")
    rc, out, err = run(capsys, "predict", arrays / "div0.pocket", "--input", arrays / "zeros.npy",
                       "--check", "--output", arrays / "out.npz")
    assert rc == 1 and "input 'x'" not in out
    assert "NaN first appears in 'y', the output of div at model.div (m.py:3)" in out
    assert os.path.exists(arrays / "out.npz")


def test_compress_in_place_reports_the_real_ratio(tmp_path, capsys):
    path = tmp_path / "m.pocket"
    fn = Function("main", [Value("x", TensorType(DType.float32, (2, 64)))], [
        Op("const", [], [Value("w", TensorType(DType.float32, (64, 64)))], {"weight": "fc.weight"}),
        Op("linear", ["x", "w"], [Value("y", TensorType(DType.float32, (2, 64)))]),
    ], ["y"])
    w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    pm.Model(Program({"main": fn}, {"fc.weight": w})).save(path)
    before = path.stat().st_size
    rc, out, err = run(capsys, "compress", path, path, "--quantize", "int8", "--quiet")
    after = path.stat().st_size
    assert rc == 0 and after < before / 2
    assert f"({before / after:.2f}x smaller than" in out
    assert pm.compression_report(pm.load(path))[0]["mode"] == "quantize"
    assert [p.name for p in tmp_path.iterdir()] == ["m.pocket"]  # no temporary file left


def test_convert_prints_one_saved_line(tmp_path):
    torch = pytest.importorskip("torch")
    ep = torch.export.export(torch.nn.Linear(4, 2), (torch.randn(1, 4),))
    torch.export.save(ep, tmp_path / "m.pt2")
    r = subprocess.run([sys.executable, "-m", "pocketml.cli.main", "convert", str(tmp_path / "m.pt2"),
                        str(tmp_path / "m.pocket")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    size = human_bytes((tmp_path / "m.pocket").stat().st_size)
    assert r.stdout == f"saved {tmp_path / 'm.pocket'} ({size})\n" and r.stderr == ""


def test_bad_paths_are_errors(tmp_path, capsys):
    path = _package(tmp_path / "m.pocket")
    np.save(tmp_path / "x.npy", np.ones((3, 4), np.float32))
    rc, _, err = run(capsys, "inspect", tmp_path)  # a folder as the model
    assert_error(rc, err, str(tmp_path))
    rc, _, err = run(capsys, "predict", tmp_path / "nope.pocket", "--input", tmp_path / "x.npy")
    assert_error(rc, err, "nope.pocket")
    rc, _, err = run(capsys, "compress", path, tmp_path, "--quantize", "int8")  # a folder as output
    assert_error(rc, err, "is a folder")
    rc, _, err = run(capsys, "predict", path, "--input", tmp_path / "x.npy", "--output",
                     tmp_path / "no" / "out.npz")
    assert_error(rc, err, "out.npz")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        rc, _, err = run(capsys, "compress", path, ro / "c.pocket", "--quantize", "int8")
        assert_error(rc, err, "Permission denied")
    rc, _, err = run(capsys, "generate", path, "--prompt", "hi")
    assert_error(rc, err, "'input_ids' input")


def test_other_bad_arguments_are_errors(tmp_path, capsys, monkeypatch):
    path = _package(tmp_path / "m.pocket")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe")
    rc, _, err = run(capsys, "compress", path, tmp_path / "c.pocket", "--config", tmp_path / "bin.yaml")
    assert_error(rc, err, "not UTF-8 text")

    def no_torch(args):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")
    monkeypatch.setattr("pocketml.cli.main.cmd_inspect", no_torch)
    rc, _, err = run(capsys, "inspect", path)
    assert_error(rc, err, "not installed", "pip install 'pocketml[torch]'")


def test_pocketml_warnings_print_as_warning_lines(tmp_path, capsys, monkeypatch):
    import warnings

    class W(UserWarning):
        pass
    W.__module__ = "pocketml.compress"

    def warn(args):
        warnings.warn(W("kept dense\x1b[2J"))
        return 0
    monkeypatch.setattr("pocketml.cli.main.cmd_inspect", warn)
    rc, _, err = run(capsys, "inspect", "x.pocket")
    assert rc == 0 and err == "warning: kept dense\\x1b[2J\n"
