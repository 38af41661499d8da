"""Orbax checkpoints of the training state, and parameters for fine-tuning.

A checkpoint holds four items so that parameters can be read alone (to
fine-tune from them) and the rest only when resuming:
  params     model parameters
  opt_state  optimiser state
  loop       global step, rng, non-finite counters
  meta       JSON: phase name, rollout, experiment name for people; the shape
             and checksum of every saved array for the restore
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
import re
import shutil

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from graphcast_fdl.train.config import CheckpointConfig
from graphcast_fdl.train.train_step import TrainState

CHECKPOINT_SUBDIR = "checkpoints"
DAMAGED_SUBDIR = "damaged_checkpoints"
_ITEMS = ("params", "opt_state", "loop")


class CheckpointSaveError(OSError):
  """A checkpoint could not be written (disk full, read-only, ...)."""


class CheckpointDamaged(ValueError):
  """A checkpoint that does not read back as it was written."""


class CheckpointMismatch(ValueError):
  """A readable checkpoint of another model: the config changed, not the files."""


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


def _leaf_checksum(x) -> jax.Array:
  """A position-weighted sum of the array's bits, mod 2**32.

  Integer arithmetic wraps the same way whatever the summation order, so the
  value does not depend on the device count or sharding; any change of a
  single word changes it (the weights are odd).
  """
  x = jnp.asarray(x)
  width = x.dtype.itemsize
  if width == 8:
    words = jax.lax.bitcast_convert_type(x, jnp.uint32)
  else:
    unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}[width]
    if x.dtype == jnp.bool_:
      x = x.astype(jnp.uint8)
    words = jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32)
  words = words.reshape(-1)
  weights = jnp.arange(words.size, dtype=jnp.uint32) * jnp.uint32(
      2654435761) + jnp.uint32(1)
  weights = weights | jnp.uint32(1)
  return jnp.sum(words * weights, dtype=jnp.uint32)


_checksums_jit = jax.jit(lambda tree: jax.tree.map(_leaf_checksum, tree))


def _paths(tree) -> list[str]:
  return [jax.tree_util.keystr(p) for p, _ in
          jax.tree_util.tree_leaves_with_path(tree)]


def checksums(items: dict) -> dict[str, dict[str, int]]:
  """{item: {array path: checksum}} of a (possibly sharded) tree of items."""
  out = {}
  for name, tree in items.items():
    values = jax.tree.leaves(_checksums_jit(tree))
    values = [int(np.asarray(v.addressable_shards[0].data)) for v in values]
    out[name] = dict(zip(_paths(tree), values))
  return out


def shapes(items: dict) -> dict[str, dict[str, list[int]]]:
  return {name: {path: list(np.shape(leaf)) for path, leaf in zip(
      _paths(tree), jax.tree.leaves(tree))} for name, tree in items.items()}


def _first_line(error: BaseException, limit: int = 240) -> str:
  """`Type: first line`, shortened; an OS error code (tensorstore writes
  `[os_error_code='28']`) is spelled out instead of the long original."""
  text = str(error).strip().splitlines()
  text = text[0] if text else ""
  code = re.search(r"os_error_code='(\d+)'", text)
  if code:
    return os.strerror(int(code.group(1))).lower()
  if len(text) > limit:
    text = text[:limit] + "..."
  return f"{type(error).__name__}: {text}".rstrip(": ")


def _os_cause(error: BaseException) -> str | None:
  """The strerror of the first OSError with an errno in the chain."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno:
      return os.strerror(error.errno).lower()
    error = error.__cause__ or error.__context__
  return None


def _check_shapes(meta: dict, target: dict, step: int) -> None:
  """CheckpointMismatch if the saved shapes are not the target's."""
  saved = meta.get("shapes")
  if saved is None:  # Written before shapes were recorded.
    return
  wanted = shapes(target)
  for name in target:
    for path, shape in wanted[name].items():
      have = saved.get(name, {}).get(path)
      if have is not None and list(have) != shape:
        raise CheckpointMismatch(
            f"checkpoint step {step} holds {name}{path} of shape "
            f"{tuple(have)}, the config gives {tuple(shape)}: it was written "
            "by another model config")


def _check_sums(meta: dict, restored: dict, step: int) -> None:
  saved = meta.get("checksums")
  if saved is None:
    return
  got = checksums(restored)
  for name in restored:
    for path, value in got[name].items():
      if saved.get(name, {}).get(path) != value:
        raise CheckpointDamaged(
            f"checksum of {name}{path} differs from the one saved")


