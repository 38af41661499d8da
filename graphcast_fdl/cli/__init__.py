"""Command-line subcommands: one module each, run by `graphcast_fdl.main`."""
