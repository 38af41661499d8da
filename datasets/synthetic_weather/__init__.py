"""Synthetic weather TFDS builder."""
