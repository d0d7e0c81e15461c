"""Lowerings of pool ops."""
