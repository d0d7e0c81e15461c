"""Exceptions raised by pocketml; every one a subclass of `Error`, so callers can catch them all."""


class Error(Exception):
    """Base class of every error pocketml raises on purpose."""


class ConversionError(Error):
    """The source model uses something the converter cannot lower."""


class PackageError(Error):
    """A package file is missing, truncated, corrupt, or of an unknown format version."""


class InputError(Error, ValueError):
    """Inputs given to `predict` do not match the model's declared inputs."""


class VerificationError(Error):
    """A program breaks an IR invariant (a pass or a lowering produced inconsistent types)."""


class ConfigError(Error, ValueError):
    """An invalid option was passed (unknown precision, bad tolerance, ...)."""
