"""`pocketml compress` and the compression section of `inspect`."""
import numpy as np
import pytest
import torch

import pocketml as pm
from pocketml.cli.main import main


@pytest.fixture
def package(tmp_path):
    path = tmp_path / "m.pocket"
    pm.convert(torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32)),
               (torch.randn(2, 64),)).save(path)
    return path


def test_compress_with_flags_and_inspect(package, tmp_path, capsys):
    out = tmp_path / "c.pocket"
    assert main(["compress", str(package), str(out), "--palettize", "4", "--granularity",
                 "per_grouped_channel", "--group-size", "16"]) == 0
    text = capsys.readouterr().out
    assert "palettize" in text and "smaller than" in text
    assert out.stat().st_size < package.stat().st_size / 3
    assert main(["inspect", str(out)]) == 0
    assert "compression" in capsys.readouterr().out
    x = {"input": np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)}
    m = pm.load(out, exact=True)  # fp32 activations: equal to the decompressed model within fp32
    np.testing.assert_allclose(m.predict(x)["output"], pm.decompress(m).predict(x)["output"], rtol=1e-5, atol=1e-6)


def test_joint_flags_and_yaml_config(package, tmp_path, capsys):
    out = tmp_path / "j.pocket"
    assert main(["compress", str(package), str(out), "--prune-nm", "2:4", "--quantize", "int8",
                 "--quant-granularity", "per_tensor", "--min-weight-size", "0"]) == 0
    assert "prune + quantize" in capsys.readouterr().out
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("global_config:\n  quantize: {dtype: int4, granularity: per_block, block_size: 32}\n"
                   "min_weight_size: 0\n")
    assert main(["compress", str(package), str(out), "--config", str(cfg), "--quiet"]) == 0
    assert "int4" not in capsys.readouterr().out  # --quiet: only the size line
    assert {r["mode"] for r in pm.compression_report(pm.load(out))} == {"quantize"}


@pytest.mark.parametrize("flags, match", [
    ([], "nothing to do"),
    (["--palettize", "5"], "nbits must be one of"),
    (["--prune-nm", "2-4"], "N:M"),
    (["--palettize", "4", "--awq"], "--awq goes with --quantize"),
    (["--quantize", "int4", "--block-size", "48", "--min-weight-size", "0", "--strict"], "block"),
])
def test_bad_compress_flags_are_clear_errors(package, tmp_path, capsys, flags, match):
    assert main(["compress", str(package), str(tmp_path / "x.pocket"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and match in err and "Traceback" not in err


def test_calibrated_compression_from_the_command_line(package, tmp_path, capsys):
    data = tmp_path / "cal.npz"
    np.savez(data, input=np.random.default_rng(1).standard_normal((6, 2, 64)).astype(np.float32))  # 6 samples
    for flags in (["--quantize", "int4", "--block-size", "32", "--algorithm", "gptq"],
                  ["--quantize", "int4", "--block-size", "32", "--awq"],
                  ["--palettize", "4", "--gptq"], ["--prune-nm", "2:4", "--sparsegpt"], ["--palettize", "3"]):
        out = tmp_path / "c.pocket"
        assert main(["compress", str(package), str(out), *flags, "--calibration", str(data),
                     "--min-weight-size", "0"]) == 0, flags
        recorded = pm.load(out).metadata["compression"]
        assert all(r.get("calibrated") for r in recorded.values()), flags
    capsys.readouterr()
    assert main(["compress", str(package), str(tmp_path / "x.pocket"), "--palettize", "4", "--gptq"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "need calibration data" in err
    assert main(["compress", str(package), str(tmp_path / "x.pocket"), "--quantize", "int8",
                 "--calibration", str(tmp_path / "none.npz")]) == 2
    assert "cannot read calibration data" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::pocketml.errors.CompressionWarning")  # (2 bits, data-free, on purpose)
def test_sensitivity_from_an_npz(tmp_path, capsys):
    """--sensitivity FISHER.npz weighs the k-means by weight name (three outliers marked: a 2-bit
    table then holds them, which plain k-means does not); one that does not fit is an error naming
    the weight."""
    torch.manual_seed(0)
    package = tmp_path / "m.pocket"
    pm.convert(torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32)),
               (torch.randn(2, 64),)).save(package)
    w = pm.load(package).program.weights["0.weight"]
    marked = np.zeros(w.shape, bool)
    marked.flat[np.argsort(np.abs(w), axis=None)[-3:]] = True
    sens = tmp_path / "fisher.npz"
    np.savez(sens, **{"0.weight": np.where(marked, 1e4, 1.0)})
    out = tmp_path / "s.pocket"
    assert main(["compress", str(package), str(out), "--palettize", "2", "--min-weight-size", "0",
                 "--sensitivity", str(sens), "--quiet"]) == 0
    recorded = pm.load(out).metadata["compression"]
    assert recorded["0.weight"].get("calibrated") and not recorded["2.weight"].get("calibrated")
    dense = pm.decompress(pm.load(out)).program.weights["0.weight"]
    plain = pm.decompress(pm.compress(pm.load(package), pm.Palettize(2), progress=False)).program.weights["0.weight"]
    assert np.abs(dense - w)[marked].mean() < 0.2 * np.abs(plain - w)[marked].mean()
    np.savez(sens, **{"0.weight": np.ones((3, 3))})
    capsys.readouterr()
    assert main(["compress", str(package), str(out), "--palettize", "2", "--sensitivity", str(sens)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "0.weight" in err and "shape" in err


def test_target_size_writes_a_reusable_recipe(package, tmp_path, capsys):
    size = package.stat().st_size
    out, recipe = tmp_path / "mixed.pocket", tmp_path / "recipe.yaml"
    assert main(["compress", str(package), str(out), "--target-size", str(size // 5), "--recipe", str(recipe)]) == 0
    text = capsys.readouterr().out
    assert "mixed precision:" in text and "recipe:" in text
    assert out.stat().st_size <= size // 5 + 4096  # the weights fit; the JSON header is extra
    again = tmp_path / "again.pocket"
    assert main(["compress", str(package), str(again), "--config", str(recipe)]) == 0
    assert {r["mode"] for r in pm.compression_report(pm.load(again))} == \
        {r["mode"] for r in pm.compression_report(pm.load(out))}
