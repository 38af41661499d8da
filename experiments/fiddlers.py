"""Fiddlers: named, parameterised edits of an experiment config.

Use them from the command line as `--config=fiddler:NAME(arg=value)`. Each one
changes every field that depends on what it edits, so a user never has to
know which fields move together.
"""

import copy

from absl import logging
import fiddle as fdl
from fiddle import selectors

from graphcast_fdl.analysis import fit
from graphcast_fdl.analysis import hardware as hardware_lib
from graphcast_fdl.model.config import ROLLOUT_KNOBS_OFF
from graphcast_fdl.train import schedule as schedule_lib
from graphcast_fdl.experiments import convert
from graphcast_fdl.experiments import tags

# Mesh refinement paired with each grid by default: the finest mesh edge
# should be comparable to the grid spacing (0.25 deg -> M6 as published,
# 1 deg -> M5 as GraphCast_small).
_DEFAULT_MESH_SIZE = {0.25: 6, 0.5: 6, 1.0: 5, 1.5: 5, 2.0: 4, 4.0: 3, 8.0: 2}


class FiddlerError(ValueError):
  """A fiddler was called with arguments that cannot apply to this config."""


def default_mesh_size(degrees: float) -> int:
  """Refinement whose finest edge is about the grid spacing or finer."""
  if degrees in _DEFAULT_MESH_SIZE:
    return _DEFAULT_MESH_SIZE[degrees]
  # Level-M edges are ~63.4 / 2**M degrees long (icosahedron edge ~63.4 deg).
  for mesh_size in range(0, 8):
    if 63.4 / 2**mesh_size <= 4 * degrees:
      return mesh_size
  return 7


def resolution(cfg: fdl.Config, degrees: float, mesh_size: int | None = None):
  """Changes the grid, the mesh refinement and every data source together."""
  if degrees <= 0 or (180 / degrees) % 1 or (360 / degrees) % 1:
    raise FiddlerError(f"resolution(degrees={degrees}): must divide both 180 and 360")
  selectors.select(cfg, tag=tags.Resolution).replace(value=float(degrees))
  cfg.model.mesh_size = default_mesh_size(float(degrees)) if mesh_size is None else mesh_size


