"""The `pocketml` CLI: run in-process through main([...]), plus real subprocesses."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import pocketml as pm
from pocketml import zoo
from pocketml.cli.main import main

torch = pytest.importorskip("torch")


class AddW(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.linspace(-1, 1, 4))

    def forward(self, x, y):
        return x + y + self.w


def _example():
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A .pt2 file, the package converted from it by the CLI, and an .npz of inputs."""
    d = tmp_path_factory.mktemp("cli")
    module = AddW().eval()
    ep = torch.export.export(module, _example())
    torch.export.save(ep, d / "m.pt2")
    x, y = _example()
    np.savez(d / "in.npz", a=x.numpy(), b=y.numpy())
    rc = main(["convert", str(d / "m.pt2"), str(d / "m.pocket"), "--input-names", "a,b",
               "--output-names", "sum", "--author", "Ada", "--license", "MIT",
               "--description", "tiny adder", "--version", "1.2.3"])
    assert rc == 0
    return {"dir": d, "pt2": d / "m.pt2", "pocket": d / "m.pocket", "npz": d / "in.npz",
            "module": module, "x": x, "y": y}


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_error(rc, err, *fragments):
    assert rc == 2
    assert err.startswith("error: ") and "Traceback" not in err
    for f in fragments:
        assert f in err


def test_version(capsys):
    rc, out, _ = run(capsys, "--version")
    assert rc == 0 and out.strip() == f"pocketml {pm.__version__}"


def test_convert_from_pt2_keeps_names_and_metadata(files):
    m = pm.load(files["pocket"])
    assert m.input_names == ["a", "b"] and m.output_names == ["sum"]
    assert m.metadata["author"] == "Ada" and m.metadata["license"] == "MIT"
    assert m.metadata["description"] == "tiny adder" and m.metadata["version"] == "1.2.3"
    want = files["module"](files["x"], files["y"]).detach().numpy()
    got = m.predict({"a": files["x"].numpy(), "b": files["y"].numpy()})["sum"]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_inspect_text_and_json(files, capsys):
    rc, out, err = run(capsys, "inspect", files["pocket"])
    assert rc == 0 and err == ""
    for fragment in ("a: float32[3, 4]", "sum: float32[3, 4]", "Ada", "add  2", "weights (1)",
                     "4 parameters", "float32"):
        assert fragment in out
    rc, out, _ = run(capsys, "inspect", files["pocket"], "--json")
    info = json.loads(out)
    assert info["ops"] == {"add": 2} and info["num_ops"] == 2
    assert info["parameters"] == 4 and info["weight_bytes"] == 16
    assert info["weights"] == [{"name": "w", "dtype": "float32", "shape": [4], "bytes": 16,
                                "bits_per_element": 32.0}]
    assert info["inputs"][0] == {"name": "a", "dtype": "float32", "shape": [3, 4]}
    assert info["file_size"] == os.path.getsize(files["pocket"])
    assert info["metadata"]["license"] == "MIT"
    rc, out, _ = run(capsys, "inspect", files["pocket"], "--ir")
    assert rc == 0 and "func main(%a: float32[3, 4], %b: float32[3, 4])" in out
    assert "weight w: float32[4]" in out
    rc, out, _ = run(capsys, "inspect", files["pocket"], "--ir", "--json")
    assert "func main" in json.loads(out)["ir"]


def test_predict_npz_in_and_out(files, tmp_path, capsys):
    want = files["module"](files["x"], files["y"]).detach().numpy()
    out_path = tmp_path / "out.npz"
    rc, out, err = run(capsys, "predict", files["pocket"], "--inputs", files["npz"], "--output", out_path)
    assert rc == 0 and out == "" and err == ""
    with np.load(out_path) as data:
        assert data.files == ["sum"]
        np.testing.assert_allclose(data["sum"], want, rtol=1e-6, atol=1e-6)
    # preview, with inputs given one by one
    np.save(tmp_path / "a.npy", files["x"].numpy())
    np.save(tmp_path / "b.npy", files["y"].numpy())
    rc, out, _ = run(capsys, "predict", files["pocket"], "--input", f"a={tmp_path / 'a.npy'}",
                     "--input", f"b={tmp_path / 'b.npy'}")
    assert rc == 0 and out.startswith("sum: float32[3, 4]\n")
    assert f"{want.reshape(-1)[0]:.4f}"[:5] in out
    # fp16 emulation runs and differs a little
    rc, _, _ = run(capsys, "predict", files["pocket"], "--inputs", files["npz"], "--output", out_path,
                   "--compute-precision", "float16")
    with np.load(out_path) as data:
        assert rc == 0 and 0 < np.abs(data["sum"] - want).max() < 1e-2


def test_predict_input_errors(files, tmp_path, capsys):
    np.savez(tmp_path / "wrong.npz", a=files["x"].numpy())
    rc, _, err = run(capsys, "predict", files["pocket"], "--inputs", tmp_path / "wrong.npz")
    assert_error(rc, err, "lacks input(s) ['b']")
    np.savez(tmp_path / "f64.npz", a=files["x"].double().numpy(), b=files["y"].numpy())
    rc, _, err = run(capsys, "predict", files["pocket"], "--inputs", tmp_path / "f64.npz")
    assert_error(rc, err, "expected dtype float32")
    rc, _, err = run(capsys, "predict", files["pocket"], "--inputs", tmp_path / "missing.npz")
    assert_error(rc, err, "missing.npz")


