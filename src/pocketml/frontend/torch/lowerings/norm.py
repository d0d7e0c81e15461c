"""Lowerings of norm ops."""
