"""Lowerings of shape ops."""