class Checkpointer:
  """Periodic, phase-end and preemption saves; restore of the newest intact one."""

  def __init__(self, workdir: str, config: CheckpointConfig):
    self.directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_SUBDIR)
    self.damaged_directory = os.path.join(os.path.abspath(workdir),
                                          DAMAGED_SUBDIR)
    self._every_steps = config.every_steps
    if os.path.exists(self.directory) and not os.path.isdir(self.directory):
      raise CheckpointSaveError(
          f"cannot save checkpoints: {self.directory} is a file, not a folder")
    try:
      self._manager = ocp.CheckpointManager(
          self.directory,
          options=ocp.CheckpointManagerOptions(
              max_to_keep=config.max_to_keep, create=True,
              enable_async_checkpointing=True))
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointSaveError(
          f"cannot use checkpoint directory {self.directory}: "
          f"{_first_line(e)}") from e

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, state: TrainState, meta: dict, force: bool = False) -> bool:
    """Saves at multiples of `every_steps`, or any step when `force`d."""
    step = int(jax.device_get(state.step))
    if not force and (not self._every_steps or step % self._every_steps):
      return False
    if step in self._manager.all_steps():
      return False
    items = _split(state)
    meta = dict(meta, shapes=shapes(items), checksums=checksums(items))
    args = {k: ocp.args.StandardSave(v) for k, v in items.items()}
    args["meta"] = ocp.args.JsonSave(meta)
    try:
      saved = self._manager.save(step, args=ocp.args.Composite(**args),
                                 force=True)
    except Exception as e:  # pylint: disable=broad-except
      raise self._save_error(step, e) from e
    if saved:
      logging.info("Saving checkpoint at step %d (%s)", step, {
          k: v for k, v in meta.items() if k not in ("shapes", "checksums")})
    return saved

  def _save_error(self, step, error) -> CheckpointSaveError:
    try:
      kept = ", ".join(map(str, self.all_steps())) or "none"
    except Exception:  # pylint: disable=broad-except
      kept = "unknown"
    return CheckpointSaveError(
        f"checkpoint saving failed at step {step} in {self.directory} "
        f"({_os_cause(error) or _first_line(error)}); the checkpoints already "
        f"there are kept (steps: {kept})")

  def read_meta(self, step: int) -> dict:
    restored = self._manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))
    meta = restored["meta"]
    if not isinstance(meta, dict):
      raise CheckpointDamaged("its meta item is not a JSON object")
    return meta

  def restore(self, target: TrainState, step: int | None = None) -> TrainState:
    """The state at `step` (default latest), laid out like `target`, verified."""
    step = self.latest_step() if step is None else step
    items = _split(target)
    try:
      meta = self.read_meta(step)
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointDamaged(f"unreadable meta ({_first_line(e)})") from e
    _check_shapes(meta, items, step)
    args = {k: ocp.args.StandardRestore(_abstract(v)) for k, v in items.items()}
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**args))
      restored = {k: restored[k] for k in _ITEMS}
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointDamaged(_first_line(e)) from e
    _check_sums(meta, restored, step)
    return _join(restored)

  def restore_latest_intact(self, target: TrainState
                            ) -> tuple[int | None, TrainState | None]:
    """(step, state) of the newest checkpoint that verifies, or (None, None).

    Damaged ones are reported in one line each and moved aside.
    """
    for step in reversed(self.all_steps()):
      try:
        return step, self.restore(target, step)
      except CheckpointDamaged as e:
        moved = self._set_aside(step)
        logging.warning("Checkpoint step %d is damaged (%s): moved to %s; "
                        "trying the next older one", step, e, moved)
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

  Raises:
    FileNotFoundError: no checkpoint there, or not at `step` (the message
      lists the steps kept).
    CheckpointDamaged, CheckpointMismatch: as for a resume.
  """
  directory = checkpoint_directory(os.path.abspath(path))
  with ocp.CheckpointManager(directory) as manager:
    kept = sorted(manager.all_steps())
    if not kept:
      raise FileNotFoundError(f"no checkpoint in {directory}")
    if step is None:
      step = kept[-1]
    elif step not in kept:
      raise FileNotFoundError(
          f"no checkpoint at step {step} in {directory}; steps kept: "
          f"{', '.join(map(str, kept))}")
    try:
      meta = manager.restore(step, args=ocp.args.Composite(
          meta=ocp.args.JsonRestore()))["meta"] or {}
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointDamaged(
          f"checkpoint step {step} in {directory} is damaged: unreadable "
          f"meta ({_first_line(e)})") from e
    _check_shapes(meta, {"params": target_params}, step)
    try:
      restored = manager.restore(step, args=ocp.args.Composite(
          params=ocp.args.StandardRestore(_abstract(target_params))))
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointDamaged(
          f"checkpoint step {step} in {directory} is damaged: "
          f"{_first_line(e)}") from e
  saved = (meta.get("checksums") or {}).get("params")
  try:
    if saved is not None:
      _check_sums({"checksums": {"params": saved}},
                  {"params": restored["params"]}, step)
  except CheckpointDamaged as e:
    raise CheckpointDamaged(
        f"checkpoint step {step} in {directory} is damaged: {e}") from e
  return restored["params"]
