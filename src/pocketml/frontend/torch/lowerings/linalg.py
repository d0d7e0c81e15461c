"""Lowerings of linalg ops."""
