"""Lowerings of attention ops."""
