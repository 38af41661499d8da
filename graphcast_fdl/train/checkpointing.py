"""Orbax checkpoints of the training state.

A checkpoint holds four items so that parameters can be read alone (to
fine-tune from them or evaluate, `checkpoints.load_params`) and the rest only
when resuming:
  params     model parameters
  opt_state  optimiser state
  loop       global step, rng, non-finite counters
  meta       JSON: phase name, rollout, experiment name for people; the shape
             and checksum of every saved array for the restore
and, when the data pipeline has a state, a fifth:
  data_iterator  the training input pipeline's state, one JSON file per
             process (Grain's Orbax checkpoint handler)
Checkpoints live in `<workdir>/checkpoints/<global step>`.

Weeks of training hang on these files, so a restore trusts none of them: the
meta item must read, every array must have the shape the config implies and
the checksum it was saved with. A damaged checkpoint is moved to
`<workdir>/damaged_checkpoints/` (kept for inspection, never deleted) and the
next older one is tried. A failed save raises `CheckpointSaveError`: the
checkpoints already written stay as they were.
"""

from __future__ import annotations

import os
import shutil

from absl import logging
import grain
import jax
import orbax.checkpoint as ocp

from graphcast_fdl import system
from graphcast_fdl.checkpoints import integrity
from graphcast_fdl.checkpoints import orbax_params
from graphcast_fdl.checkpoints.integrity import CheckpointDamaged
from graphcast_fdl.train.config import CheckpointConfig
from graphcast_fdl.train.train_step import TrainState

CHECKPOINT_SUBDIR = orbax_params.CHECKPOINT_SUBDIR
DAMAGED_SUBDIR = "damaged_checkpoints"
_ITEMS = (orbax_params.PARAMS_ITEM, "opt_state", "loop")
DATA_ITEM = "data_iterator"


class CheckpointSaveError(OSError):
  """A checkpoint could not be written (disk full, read-only, ...)."""


class _DropOrbaxInfo(logging.logging.Filter):
  """Orbax logs dozens of INFO lines per save; keep its warnings only, and
  those without tracebacks (a failed save logs one per thread; the trainer
  raises one error naming the cause)."""

  def filter(self, record):
    if f"{os.sep}orbax{os.sep}" not in record.pathname:
      return True
    if record.levelno <= logging.logging.INFO:
      return False
    if record.exc_info or len(record.getMessage()) > 300:
      record.msg, record.args = record.getMessage()[:300] + "...", ()
      record.exc_info, record.exc_text = None, None
    return True


def quiet_orbax() -> None:
  absl_logger = logging.get_absl_logger()
  if not any(isinstance(f, _DropOrbaxInfo) for f in absl_logger.filters):
    absl_logger.addFilter(_DropOrbaxInfo())


def _split(state: TrainState) -> dict:
  return {
      orbax_params.PARAMS_ITEM: state.params,
      "opt_state": state.opt_state,
      "loop": {
          "step": state.step,
          "rng": state.rng,
          "nonfinite_in_a_row": state.nonfinite_in_a_row,
          "nonfinite_total": state.nonfinite_total,
      },
  }


def _join(items: dict) -> TrainState:
  loop = items["loop"]
  return TrainState(
      step=loop["step"],
      params=items[orbax_params.PARAMS_ITEM],
      opt_state=items["opt_state"],
      rng=loop["rng"],
      nonfinite_in_a_row=loop["nonfinite_in_a_row"],
      nonfinite_total=loop["nonfinite_total"],
  )


class _SavedState:
  """An iterator's state taken when `save` is called: the async save writes
  it later, when the iterator itself has moved on."""

  def __init__(self, state: bytes):
    self._state = state

  def get_state(self) -> bytes:
    return self._state


def _os_cause(error: BaseException) -> str | None:
  """The strerror of the first OSError with an errno in the chain."""
  os_error = system.os_error_in_chain(error)
  return os.strerror(os_error.errno).lower() if os_error is not None else None


