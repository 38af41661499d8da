"""Orbax checkpoints of the training state.

A checkpoint holds four items so that parameters can be read alone (to
fine-tune from them or evaluate, `checkpoints.load_params`) and the rest only
when resuming:
  params     model parameters
  opt_state  optimiser state
  loop       global step, rng, non-finite counters
  meta       JSON for people: phase name, rollout, experiment name
Checkpoints live in `<workdir>/checkpoints/<global step>`.
"""

from __future__ import annotations

import os

from absl import logging
import orbax.checkpoint as ocp

from graphcast_fdl.checkpoints import orbax_params
from graphcast_fdl.train.config import CheckpointConfig
from graphcast_fdl.train.train_step import TrainState

CHECKPOINT_SUBDIR = orbax_params.CHECKPOINT_SUBDIR
_ITEMS = (orbax_params.PARAMS_ITEM, "opt_state", "loop")


def _split(state: TrainState) -> dict:
  return {
      orbax_params.PARAMS_ITEM: state.params,
      "opt_state": state.opt_state,
      "loop": {"step": state.step, "rng": state.rng,
               "nonfinite_in_a_row": state.nonfinite_in_a_row,
               "nonfinite_total": state.nonfinite_total},
  }


def _join(items: dict) -> TrainState:
  loop = items["loop"]
  return TrainState(
      step=loop["step"], params=items[orbax_params.PARAMS_ITEM], opt_state=items["opt_state"],
      rng=loop["rng"], nonfinite_in_a_row=loop["nonfinite_in_a_row"],
      nonfinite_total=loop["nonfinite_total"])


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
    items = {k: ocp.args.StandardRestore(orbax_params.abstract(v))
             for k, v in _split(target).items()}
    restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    return _join({k: restored[k] for k in _ITEMS})

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
