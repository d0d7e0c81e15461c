"""The real models of the zoo: converted, saved, loaded and run, compared with PyTorch.

Thresholds are the project's acceptance criteria (fp32); fp16 emulation must stay sane.
"""
import numpy as np
import pytest
import torch

import pocketml as pm
from pocketml import zoo

MIN_COSINE = 0.99999  # atol is each zoo entry's own (1e-4; 1e-3 for large-logit models)


@pytest.fixture(scope="module", params=zoo.names())
def converted(request, zoo_package):
    entry, module, path = zoo_package(request.param)
    return entry, module, path, entry.samples()


def test_matches_pytorch_on_real_samples(converted):
    entry, module, path, samples = converted
    report = pm.validate(path, module, samples, atol=entry.atol, min_cosine=MIN_COSINE)
    assert report.passed, report.to_text()
    if entry.name == "minilm":
        assert sum(s[0].shape[0] for s in samples) >= 50  # sentences
        assert len({s[0].shape[1] for s in samples}) > 1  # one package, several lengths
    if entry.name in ("efficientnet-lite0", "smollm2", "smollm2-nocache", "whisper-tiny-en-decoder"):
        assert report.outputs[entry.output_names[0]].top1_agreement == 1.0, report.to_text()
    if entry.name.startswith("smollm2"):
        assert max(s[0].shape[1] for s in samples) >= 500  # a prompt near the 512-token limit


def test_float16_emulation_keeps_the_answer(converted):
    entry, module, path, samples = converted
    model = pm.load(path, compute_precision="float16")
    sample = samples[-1]
    state = model.make_state() if model.states else None
    got = model.predict({n: t.numpy() for n, t in zip(model.input_names, sample)},
                        state=state)[entry.output_names[0]]
    for name, b in module.named_buffers():  # a stateful module starts from empty states, too
        if name in model.states:
            b.zero_()
    with torch.no_grad():
        out = module(*sample)
    want = (out if isinstance(out, torch.Tensor) else next(iter(out.values())) if isinstance(out, dict)
            else out[0]).numpy()
    cos = float(np.dot(got.ravel(), want.ravel()) / (np.linalg.norm(got) * np.linalg.norm(want)))
    assert cos > 0.9999, cos
    if entry.name in ("efficientnet-lite0", "smollm2", "smollm2-nocache", "whisper-tiny-en-decoder"):
        assert (got[..., -1, :] if got.ndim == 3 else got).argmax(-1).tolist() == \
            (want[..., -1, :] if want.ndim == 3 else want).argmax(-1).tolist()
