"""Exceptions raised by pocketml; every one a subclass of `Error`, so callers can catch them all."""


class Error(Exception):
    """Base class of every error pocketml raises on purpose."""


class ConversionError(Error):
    """The source model uses something the converter cannot lower."""


class PackageError(Error):
    """A package file is missing, truncated, corrupt, or of an unknown format version."""


class InputError(Error, ValueError):
    """Inputs given to `predict` do not match the model's declared inputs."""


class IndexRangeError(InputError):
    """An index value outside its axis. Raised by the op references with the operand it came from,
    so the executor can name the op and the model input that supplied it."""

    def __init__(self, what: str, value: int, lo: int, hi: int, operand: int, axis: int | None):
        self.what, self.value, self.lo, self.hi, self.operand = what, value, lo, hi, operand
        self.input = self.op = None  # set by the executor: the model input and the op, in words
        along = "" if axis is None else f" along axis {axis}"
        super().__init__(f"{what} {value} is outside [{lo}, {hi}]{along}" if lo <= hi
                         else f"{what} {value} indexes an empty axis{along}")


class ExecutionError(Error, RuntimeError):
    """An op's reference failed while running (NumPy raised); the cause is chained."""


class VerificationError(Error):
    """A program breaks an IR invariant (a pass or a lowering produced inconsistent types)."""


class ConfigError(Error, ValueError):
    """An invalid option was passed (unknown precision, bad tolerance, ...)."""


class CompressionWarning(UserWarning):
    """`compress` kept a weight dense, or compressed one with an error known to break models."""
