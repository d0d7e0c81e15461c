"""The README's quick start runs as written (it is the first thing a new user copies)."""
import re
from pathlib import Path

import numpy as np


def test_readme_quick_start_runs(tmp_path, monkeypatch, zoo_package):
    text = (Path(__file__).parents[1] / "README.md").read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", text, re.S))  # every block, in order
    monkeypatch.chdir(tmp_path)
    # what `pocketml zoo convert smollm2 smollm2.pocket`, as the README says, would have written
    (tmp_path / "smollm2.pocket").symlink_to(zoo_package("smollm2")[2])
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["out"]["embedding"].shape == (2, 384)
    assert scope["report"].passed
    assert scope["m2"].input_names == ["input_ids", "attention_mask"]
    assert scope["c"].predict({"x": np.ones((1, 4), np.float32)}, state=scope["state"])["output"].tolist() == [1] * 4
    assert "Paris" in "".join(scope["chat"].generate(scope["prompt"], 8))
    assert (tmp_path / "minilm-4bit.pocket").stat().st_size < (tmp_path / "minilm.pocket").stat().st_size / 5
