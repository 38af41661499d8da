"""TFDS builders, installed as `graphcast_fdl.datasets`."""
