"""Text pieces for on-device generation, without torch: tokenizer, chat template, sampler.

    tok = Tokenizer.from_gguf(path)             # or Tokenizer.from_json(package_metadata_string)
    ids = tok.encode(tok.apply_chat_template([{"role": "user", "content": "Hi"}]), add_special=False)
    sampler = Sampler(temperature=0.7, top_p=0.9, seed=0)
    stream = tok.decode_stream()
    ...  next_id = sampler.sample(logits[0, -1]); print(stream.feed(next_id), end="")

`tokenizers` (encoding) and `jinja2` (chat templates) are imported only when those are used.
"""

from pocketml.text.chat import ChatTemplate
from pocketml.text.sampling import Sampler
from pocketml.text.tokenizer import StreamDecoder, Tokenizer

__all__ = ["ChatTemplate", "Sampler", "StreamDecoder", "Tokenizer"]
