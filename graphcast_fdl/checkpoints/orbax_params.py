"""Parameters alone from our Orbax checkpoints, for fine-tuning and evaluation.

`train.checkpointing` writes each step as composite items under
`<workdir>/checkpoints/<step>`; this module reads just the `params` item, so
loading weights needs neither the optimiser state nor the trainer.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp

from graphcast_fdl.checkpoints import integrity

CHECKPOINT_SUBDIR = "checkpoints"
PARAMS_ITEM = "params"


def checkpoint_directory(path: str) -> str:
  """`path` itself if it holds numbered steps, else its `checkpoints/`."""
  sub = os.path.join(path, CHECKPOINT_SUBDIR)
  return sub if os.path.isdir(sub) else path


def abstract(tree):
  """Shape/dtype/sharding targets, so a restore places arrays like `tree`."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def load(path: str, target_params, step: int | None = None, field: str = "init_checkpoint"):
  """Parameters of one of our runs (a workdir or its checkpoints dir).

  Args:
    path: workdir or checkpoint directory of an earlier run.
    target_params: parameters (or shape structs with shardings) to match.
    step: which checkpoint (default the latest).
    field: the setting `path` came from, named in errors.

  Raises:
    FileNotFoundError: naming `field` and the directory when it has no step,
      or not `step` (the message lists the steps kept).
    integrity.CheckpointDamaged: the meta or the arrays do not read back as
      written (checksums); integrity.CheckpointMismatch: saved shapes differ
      from `target_params`'.
  """
  directory = checkpoint_directory(os.path.abspath(path))
  where = f"{field}: checkpoint step {{step}} in {directory}"
  with ocp.CheckpointManager(directory) as manager:
    kept = sorted(manager.all_steps())
    if not kept:
      raise FileNotFoundError(f"{field}: no checkpoint in {directory}")
    if step is None:
      step = kept[-1]
    elif step not in kept:
      raise FileNotFoundError(
          f"{field}: no checkpoint at step {step} in {directory}; steps kept: "
          f"{', '.join(map(str, kept))}"
      )
    try:
      # Without a meta item (parameters written by another tool) there is
      # nothing to verify against; an unreadable one is damage.
      meta = (
          {}
          if not os.path.isdir(os.path.join(directory, str(step), "meta"))
          else manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
          or {}
      )
    except Exception as e:  # pylint: disable=broad-except
      raise integrity.CheckpointDamaged(
          f"{where.format(step=step)} is damaged: unreadable meta " f"({integrity.first_line(e)})"
      ) from e
    integrity.check_shapes(meta, {PARAMS_ITEM: target_params}, step)
    try:
      restored = manager.restore(
          step,
          args=ocp.args.Composite(
              **{PARAMS_ITEM: ocp.args.StandardRestore(abstract(target_params))}
          ),
      )
    except Exception as e:  # pylint: disable=broad-except
      raise integrity.CheckpointDamaged(
          f"{where.format(step=step)} is damaged: " f"{integrity.first_line(e)}"
      ) from e
  params = {PARAMS_ITEM: restored[PARAMS_ITEM]}
  saved = (meta.get("checksums") or {}).get(PARAMS_ITEM)
  try:
    integrity.check_sums({"checksums": {PARAMS_ITEM: saved}} if saved else {}, params, step)
  except integrity.CheckpointDamaged as e:
    raise integrity.CheckpointDamaged(f"{where.format(step=step)} is damaged: {e}") from e
  return params[PARAMS_ITEM]
