"""Parameters to evaluate: a published `.npz` or one of our Orbax checkpoints.

A published file carries its own model and task configs; they replace the
experiment's (our extra fields, precision, remat and edge blocks, stay the
experiment's), so `--config` only has to name the data. Our checkpoints are
read against the parameter shapes the experiment's model and task imply.
"""

from __future__ import annotations

import dataclasses
import os

from absl import logging

from graphcast_fdl.model import predictor as predictor_lib
from graphcast_fdl.model.config import ModelConfig
from graphcast_fdl.task import TaskConfig


class CheckpointNotFound(FileNotFoundError):
  """The --checkpoint path holds no checkpoint; the message names it."""


@dataclasses.dataclass(frozen=True)
class Loaded:
  params: object
  model: ModelConfig
  task: TaskConfig
  description: str


def load(path: str, model: ModelConfig, task: TaskConfig,
         step: int | None = None) -> Loaded:
  """Params and the configs they belong to.

  Args:
    path: a `.npz` file, a workdir, or its `checkpoints/` directory.
    model, task: the experiment's (used as is for our checkpoints).
    step: which Orbax step (default the latest).
  """
  if path.endswith(".npz"):
    from graphcast_fdl.checkpoints import npz_format  # pylint: disable=g-import-not-at-top
    if not os.path.exists(path):
      raise CheckpointNotFound(f"--checkpoint={path}: file not found")
    ours = {f: getattr(model, f) for f in ("include_poles", "precision", "remat",
                                           "edge_block_size")}
    checkpoint = npz_format.load(path, **ours)
    if checkpoint.task != task:
      logging.warning("Using the task stored in %s, not the experiment's", path)
    if checkpoint.model != model:
      logging.warning("Using the model config stored in %s: %s", path, checkpoint.model)
    return Loaded(checkpoint.params, checkpoint.model, checkpoint.task,
                  checkpoint.description or os.path.basename(path))
  if not os.path.isdir(path):
    raise CheckpointNotFound(f"--checkpoint={path}: no such directory or .npz file")
  from graphcast_fdl.train import checkpointing  # pylint: disable=g-import-not-at-top
  target = predictor_lib.param_shapes(model, task)
  try:
    params = checkpointing.load_params(path, target, step)
  except FileNotFoundError as e:
    raise CheckpointNotFound(f"--checkpoint={path}: {e}") from e
  return Loaded(params, model, task, os.path.abspath(path))
