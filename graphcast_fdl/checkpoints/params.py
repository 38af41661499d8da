"""One loader of model parameters: a published `.npz` or one of our runs.

Training (fine-tuning from `init_checkpoint`) and evaluation (`--checkpoint`)
both call `load_params`, so the choice between the two formats is made here
once. A published file carries its own model and task configs; ours are read
against the parameter shapes the given model and task imply.
"""

from __future__ import annotations

import dataclasses
import os

from absl import logging
import jax
import numpy as np

from graphcast_fdl.checkpoints import npz_format
from graphcast_fdl.checkpoints import orbax_params
from graphcast_fdl.model import predictor as predictor_lib
from graphcast_fdl.model.config import ModelConfig
from graphcast_fdl.task import TaskConfig

# ModelConfig fields the published format lacks: they stay the caller's.
OUR_MODEL_FIELDS = ("include_poles", "precision", "remat", "edge_block_size")


class CheckpointNotFound(FileNotFoundError):
  """The path holds no checkpoint; the message names the setting and path."""


@dataclasses.dataclass(frozen=True)
class LoadedParams:
  """Parameters with the model and task they belong to.

  Attributes:
    params: the parameter tree (placed like `target` when one was given).
    model, task: the file's configs for a `.npz`, else the caller's.
    description: the file's description, or the checkpoint path.
  """

  params: object
  model: ModelConfig
  task: TaskConfig
  description: str


def load_params(
    path: str,
    model: ModelConfig,
    task: TaskConfig,
    *,
    step: int | None = None,
    target=None,
    field: str = "--checkpoint",
) -> LoadedParams:
  """Parameters from a `.npz` file, a run's workdir or its `checkpoints/`.

  Args:
    path: where the parameters are.
    model, task: the experiment's; a `.npz` keeps their OUR_MODEL_FIELDS.
    step: which Orbax step (default the latest).
    target: parameters or shape structs (with shardings) the result must
      match and be placed like; None: the model and task's shapes, on the
      default device.
    field: the setting `path` came from, named in errors.

  Raises:
    CheckpointNotFound: nothing at `path`.
    ValueError: the parameters do not match `target` (npz_format's
      CheckpointError for a malformed file).
  """
  if path.endswith(".npz"):
    if not os.path.exists(path):
      raise CheckpointNotFound(f"{field}={path}: file not found")
    checkpoint = npz_format.load(path, **{f: getattr(model, f) for f in OUR_MODEL_FIELDS})
    if checkpoint.task != task:
      logging.warning("%s stores its own task; its parameters follow it", path)
    if checkpoint.model != model:
      logging.warning("%s stores its own model config: %s", path, checkpoint.model)
    params = checkpoint.params
    if target is not None:
      params = _place_like(params, target, f"{field}={path}")
    return LoadedParams(
        params, checkpoint.model, checkpoint.task, checkpoint.description or os.path.basename(path)
    )
  if not os.path.isdir(path):
    raise CheckpointNotFound(f"{field}={path}: no such directory or .npz file")
  if target is None:
    target = predictor_lib.param_shapes(model, task)
  try:
    params = orbax_params.load(path, target, step, field=field)
  except FileNotFoundError as e:
    raise CheckpointNotFound(f"{field}={path}: {e}") from e
  return LoadedParams(params, model, task, os.path.abspath(path))


def _place_like(params, target, what: str):
  """Host arrays -> device arrays with the target's shapes and shardings."""
  if jax.tree.map(np.shape, params) != jax.tree.map(np.shape, target):
    raise ValueError(
        f"{what}: its parameter shapes do not match " "experiment.model and experiment.task"
    )
  return jax.tree.map(
      lambda x, t: jax.make_array_from_callback(
          np.shape(x), t.sharding, lambda idx: np.asarray(x)[idx]
      ),
      params,
      target,
  )