class Checkpointer:
  """Periodic, phase-end and preemption saves; restore of the newest intact one."""

  def __init__(self, workdir: str, config: CheckpointConfig):
    self.directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_SUBDIR)
    self.damaged_directory = os.path.join(os.path.abspath(workdir), DAMAGED_SUBDIR)
    self._every_steps = config.every_steps
    if os.path.exists(self.directory) and not os.path.isdir(self.directory):
      raise CheckpointSaveError(
          f"cannot save checkpoints: {self.directory} is a file, not a folder"
      )
    try:
      self._manager = ocp.CheckpointManager(
          self.directory,
          options=ocp.CheckpointManagerOptions(
              max_to_keep=config.max_to_keep, create=True, enable_async_checkpointing=True
          ),
      )
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointSaveError(
          f"cannot use checkpoint directory {self.directory}: " f"{integrity.first_line(e)}"
      ) from e

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(
      self, state: TrainState, meta: dict, force: bool = False, data_state: bytes | None = None
  ) -> bool:
    """Saves at multiples of `every_steps`, or any step when `force`d.

    `data_state`: the input pipeline's `get_state()` at this step, if any.
    """
    step = int(jax.device_get(state.step))
    if not force and (not self._every_steps or step % self._every_steps):
      return False
    if step in self._manager.all_steps():
      return False
    items = _split(state)
    meta = dict(meta, shapes=integrity.shapes(items), checksums=integrity.checksums(items))
    args = {k: ocp.args.StandardSave(v) for k, v in items.items()}
    args["meta"] = ocp.args.JsonSave(meta)
    if data_state is not None:
      args[DATA_ITEM] = grain.checkpoint.CheckpointSave(_SavedState(data_state))
    try:
      saved = self._manager.save(step, args=ocp.args.Composite(**args), force=True)
    except Exception as e:  # pylint: disable=broad-except
      raise self._save_error(step, e) from e
    if saved:
      logging.info(
          "Saving checkpoint at step %d (%s)",
          step,
          {k: v for k, v in meta.items() if k not in ("shapes", "checksums")},
      )
    return saved

  def _save_error(self, step, error) -> CheckpointSaveError:
    try:
      kept = ", ".join(map(str, self.all_steps())) or "none"
    except Exception:  # pylint: disable=broad-except
      kept = "unknown"
    return CheckpointSaveError(
        f"checkpoint saving failed at step {step} in {self.directory} "
        f"({_os_cause(error) or integrity.first_line(error)}); the checkpoints already "
        f"there are kept (steps: {kept})"
    )

  def restore(self, target: TrainState, step: int | None = None) -> TrainState:
    """The state at `step` (default latest), laid out like `target`, verified."""
    step = self.latest_step() if step is None else step
    items = orbax_params.restore_verified(self._manager, step, _split(target))
    return _join({k: items[k] for k in _ITEMS})

  def restore_iterator(self, step: int, iterator) -> bool:
    """Sets `iterator` to the input pipeline state saved at `step`.

    False (and `iterator` left as it was) when the checkpoint holds none for
    this process (saved before iterator states were, or by another number of
    processes) or it does not read: the order of the examples is a function
    of the step, so the caller's iterator, started at `step`, is the fallback.
    """
    if not os.path.isdir(os.path.join(self.directory, str(step), DATA_ITEM)):
      return False
    try:
      self._manager.restore(
          step, args=ocp.args.Composite(**{DATA_ITEM: grain.checkpoint.CheckpointRestore(iterator)})
      )
    except Exception as e:  # pylint: disable=broad-except
      logging.warning(
          "Input pipeline state of checkpoint step %d not used (%s): the data "
          "continues from the step instead",
          step,
          integrity.first_line(e),
      )
      return False
    return True

  def restore_latest_intact(self, target: TrainState) -> tuple[int | None, TrainState | None]:
    """(step, state) of the newest checkpoint that verifies, or (None, None).

    Damaged ones are reported in one line each and moved aside.
    """
    for step in reversed(self.all_steps()):
      try:
        return step, self.restore(target, step)
      except CheckpointDamaged as e:
        moved = self._set_aside(step)
        logging.warning(
            "Checkpoint step %d is damaged (%s): moved to %s; " "trying the next older one",
            step,
            e,
            moved,
        )
    return None, None

  def _set_aside(self, step: int) -> str:
    """Moves a step's folder out of Orbax's sight (process 0), all agree."""
    source = os.path.join(self.directory, str(step))
    destination = os.path.join(self.damaged_directory, str(step))
    suffix = 1
    while os.path.exists(destination):
      destination = os.path.join(self.damaged_directory, f"{step}.{suffix}")
      suffix += 1
    if jax.process_index() == 0:
      os.makedirs(self.damaged_directory, exist_ok=True)
      shutil.move(source, destination)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

      multihost_utils.sync_global_devices(f"set aside checkpoint {step}")
    self._manager.reload()
    return destination

  def wait(self) -> None:
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      raise self._save_error(self.latest_step(), e) from e

  def close(self) -> None:
    self.wait()
    self._manager.close()
