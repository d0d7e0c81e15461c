"""Lowerings of conv ops."""
