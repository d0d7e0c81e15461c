"""Readers of other projects' file formats (GGUF), below the zoo and the text layer, which both
use them; torch-free. A file they cannot read is a `PackageError`."""
