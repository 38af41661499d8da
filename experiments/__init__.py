"""Experiment configs, fiddlers and sweeps (flat registry)."""
