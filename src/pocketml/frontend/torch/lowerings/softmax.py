"""Lowerings of softmax ops."""
