"""Lowerings of activation ops."""
