"""The README's quick start runs as written (it is the first thing a new user copies), block by
block as if pasted into a plain Python REPL, where a blank line ends a compound statement."""
import code
import re
from pathlib import Path

import numpy as np
import pytest

import pocketml as pm

README = Path(__file__).parents[1] / "README.md"


class _Repl(code.InteractiveConsole):
    """The standard REPL's line handling, raising instead of printing what goes wrong."""

    def showsyntaxerror(self, filename=None, **kwargs):
        raise SyntaxError(f"README block does not paste into a REPL: line {self.line!r}")

    def showtraceback(self):
        raise

    def paste(self, block: str) -> None:
        for self.line in block.splitlines() + [""]:  # the blank line a user types after a block
            self.push(self.line)


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_repl_rejects_a_blank_line_inside_a_class():
    with pytest.raises((SyntaxError, IndentationError)):
        _Repl().paste("class A:\n    x = 1\n\n    def f(self):\n        return 1\n")


def test_readme_quick_start_runs(tmp_path, monkeypatch, zoo_package):
    monkeypatch.chdir(tmp_path)
    # what `pocketml zoo convert smollm2 smollm2.pocket`, as the README says, would have written
    (tmp_path / "smollm2.pocket").symlink_to(zoo_package("smollm2")[2])
    repl = _Repl()
    for block in _blocks():
        repl.paste(block)
    scope = repl.locals
    assert scope["out"]["embedding"].shape == (2, 384)
    assert scope["report"].passed
    fp32, fp16 = scope["report"].outputs["embedding"], scope["fp16"].outputs["embedding"]
    assert scope["fp16"].compute_precision == "float16"
    assert fp16.max_abs_error > 10 * fp32.max_abs_error and fp16.cosine < fp32.cosine  # the fp16 loss
    assert scope["m2"].input_names == ["input_ids", "attention_mask"]
    assert scope["c"].predict({"x": np.ones((1, 4), np.float32)}, state=scope["state"])["output"].tolist() == [1] * 4
    assert "Paris" in "".join(scope["chat"].generate(scope["prompt"], 8))
    int4 = scope["int4"].metadata["compression"]
    assert {r["mode"] for r in int4.values()} == {"quantize"} and sum(r.get("calibrated", False) for r in int4.values()) == 36
    assert (tmp_path / "minilm-6bit.pocket").stat().st_size < (tmp_path / "minilm.pocket").stat().st_size / 5
    assert list(pm.load(tmp_path / "minilm-both.pocket").functions) == ["float", "6bit"]