def test_validate_exit_codes(files, tmp_path, capsys):
    rc, out, _ = run(capsys, "validate", files["pocket"], files["pt2"], "--inputs", files["npz"])
    assert rc == 0 and "PASSED" in out and "sum" in out and "max_abs" in out
    rc, out, _ = run(capsys, "validate", files["pocket"], files["pt2"], "--inputs", files["npz"],
                     "--compute-precision", "float16", "--atol", "1e-9")
    assert rc == 1 and "FAILED" in out and "compute precision float16" in out
    # a perturbed package fails
    m = pm.load(files["pocket"])
    m.program.weights = {"w": np.asarray(m.program.weights["w"]) + np.float32(0.5)}
    pm.Model(m.program, m.metadata).save(tmp_path / "bad.pocket")
    rc, out, _ = run(capsys, "validate", tmp_path / "bad.pocket", files["pt2"], "--inputs", files["npz"])
    assert rc == 1 and "FAIL" in out
    rc, _, err = run(capsys, "validate", files["pocket"], files["pt2"])
    assert_error(rc, err, "--inputs")


def test_errors_missing_and_corrupt_files(files, tmp_path, capsys):
    rc, _, err = run(capsys, "inspect", tmp_path / "nope.pocket")
    assert_error(rc, err, "nope.pocket")
    corrupt = tmp_path / "corrupt.pocket"
    data = bytearray(files["pocket"].read_bytes())
    data[40] ^= 0xFF  # inside the JSON header
    corrupt.write_bytes(bytes(data))
    for argv in (["inspect", corrupt], ["predict", corrupt, "--inputs", files["npz"]]):
        rc, _, err = run(capsys, *argv)
        assert_error(rc, err, "corrupt")
    rc, _, err = run(capsys, "convert", tmp_path / "nope.pt2", tmp_path / "x.pocket")
    assert_error(rc, err, "nope.pt2")
    (tmp_path / "garbage.pt2").write_bytes(b"not a zip")
    rc, _, err = run(capsys, "convert", tmp_path / "garbage.pt2", tmp_path / "x.pocket")
    assert_error(rc, err, "torch.export.load")
    rc, _, err = run(capsys, "convert", files["pt2"], tmp_path / "no" / "dir" / "x.pocket")
    assert_error(rc, err, "does not exist")
    rc, _, err = run(capsys, "--debug", "inspect", tmp_path / "nope.pocket")
    assert rc == 2 and "Traceback" in err and "error: " in err


def test_usage_errors(capsys):
    assert run(capsys, "frobnicate")[0] == 2
    assert run(capsys, "predict")[0] == 2
    assert run(capsys)[0] == 2


def test_zoo_list(capsys):
    rc, out, err = run(capsys, "zoo", "list")
    assert rc == 0
    for name in zoo.names():
        assert name in out
    assert "weights:" in out


def test_zoo_unknown_name(tmp_path, capsys):
    rc, _, err = run(capsys, "zoo", "convert", "no-such-model", tmp_path / "x.pocket")
    assert_error(rc, err, "no-such-model")
    rc, _, err = run(capsys, "validate", tmp_path / "x.pocket", "zoo:no-such-model")
    assert rc == 2


@pytest.fixture
def fake_zoo(monkeypatch):
    """A zoo entry built from a tiny module (the real entries need the ops being written)."""
    x, y = _example()
    entry = zoo.Entry(name="tiny", description="a tiny adder", license="MIT", author="Grace",
                      package="tiny-weights", build=lambda: AddW().eval(), example_inputs=lambda: (x, y),
                      samples=lambda: [(x, y), (y, x), (x, x)], input_names=("p", "q"),
                      output_names=("r",))
    real_get = zoo.get
    monkeypatch.setattr(zoo, "get", lambda name: entry if name == "tiny" else real_get(name))
    return entry


def test_zoo_convert_and_validate(fake_zoo, tmp_path, capsys):
    out_path = tmp_path / "tiny.pocket"
    rc, out, _ = run(capsys, "zoo", "convert", "tiny", out_path, "--validate", "--samples", "2")
    assert rc == 0 and "PASSED: 2 sample(s)" in out
    m = pm.load(out_path)
    assert m.input_names == ["p", "q"] and m.output_names == ["r"]
    assert (m.metadata["author"], m.metadata["license"], m.metadata["description"]) == \
        ("Grace", "MIT", "a tiny adder")
    rc, out, _ = run(capsys, "validate", out_path, "zoo:tiny")
    assert rc == 0 and "PASSED: 3 sample(s)" in out
    rc, out, _ = run(capsys, "convert", "zoo:tiny", tmp_path / "t2.pocket", "--author", "Me")
    assert rc == 0 and pm.load(tmp_path / "t2.pocket").metadata["author"] == "Me"


def _subprocess(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)


def test_subprocess_version_and_inspect_without_torch(files):
    exe = shutil.which("pocketml")
    cmd = [exe] if exe else [sys.executable, "-m", "pocketml.cli.main"]
    r = _subprocess(cmd + ["--version"])
    assert r.returncode == 0 and r.stdout.strip() == f"pocketml {pm.__version__}"
    # inspect and predict work where torch cannot be imported at all
    code = ("import sys; sys.modules['torch'] = None; from pocketml.cli.main import main; "
            "sys.exit(main(sys.argv[1:]))")
    r = _subprocess([sys.executable, "-c", code, "inspect", str(files["pocket"])])
    assert r.returncode == 0, r.stderr
    assert "sum: float32[3, 4]" in r.stdout and r.stderr == ""
    r = _subprocess([sys.executable, "-c", code, "predict", str(files["pocket"]), "--inputs",
                     str(files["npz"])])
    assert r.returncode == 0 and r.stdout.startswith("sum: float32[3, 4]")
    r = _subprocess(cmd + ["inspect", str(files["dir"] / "missing.pocket")])
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert r.stdout == ""
