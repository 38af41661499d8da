"""Flax modules of the GraphCast encoder-processor-decoder and its loss."""
