"""Lowerings of reduce ops."""
