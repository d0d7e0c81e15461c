"""`pocketml generate` on a tiny language model without a tokenizer: CLI-worded errors and
generation from --prompt-ids (printed as token ids)."""
import pytest

import pocketml as pm
from pocketml.cli.main import main

torch = pytest.importorskip("torch")


class TinyLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 8)
        self.out = torch.nn.Linear(8, 10)

    def forward(self, input_ids):
        return self.out(self.emb(input_ids))


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lm") / "lm.pocket"
    pm.convert(TinyLM().eval(), (torch.zeros(1, 3, dtype=torch.int64),), input_names=["input_ids"],
               output_names=["logits"],
               dynamic_shapes=({1: torch.export.Dim("seq", min=2, max=16)},)).save(path)
    return path


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_no_tokenizer_points_to_prompt_ids(lm, capsys):
    rc, out, err = run(capsys, "generate", lm, "--prompt", "hello")
    assert rc == 2 and err.startswith("error: ") and "has no tokenizer" in err
    assert "--prompt-ids 1,2,3" in err and "tokenizer=" not in err
    rc, _, err = run(capsys, "chat", lm)
    assert rc == 2 and "chat needs one" in err


def test_prompt_ids_generate_token_ids(lm, capsys):
    rc, out, err = run(capsys, "generate", lm, "--prompt-ids", "1,2,3", "--max-new-tokens", "4")
    assert rc == 0 and err == ""
    ids = [int(x) for x in out.split()]
    assert len(ids) == 4 and all(0 <= i < 10 for i in ids)
    rc, out2, _ = run(capsys, "generate", lm, "--prompt-ids", "1 2 3", "--max-new-tokens", "4")
    assert out2 == out  # greedy: the same ids


def test_short_prompt_and_bad_ids(lm, capsys):
    rc, _, err = run(capsys, "generate", lm, "--prompt-ids", "1")
    assert rc == 2 and "the prompt must have at least 2 tokens" in err
    for bad in ("a,b", "-1", ""):
        rc, _, err = run(capsys, "generate", lm, "--prompt-ids", bad)
        assert rc == 2 and "token ids" in err
    rc, _, err = run(capsys, "generate", lm, "--prompt", "x", "--prompt-ids", "1,2")
    assert rc == 2 and "not allowed with" in err