def devices(cfg: fdl.Config, n: int, per_device_batch: int = 1, spatial: int = 1):
  """Trains on `n` devices, `spatial` of them sharing each example (a data x
  space mesh), with `per_device_batch` examples per group of `spatial`.

  A split (spatial > 1) turns off the rollout knobs the split model does not
  have (`model.config.ROLLOUT_KNOBS_OFF`).
  """
  if n < 1 or per_device_batch < 1 or spatial < 1:
    raise FiddlerError(
        f"devices(n={n}, per_device_batch={per_device_batch}, "
        f"spatial={spatial}): all must be >= 1"
    )
  if n % spatial:
    raise FiddlerError(f"devices(n={n}, spatial={spatial}): spatial must " "divide n")
  selectors.select(cfg, tag=tags.DeviceCount).replace(value=n)
  cfg.mesh.spatial = spatial
  if spatial > 1 and cfg.model.remat is not None:
    for name, value in ROLLOUT_KNOBS_OFF.items():
      setattr(cfg.model.remat, name, value)
  selectors.select(cfg, tag=tags.GlobalBatchSize).replace(value=n // spatial * per_device_batch)


def _phase_index(cfg: fdl.Config, name: str) -> int:
  names = [p.name for p in cfg.schedule.phases]
  if name not in names:
    raise FiddlerError(f"no phase named {name!r}; phases are {names}")
  return names.index(name)


def set_phase(
    cfg: fdl.Config,
    name: str,
    num_steps: int | None = None,
    rollout_steps: int | None = None,
    lr: float | None = None,
    spatial: int | None = None,
):
  """Edits one phase by name: its steps, rollout length, (peak) LR or the
  devices sharing each example in it (`spatial`; the batch stays as it is)."""
  phase = cfg.schedule.phases[_phase_index(cfg, name)]
  if spatial is not None:
    if isinstance(spatial, bool) or not isinstance(spatial, int) or spatial < 1:
      raise FiddlerError(f"set_phase({name!r}, spatial={spatial!r}): must be a whole number >= 1")
    phase.spatial = spatial
  if num_steps is not None:
    phase.num_steps = num_steps
  if rollout_steps is not None:
    phase.rollout_steps = rollout_steps
  if lr is not None:
    phase.learning_rate.peak = lr


def insert_phase(
    cfg: fdl.Config,
    name: str,
    num_steps: int,
    rollout_steps: int = 1,
    lr: float = 3e-7,
    after: str | None = None,
):
  """Inserts a constant-LR phase after the phase `after` (default: at the end)."""
  new = convert.as_config(
      schedule_lib.finetune(num_steps=num_steps, rollout_steps=rollout_steps, lr=lr, name=name)[0]
  )
  phases = list(cfg.schedule.phases)
  index = len(phases) if after is None else _phase_index(cfg, after) + 1
  phases.insert(index, new)
  cfg.schedule.phases = phases


def remove_phase(cfg: fdl.Config, name: str):
  """Removes one phase by name."""
  phases = list(cfg.schedule.phases)
  del phases[_phase_index(cfg, name)]
  cfg.schedule.phases = phases


def annealing(
    cfg: fdl.Config,
    max_rollout: int = 12,
    steps_each: int = 1000,
    lr: float = 3e-7,
    min_rollout: int = 2,
):
  """Replaces the multi-step phases with rollouts min_rollout..max_rollout."""
  if not 1 <= min_rollout <= max_rollout:
    raise FiddlerError(
        f"annealing(min_rollout={min_rollout}, max_rollout={max_rollout}): "
        "need 1 <= min_rollout <= max_rollout"
    )
  kept = [p for p in cfg.schedule.phases if p.rollout_steps == 1]
  new = convert.as_config(
      schedule_lib.annealing(range(min_rollout, max_rollout + 1), steps_each=steps_each, lr=lr)
  )
  cfg.schedule.phases = kept + new


def single_step_only(cfg: fdl.Config):
  """Keeps only the 1-step phases (e.g. to pre-train, then anneal elsewhere)."""
  cfg.schedule.phases = [p for p in cfg.schedule.phases if p.rollout_steps == 1]


def scale_steps(cfg: fdl.Config, factor: float):
  """Multiplies every phase's steps (and warm-up) by `factor`, at least 1."""
  if factor <= 0:
    raise FiddlerError(f"scale_steps(factor={factor}): must be > 0")
  for phase in cfg.schedule.phases:
    phase.num_steps = max(1, round(phase.num_steps * factor))
    warmup = getattr(phase.learning_rate, "warmup_steps", 0)
    if warmup:
      phase.learning_rate.warmup_steps = max(1, round(warmup * factor))


def finetune_from(cfg: fdl.Config, checkpoint: str):
  """Starts from existing weights (a published `.npz` or one of our runs)."""
  cfg.init_checkpoint = checkpoint


def precision(cfg: fdl.Config, dtype: str):
  """Compute precision of the model ("bfloat16" or "float32")."""
  cfg.model.precision = dtype


def fit_memory(
    cfg: fdl.Config, hardware: str = "tpu_v4", memory_gib: float | None = None, xla: bool = False
):
  """Gives every phase the fastest remat policy that fits device memory.

  Judged on `hardware` (its memory, or `memory_gib`) by the compiler's
  figures where the on-disk cache holds them (XLA:TPU for TPU hardware,
  written by `estimate --xla`), else by the estimator's analytic model; with
  `xla=True`, the compiler is run for the candidates it has not seen (minutes
  each at real sizes). Logs, per phase, which of the two decided. Long
  rollouts get more recomputation than single steps; a phase that fits under
  no policy gets the smallest-memory one, and `estimate` reports it as not
  fitting.
  """
  if hardware not in hardware_lib.names():
    raise FiddlerError(
        f"fit_memory: hardware={hardware!r}; choose from " f"{', '.join(hardware_lib.names())}"
    )
  if memory_gib is not None and memory_gib <= 0:
    raise FiddlerError(f"fit_memory: memory_gib={memory_gib} must be > 0")
  experiment = fdl.build(copy.deepcopy(cfg))
  budget = None if memory_gib is None else memory_gib * 2**30
  policies = fit.phase_policies(experiment, hardware, budget, xla=xla, progress=logging.info)
  for phase, policy in zip(cfg.schedule.phases, policies):
    phase.remat = convert.as_config(policy.remat)
    logging.info(
        "fit_memory: phase %s gets remat %s, peak %.2f GiB per device (%s; decided by %s)",
        policy.phase,
        policy.remat,
        policy.peak_bytes / 2**30,
        "fits" if policy.fits else "fits under no policy",
        policy.decided_by,
    )
