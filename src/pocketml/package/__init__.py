"""The package: one file holding a program, its weights and metadata (see docs/FORMAT.md)."""
from .format import FORMAT_VERSION, read, write

__all__ = ["FORMAT_VERSION", "read", "write"]
