"""A very small experiment on the real GraphCast predictor and synthetic data.

Shared by test_trainer_real.py and the worker processes it starts. 10 deg grid,
mesh 1, latent 16, 2 processor steps, 13 levels; a synthetic_weather record
of 12 + 4 days built in `data_dir` (a few seconds).
"""

import dataclasses

# Registers the synthetic_weather data source the worker processes read.
from graphcast_fdl import datasets  # noqa: F401  (registers the data sources)
from graphcast_fdl import task as task_lib
from graphcast_fdl.data.config import DataConfig
from graphcast_fdl.model.config import ModelConfig
from graphcast_fdl.train import config as train_config
from graphcast_fdl.train import schedule as schedule_lib
from graphcast_fdl.train.experiment import Experiment


def small_experiment(
    data_dir: str,
    num_devices: int = 1,
    global_batch_size: int = 4,
    spatial: int = 1,
    phase_spatial: dict | None = None,
) -> Experiment:
  """`phase_spatial`: {phase name: its spatial split} overrides."""
  data = DataConfig(
      source="synthetic_weather",
      resolution=10.0,
      data_dir=data_dir,
      global_batch_size=global_batch_size,
      synthetic_days=(12, 4),
      prefetch=1,
  )
  phases = (
      schedule_lib.single_step(8, warmup_steps=2, peak_lr=3e-3)
      + schedule_lib.finetune(3, lr=1e-3)
      + schedule_lib.annealing([2], steps_each=3, lr=1e-3)
  )
  phase_spatial = phase_spatial or {}
  phases = [dataclasses.replace(p, spatial=phase_spatial.get(p.name)) for p in phases]
  schedule = schedule_lib.Schedule(phases)
  return Experiment(
      name="small",
      data=data,
      schedule=schedule,
      task=task_lib.task_13(),
      model=ModelConfig(
          resolution=10.0, mesh_size=1, latent_size=16, gnn_msg_steps=2, precision="float32"
      ),
      mesh=train_config.MeshConfig(num_devices=num_devices, spatial=spatial),
      checkpoint=train_config.CheckpointConfig(every_steps=4, max_to_keep=2),
      eval=train_config.EvalConfig(every_steps=8, num_batches=1),
      log_every_steps=4,
  )


def prepare(data_dir: str) -> Experiment:
  """Builds the data (once per data_dir) and returns the experiment."""
  from graphcast_fdl import data as data_lib  # pylint: disable=g-import-not-at-top

  experiment = small_experiment(data_dir)
  data_lib.prepare(experiment.data, experiment.task)
  data_lib.normalization_stats(experiment.data, experiment.task)
  return experiment
