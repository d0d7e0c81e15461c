"""pocketml: convert PyTorch models into self-contained packages and run them without PyTorch."""
from .compress import (OptimizationConfig, Palettize, Prune, Quantize, compress, compression_report,
                       decompress, format_report)
from .errors import (CompressionWarning, ConfigError, ConversionError, Error, ExecutionError, IndexRangeError,
                     InputError, PackageError, VerificationError)
from .inputs import EnumeratedShapes, RangeDim, TensorType
from .merge import merge
from .model import Model, load
from .runtime import State
from .version import __version__


def convert(*args, **kwargs):
    """Convert a PyTorch model; see `pocketml.converter.convert` (imports torch only when called)."""
    from .converter import convert as _convert
    return _convert(*args, **kwargs)


def generate(*args, **kwargs):
    """Stream text from a language model package; see `pocketml.generation.generate`."""
    from .generation import generate as _generate
    return _generate(*args, **kwargs)


def transcribe(*args, **kwargs):
    """Speech to text with a Whisper package; see `pocketml.transcription.transcribe`."""
    from .transcription import transcribe as _transcribe
    return _transcribe(*args, **kwargs)


def __getattr__(name):
    if name == "training":  # imports torch: only when asked for
        import importlib
        return importlib.import_module(".training", __name__)
    raise AttributeError(f"module 'pocketml' has no attribute {name!r}")


def validate(*args, **kwargs):
    """Compare a package with its PyTorch source; see `pocketml.validation.validate`."""
    from .validation import validate as _validate
    return _validate(*args, **kwargs)


__all__ = ["merge", "EnumeratedShapes", "RangeDim", "State", "TensorType", "OptimizationConfig", "Palettize", "Prune", "Quantize", "compress", "compression_report",
           "decompress", "format_report", "CompressionWarning", "ConfigError", "ConversionError", "Error", "ExecutionError",
           "IndexRangeError", "InputError", "Model", "PackageError",
           "VerificationError", "__version__", "convert", "generate", "load", "transcribe", "validate"]
