"""Lowerings of resize ops."""
