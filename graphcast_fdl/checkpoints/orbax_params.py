"""Parameters alone from our Orbax checkpoints, for fine-tuning and evaluation.

`train.checkpointing` writes each step as composite items under
`<workdir>/checkpoints/<step>`; this module reads just the `params` item, so
loading weights needs neither the optimiser state nor the trainer.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp

CHECKPOINT_SUBDIR = "checkpoints"
PARAMS_ITEM = "params"


def checkpoint_directory(path: str) -> str:
  """`path` itself if it holds numbered steps, else its `checkpoints/`."""
  sub = os.path.join(path, CHECKPOINT_SUBDIR)
  return sub if os.path.isdir(sub) else path


def abstract(tree):
  """Shape/dtype/sharding targets, so a restore places arrays like `tree`."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def load(path: str, target_params, step: int | None = None,
         field: str = "init_checkpoint"):
  """Parameters of one of our runs (a workdir or its checkpoints dir).

  Args:
    path: workdir or checkpoint directory of an earlier run.
    target_params: parameters (or shape structs with shardings) to match.
    step: which checkpoint (default the latest).
    field: the setting `path` came from, named in errors.

  Raises:
    FileNotFoundError: naming `field` and the directory when it has no step.
  """
  directory = checkpoint_directory(os.path.abspath(path))
  with ocp.CheckpointManager(directory) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{field}: no checkpoint in {directory}")
    restored = manager.restore(step, args=ocp.args.Composite(**{
        PARAMS_ITEM: ocp.args.StandardRestore(abstract(target_params))}))
  return restored[PARAMS_ITEM]
