"""The whole experiment as one plain dataclass: what `fdl.build` returns."""

from __future__ import annotations

import dataclasses

from graphcast_fdl import task as task_lib
from graphcast_fdl.data.config import DataConfig
from graphcast_fdl.model.config import ModelConfig
from graphcast_fdl.train import config as train_config
from graphcast_fdl.train.schedule import Phase
from graphcast_fdl.train.schedule import Schedule


class ExperimentError(ValueError):
  """An experiment whose fields do not fit together; the message names them."""


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Model + task + data + device mesh + phase schedule + optimiser.

  Attributes:
    name: label for logs and workdirs.
    model: architecture and memory knobs.
    task: variables and pressure levels.
    data: the default data source (phases may override it).
    mesh: devices the global batch is split over.
    schedule: phases run in order.
    optimizer: AdamW settings shared by all phases.
    checkpoint: Orbax checkpoint cadence.
    eval: evaluation cadence and size.
    train: loop guards and diagnostics (non-finite steps, profiling).
    init_checkpoint: start from these weights (a published `.npz` or one of our
      checkpoints) instead of random init: fine-tuning is this one field.
    stats_dir: normalisation statistics (None: computed from the training split).
    log_every_steps: cadence of scalar metrics and progress lines.
    seed: parameter initialisation seed.
  """

  name: str
  model: ModelConfig
  task: task_lib.TaskConfig
  data: DataConfig
  schedule: Schedule
  mesh: train_config.MeshConfig = dataclasses.field(default_factory=train_config.MeshConfig)
  optimizer: train_config.OptimizerConfig = dataclasses.field(
      default_factory=train_config.OptimizerConfig
  )
  checkpoint: train_config.CheckpointConfig = dataclasses.field(
      default_factory=train_config.CheckpointConfig
  )
  eval: train_config.EvalConfig = dataclasses.field(default_factory=train_config.EvalConfig)
  train: train_config.TrainConfig = dataclasses.field(default_factory=train_config.TrainConfig)
  init_checkpoint: str | None = None
  stats_dir: str | None = None
  log_every_steps: int = 50
  seed: int = 0

  def __post_init__(self):
    validate(self)


@dataclasses.dataclass(frozen=True)
class PhaseSettings:
  """What a phase runs with: its overrides applied over the experiment's.

  Attributes:
    model: the experiment's model with the phase's precision and remat.
    data: the phase's data source, else the experiment's.
    eval_every_steps: the phase's evaluation cadence, else the experiment's.
    mesh: the experiment's mesh with the phase's spatial split.
  """

  model: ModelConfig
  data: DataConfig
  eval_every_steps: int
  mesh: train_config.MeshConfig


def phase_settings(experiment: Experiment, phase: Phase) -> PhaseSettings:
  """The one place a phase's overrides are resolved (trainer, estimator, cli)."""
  model = experiment.model
  if phase.precision is not None or phase.remat is not None:
    model = dataclasses.replace(
        model, precision=phase.precision or model.precision, remat=phase.remat or model.remat
    )
  mesh = experiment.mesh
  if phase.spatial is not None and phase.spatial != mesh.spatial:
    mesh = dataclasses.replace(mesh, spatial=phase.spatial)
  return PhaseSettings(
      model=model,
      data=phase.data or experiment.data,
      eval_every_steps=phase.eval_every_steps or experiment.eval.every_steps,
      mesh=mesh,
  )


def _check_split(
    spatial: int, spatial_field: str, num_devices: int | None, batch_size: int, batch_field: str
) -> None:
  """`spatial` devices per example and the batch over the rest must divide."""
  if not num_devices:
    return
  if num_devices % spatial:
    raise ExperimentError(
        f"{spatial_field}={spatial} does not divide mesh.num_devices="
        f"{num_devices}: use devices(n=..., spatial=...)"
    )
  if batch_size % (num_devices // spatial):
    raise ExperimentError(
        f"{batch_field}={batch_size} is not divisible by "
        f"mesh.num_devices={num_devices}"
        + (f" / {spatial_field}={spatial}" if spatial > 1 else "")
        + ": use devices(n=..., per_device_batch=...)"
    )


def validate(experiment: Experiment, num_visible_devices: int | None = None) -> None:
  """Raises ExperimentError naming the first field that does not fit."""
  data, model, mesh = experiment.data, experiment.model, experiment.mesh
  if data.resolution != model.resolution:
    raise ExperimentError(
        f"data.resolution={data.resolution} differs from model.resolution="
        f"{model.resolution}: use the resolution(degrees=...) fiddler to change both"
    )
  if data.include_poles != model.include_poles:
    raise ExperimentError(
        f"data.include_poles={data.include_poles} differs from "
        f"model.include_poles={model.include_poles}"
    )
  if experiment.log_every_steps < 1:
    raise ExperimentError(f"log_every_steps={experiment.log_every_steps}: must be >= 1")
  if data.global_batch_size < 1:
    raise ExperimentError(f"data.global_batch_size={data.global_batch_size}: must be >= 1")
  num_devices = mesh.num_devices or num_visible_devices
  if mesh.num_devices is not None and mesh.num_devices < 1:
    raise ExperimentError(f"mesh.num_devices={mesh.num_devices}: must be >= 1")
  _check_split(
      mesh.spatial, "mesh.spatial", num_devices, data.global_batch_size, "data.global_batch_size"
  )
  for span in experiment.schedule.spans():
    phase_data = span.phase.data
    if span.phase.spatial is not None or phase_data is not None:
      where = f"schedule.phases[{span.index}]"
      _check_split(
          phase_settings(experiment, span.phase).mesh.spatial,
          f"{where}.spatial" if span.phase.spatial is not None else "mesh.spatial",
          num_devices,
          (phase_data or data).global_batch_size,
          f"{where}.data.global_batch_size" if phase_data else "data.global_batch_size",
      )
    if phase_data is not None and phase_data.resolution != model.resolution:
      raise ExperimentError(
          f"schedule.phases[{span.index}].data.resolution={phase_data.resolution}"
          f" differs from model.resolution={model.resolution}"
      )
