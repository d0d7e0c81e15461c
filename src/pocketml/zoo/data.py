"""Real sample data shared by the zoo entries: sentences, news text, photos and speech.

Everything comes from files inside installed packages (gensim's and scikit-image's test data,
scikit-learn's sample images) or is spoken by espeak-ng, so validation runs on real content
rather than random tensors, and nothing is downloaded.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import warnings
import wave
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from pocketml.zoo._paths import package_dir, package_file

SAMPLE_RATE = 16_000  # Hz, what speech models (Whisper) expect

#: Utterances spoken by espeak-ng for the speech samples.
SPEECH_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "The weather today is sunny with a light breeze from the north.",
)


def _gensim_file(name: str) -> Path:
    return package_file("gensim", "gensim", "test", "test_data", name)


@cache
def movie_reviews() -> tuple[tuple[str, str], ...]:
    """200 labelled movie-review sentences (Pang & Lee polarity) as (label, text), label 'neg'/'pos'."""
    rows = []
    for line in _gensim_file("pang_lee_polarity.cor").read_text(encoding="cp1252").splitlines():
        label, _, text = line.partition(" ")
        if text.strip():
            rows.append((label.removeprefix("__label__"), text.strip()))
    return tuple(rows)


@cache
def news_documents() -> tuple[str, ...]:
    """The 50 ABC news documents of the Lee similarity corpus (gensim's lee.cor)."""
    text = _gensim_file("lee.cor").read_text(encoding="cp1252")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@cache
def news_background() -> tuple[str, ...]:
    """The 300 longer ABC news documents of gensim's lee_background.cor."""
    text = _gensim_file("lee_background.cor").read_text(encoding="cp1252")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", text, maxsplit=1)[0]


def sentences(n: int = 64) -> list[str]:
    """`n` varied real sentences: news lead sentences interleaved with negative and positive reviews."""
    news = [_first_sentence(doc) for doc in news_documents()]
    reviews = movie_reviews()
    neg = [t for label, t in reviews if label == "neg"]
    pos = [t for label, t in reviews if label == "pos"]
    out: list[str] = []
    for i in range(max(len(news), len(neg), len(pos))):
        for pool in (news, neg, pos):
            if i < len(pool):
                out.append(pool[i])
    if n > len(out):
        raise ValueError(f"only {len(out)} sentences available, asked for {n}")
    return out[:n]


# (file inside the package, package module, PyPI name) for each photo; the key says what it shows.
_PHOTOS = {
    "cat": ("chelsea.png", "skimage", "scikit-image"),
    "coffee": ("coffee.png", "skimage", "scikit-image"),
    "rocket": ("rocket.jpg", "skimage", "scikit-image"),
    "astronaut": ("astronaut.png", "skimage", "scikit-image"),
    "motorcycle": ("motorcycle_left.png", "skimage", "scikit-image"),
    "palace": ("china.jpg", "sklearn", "scikit-learn"),
    "daisy": ("flower.jpg", "sklearn", "scikit-learn"),
}
_PHOTO_DIRS = {"skimage": ("data",), "sklearn": ("datasets", "images")}


def photo(name: str) -> np.ndarray:
    """One real photo as an HxWx3 uint8 RGB array; names as in `photos()`."""
    from PIL import Image

    if name not in _PHOTOS:
        raise KeyError(f"unknown photo {name!r}; known: {', '.join(_PHOTOS)}")
    filename, module, dist = _PHOTOS[name]
    path = package_file(module, dist, *_PHOTO_DIRS[module], filename)
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def photos() -> dict[str, np.ndarray]:
    """Real photos (cat, coffee, rocket, astronaut, motorcycle, palace, daisy) as HxWx3 uint8 RGB.

    scikit-image's photos are required; scikit-learn's two are added when it is installed.
    """
    out = {}
    for name, (_, module, _) in _PHOTOS.items():
        if module == "sklearn":
            try:
                package_dir(module, "scikit-learn")
            except ValueError:
                continue
        out[name] = photo(name)
    return out


def have_espeak() -> bool:
    """Whether the espeak-ng speech synthesiser (Debian package `espeak-ng`) is on PATH."""
    return shutil.which("espeak-ng") is not None


def _resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return audio
    try:
        from scipy.signal import resample_poly
    except ImportError:  # linear interpolation: good enough for speech, no scipy needed
        times = np.arange(round(len(audio) * target / rate)) * (rate / target)
        return np.interp(times, np.arange(len(audio)), audio).astype(np.float32)
    g = np.gcd(rate, target)
    return resample_poly(audio, target // g, rate // g).astype(np.float32)


def _synthetic_speechlike(seconds: float, seed: int) -> np.ndarray:
    """A deterministic voiced-like signal (harmonics with syllable envelopes): not real speech."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(seed)
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 2
    noise = 0.02 * rng.standard_normal(t.size)
    return (0.3 * voiced * envelope + noise).astype(np.float32)


@lru_cache(maxsize=16)
def _speech(text: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text],
            check=True,
            capture_output=True,
            timeout=60,
        )
        with wave.open(str(path)) as wav:
            rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
            frames = wav.readframes(wav.getnframes())
    if width != 2:
        raise RuntimeError(f"espeak-ng wrote {8 * width}-bit audio; expected 16-bit")
    audio = np.frombuffer(frames, dtype="<i2").reshape(-1, channels).mean(axis=1) / 32768.0
    audio = _resample(audio.astype(np.float32), rate, SAMPLE_RATE)
    audio.flags.writeable = False  # cached: callers must copy before changing it
    return audio


def speech(text: str = SPEECH_TEXTS[0]) -> np.ndarray:
    """`text` spoken by espeak-ng, as float32 mono audio at 16 kHz in [-1, 1].

    Without espeak-ng (`apt-get install espeak-ng`), warns and returns a deterministic
    synthetic voiced signal instead, which exercises the model but is not speech.
    """
    if have_espeak():
        return _speech(text).copy()
    warnings.warn(
        "espeak-ng is not installed (apt-get install espeak-ng): using a synthetic "
        "speech-like signal, which is not real speech",
        stacklevel=2,
    )
    return _synthetic_speechlike(seconds=0.08 * len(text), seed=len(text))


@cache
def wikipedia_text() -> str:
    """Plain text of the English Wikipedia articles in gensim's test data (the shortened
    enwiki-latest-pages-articles1 dump: Anarchism, Autism, Albedo, ...), in dump order.

    Markup is removed with `gensim.corpora.wikicorpus.filter_wiki`; then redirects are dropped,
    bold/italic quotes removed, headings kept as their own lines, and runs of blank lines and
    spaces collapsed. Articles are separated by a blank line.
    """
    import bz2

    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    path = _gensim_file("enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
    articles = []
    with bz2.open(path) as f:
        for _title, markup, _pageid in extract_pages(f, filter_namespaces=("0",)):
            text = filter_wiki(markup)
            if not text.strip() or text.lstrip().upper().startswith("#REDIRECT"):
                continue
            text = re.sub(r"'{2,}", "", text)  # ''italic'', '''bold'''
            text = re.sub(r"^\s*=+\s*(.*?)\s*=+\s*$", r"\1", text, flags=re.MULTILINE)  # == Heading ==
            text = re.sub(r"[ \t]+", " ", text)
            text = re.sub(r" *\n *", "\n", text)
            text = re.sub(r"\n{3,}", "\n\n", text).strip()
            articles.append(text)
    if not articles:
        raise ValueError(f"no articles found in {path.name}")
    return "\n\n".join(articles)
