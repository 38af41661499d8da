"""Import and export of the published GraphCast `.npz` checkpoint format."""
