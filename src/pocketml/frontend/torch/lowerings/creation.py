"""Lowerings of creation ops."""
