"""The two config files every run leaves in its workdir."""

from __future__ import annotations

import os

import fiddle as fdl
from fiddle import printing
from fiddle.experimental import serialization


def write_config_files(cfg: fdl.Config, workdir: str) -> None:
  """config.json (Fiddle JSON, replayable) and config.txt (one field a line)."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(serialization.dump_json(cfg, indent=2))
  with open(os.path.join(workdir, "config.txt"), "w") as f:
    f.write(flattened(cfg) + "\n")


def flattened(cfg: fdl.Config) -> str:
  """One `path: type = value` line per field, as Fiddle prints it."""
  return printing.as_str_flattened(cfg)
