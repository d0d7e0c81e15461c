"""Lowerings of recurrent ops."""
