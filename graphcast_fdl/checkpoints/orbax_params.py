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
      restored = restore_verified(manager, step, {PARAMS_ITEM: target_params}, meta_required=False)
    except integrity.CheckpointDamaged as e:
      raise integrity.CheckpointDamaged(f"{where.format(step=step)} is damaged: {e}") from e
  return restored[PARAMS_ITEM]


def restore_verified(manager, step: int, targets: dict, meta_required: bool = True) -> dict:
  """Items `targets` names ({item: tree}) of checkpoint `step`, laid out like
  them, checked against the shapes and checksums saved in its meta item.

  The trainer (its whole state) and `load` (parameters alone) both restore
  through here, so both verify alike.

  Raises:
    integrity.CheckpointDamaged: the meta is unreadable (or absent while
      `meta_required`), or an array does not read back as it was written.
    integrity.CheckpointMismatch: saved shapes differ from the targets'.
  """
  try:
    if not meta_required and not os.path.isdir(os.path.join(manager.directory, str(step), "meta")):
      meta = {}
    else:
      meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
      if meta is None and not meta_required:
        meta = {}
      if not isinstance(meta, dict):
        raise integrity.CheckpointDamaged("its meta item is not a JSON object")
  except Exception as e:  # pylint: disable=broad-except
    raise integrity.CheckpointDamaged(f"unreadable meta ({integrity.first_line(e)})") from e
  integrity.check_shapes(meta, targets, step)
  args = {k: ocp.args.StandardRestore(abstract(v)) for k, v in targets.items()}
  try:
    restored = manager.restore(step, args=ocp.args.Composite(**args))
    restored = {k: restored[k] for k in targets}
  except Exception as e:  # pylint: disable=broad-except
    raise integrity.CheckpointDamaged(integrity.first_line(e)) from e
  integrity.check_sums(meta, restored, step)
  return restored
