"""`finetune_from`: stop before training when the weights were trained for
another function (see `checkpoints.compatibility`)."""

from __future__ import annotations

import os

import fiddle as fdl
from fiddle.experimental import serialization

from graphcast_fdl.checkpoints import compatibility
from graphcast_fdl.checkpoints import npz_format
from graphcast_fdl.cli.errors import UsageError


def _run_config(path: str) -> str:
  """config.json of the run whose workdir (or checkpoints/ folder) is `path`."""
  path = os.path.abspath(path)
  for folder in (path, os.path.dirname(path)):
    candidate = os.path.join(folder, "config.json")
    if os.path.exists(candidate):
      return candidate
  raise UsageError(
      f"init_checkpoint={path}: no config.json in it or its "
      "parent, so its model and task cannot be checked"
  )


def check(experiment) -> None:
  """One-line UsageError when `experiment.init_checkpoint` was trained with
  a model or task that computes a different function."""
  path = experiment.init_checkpoint
  if path is None:
    return
  try:
    if path.endswith(".npz"):
      found = compatibility.npz_differences(path, experiment.model, experiment.task)
    else:
      with open(_run_config(path)) as f:
        trained = fdl.build(serialization.load_json(f.read()))
      found = compatibility.differences(
          trained.model, trained.task, experiment.model, experiment.task
      )
  except (FileNotFoundError, npz_format.CheckpointError) as e:
    raise UsageError(f"init_checkpoint={path}: {e}") from e
  if found:
    raise UsageError(
        f"init_checkpoint={path} was trained for another function: "
        + "; ".join(found)
        + " (set the experiment's fields to the "
        "checkpoint's to fine-tune it)"
    )
