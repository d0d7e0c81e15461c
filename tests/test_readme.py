"""The README's quick start runs as written (it is the first thing a new user copies)."""
import re
from pathlib import Path


def test_readme_quick_start_runs(tmp_path, monkeypatch):
    text = (Path(__file__).parents[1] / "README.md").read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", text, re.S))  # every block, in order
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["out"]["embedding"].shape == (2, 384)
    assert scope["report"].passed
    assert scope["m2"].input_names == ["input_ids", "attention_mask"]
    assert (tmp_path / "minilm-4bit.pocket").stat().st_size < (tmp_path / "minilm.pocket").stat().st_size / 5
