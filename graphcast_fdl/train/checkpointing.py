"""Orbax checkpoints of the training state, and parameters for fine-tuning.

A checkpoint holds four items so that parameters can be read alone (to
fine-tune from them) and the rest only when resuming:
  params     model parameters
  opt_state  optimiser state
  loop       global step, rng, non-finite counters
  meta       JSON for people: phase name, rollout, experiment name
Checkpoints live in `<workdir>/checkpoints/<global step>`.
"""

from __future__ import annotations

import os

from absl import logging
import jax
import orbax.checkpoint as ocp

from graphcast_fdl.train.config import CheckpointConfig
from graphcast_fdl.train.train_step import TrainState

CHECKPOINT_SUBDIR = "checkpoints"
_ITEMS = ("params", "opt_state", "loop")


def _split(state: TrainState) -> dict:
  return {
      "params": state.params,
      "opt_state": state.opt_state,
      "loop": {"step": state.step, "rng": state.rng,
               "nonfinite_in_a_row": state.nonfinite_in_a_row,
               "nonfinite_total": state.nonfinite_total},
  }


def _join(items: dict) -> TrainState:
  loop = items["loop"]
  return TrainState(
      step=loop["step"], params=items["params"], opt_state=items["opt_state"],
      rng=loop["rng"], nonfinite_in_a_row=loop["nonfinite_in_a_row"],
      nonfinite_total=loop["nonfinite_total"])


def _abstract(tree):
  """Shape/dtype/sharding targets, so restore places arrays like the state."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpointer:
  """Periodic, phase-end and preemption saves; restore of the latest one."""

  def __init__(self, workdir: str, config: CheckpointConfig):
    self.directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_SUBDIR)
    self._every_steps = config.every_steps
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=config.max_to_keep, create=True,
            enable_async_checkpointing=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state: TrainState, meta: dict, force: bool = False) -> bool:
    """Saves at multiples of `every_steps`, or any step when `force`d."""
    step = int(state.step)
    if not force and (not self._every_steps or step % self._every_steps):
      return False
    if step in self._manager.all_steps():
      return False
    args = {k: ocp.args.StandardSave(v) for k, v in _split(state).items()}
    args["meta"] = ocp.args.JsonSave(meta)
    saved = self._manager.save(step, args=ocp.args.Composite(**args),
                               force=True)
    if saved:
      logging.info("Saving checkpoint at step %d (%s)", step, meta)
    return saved

  def restore(self, target: TrainState, step: int | None = None) -> TrainState:
    """The state at `step` (default latest), laid out like `target`."""
    step = self.latest_step() if step is None else step
    items = {k: ocp.args.StandardRestore(_abstract(v))
             for k, v in _split(target).items()}
    restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    return _join({k: restored[k] for k in _ITEMS})

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def checkpoint_directory(path: str) -> str:
  """`path` itself if it holds numbered steps, else its `checkpoints/`."""
  sub = os.path.join(path, CHECKPOINT_SUBDIR)
  return sub if os.path.isdir(sub) else path


def load_params(path: str, target_params, step: int | None = None):
  """Parameters alone from one of our runs (a workdir or its checkpoints dir).

  Args:
    path: workdir or checkpoint directory of an earlier run.
    target_params: parameters (or shape structs with shardings) to match.
    step: which checkpoint (default the latest).
  """
  directory = checkpoint_directory(os.path.abspath(path))
  with ocp.CheckpointManager(directory) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"init_checkpoint: no checkpoint in {directory}")
    restored = manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(_abstract(target_params))))
  return restored["params"]
