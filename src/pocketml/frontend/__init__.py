"""Frontends: turn a source framework's model into an IR program."""
