"""all-MiniLM-L6-v2 with two task heads (sentiment of movie reviews; news against reviews) as two
functions of one package over the shared encoder: the encoder's weights once, each head its own
(384 x 2 + 2 floats); each function's outputs equal its PyTorch model's, and its accuracy is the
head's."""
import numpy as np
import pytest
import torch

import pocketml as pm
from pocketml.zoo import data, minilm

pytestmark = pytest.mark.slow


class Classifier(torch.nn.Module):
    def __init__(self, encoder, head):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, input_ids, attention_mask):
        return self.head(self.encoder(input_ids, attention_mask))


def fit_head(x: torch.Tensor, y: torch.Tensor) -> torch.nn.Linear:
    torch.manual_seed(0)
    head = torch.nn.Linear(x.shape[1], 2)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(x), y).backward()
        opt.step()
    return head.eval()


def test_two_heads_share_the_encoder(zoo_package, tmp_path):
    entry, encoder, _ = zoo_package("minilm")
    reviews = data.movie_reviews()
    news = [s.split(". ")[0] for s in data.news_documents()]
    texts = [t for _, t in reviews] + news
    with torch.no_grad():
        emb = torch.cat([encoder(*map(torch.from_numpy, minilm.tokenize(texts[i:i + 50])))
                         for i in range(0, len(texts), 50)])
    sentiment = torch.tensor([int(label == "pos") for label, _ in reviews])
    topic = torch.tensor([0] * len(reviews) + [1] * len(news))
    train = np.arange(len(reviews)) % 4 != 0  # a quarter of the reviews held out
    heads = {"sentiment": fit_head(emb[:len(reviews)][train], sentiment[train]),
             "topic": fit_head(emb, topic)}
    models = {n: pm.convert(Classifier(encoder, h).eval(), entry.example_inputs(), input_names=entry.input_names,
                            output_names=["logits"], dynamic_shapes=entry.dynamic_shapes())
              for n, h in heads.items()}
    both = pm.merge(models)
    path = tmp_path / "heads.pocket"
    both.save(path)
    one = sum(w.nbytes for w in models["topic"].program.weights.values())
    assert sum(w.nbytes for w in both.program.weights.values()) == one + (384 * 2 + 2) * 4
    loaded = pm.load(path)
    ids, mask = minilm.tokenize([t for _, t in reviews][::4])
    x = {"input_ids": ids, "attention_mask": mask}
    for name, m in loaded.functions.items():
        with torch.no_grad():
            want = Classifier(encoder, heads[name])(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        got = m.predict(x)["logits"]
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
        assert (got.argmax(1) == want.argmax(1)).all()
    held = loaded.functions["sentiment"].predict(x)["logits"].argmax(1)
    assert (held == sentiment[::4].numpy()).mean() > 0.6  # held-out reviews, better than chance
    assert (loaded.functions["topic"].predict(x)["logits"].argmax(1) == 0).all()  # reviews, not news
