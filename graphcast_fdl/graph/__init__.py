"""Icosahedral multi-mesh and grid<->mesh graphs (numpy/scipy, cached on disk)."""
