"""ERA5 TFDS builder."""
