"""What the text tests share: SmolLM2's GGUF, our tokenizer of it, transformers' reference, texts."""
from __future__ import annotations

from functools import cache

# Edge cases real corpora rarely have: scripts, emoji split across tokens, whitespace runs, numbers
# of other scripts, contractions, code, special tokens written in the text.
EDGE_TEXTS = (
    "",
    " ",
    "\n\n\t  \n",
    "Hello world",
    "  leading and trailing spaces  ",
    "I'M sure they'll've done it; don't ASK",
    "Numbers: 3.14159, 1,000,000, 2024-06-30, ½ ¼ ³, ٣٤٥, ⅻ, 10\u00a0000 and Ⅳ",
    "Grüße aus Köln — naïve café, façade; Ελληνικά; русский текст",
    "中文句子，日本語の文章、한국어 문장。",
    "Emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 and ZWJ",
    "def f(x):\n    return {'a': [1, 2]}  # comment\r\n",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><repo_name>pocketml<file_sep>x<|im_end|>",
    "tabs\tand\u3000ideographic\u2003em spaces\u200b zero width",
)


@cache
def gguf_path():
    from pocketml.zoo.smollm2 import gguf_path

    return gguf_path()


@cache
def metadata() -> dict:
    from pocketml.io.gguf import GGUFFile

    return GGUFFile(gguf_path()).metadata


@cache
def tokenizer():
    from pocketml.text import Tokenizer

    return Tokenizer.from_gguf(gguf_path())


@cache
def hf_tokenizer():
    """transformers' own reading of the GGUF (offline: the file's directory is the "repo")."""
    from transformers import AutoTokenizer

    path = gguf_path()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@cache
def corpus() -> tuple[str, ...]:
    """Real sentences, news stories and movie reviews, plus the edge cases."""
    from pocketml.zoo import data

    reviews = tuple(text for _, text in data.movie_reviews())
    return (*data.sentences(200), *data.news_documents(), *data.news_background(), *reviews, *EDGE_TEXTS)


@cache
def wikipedia_paragraphs() -> tuple[str, ...]:
    from pocketml.zoo import data

    return tuple(p for p in data.wikipedia_text().split("\n") if p)
