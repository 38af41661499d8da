"""The registered experiments: the published models and a CPU demo.

Each function returns an `fdl.Config[Experiment]`; nothing is allocated until
`fdl.build`, so the 0.25 deg configs are cheap to build and inspect.
"""

import fiddle as fdl

from graphcast_fdl import task as task_lib
from graphcast_fdl.data.config import DataConfig
from graphcast_fdl.model.config import ModelConfig, RematConfig
from graphcast_fdl.train import config as train_config
from graphcast_fdl.train import schedule as schedule_lib
from graphcast_fdl.train.experiment import Experiment

# Registers the TFDS builders' data sources the configs name.
from graphcast_fdl import datasets  # noqa: F401  (registers the TFDS data sources)
from graphcast_fdl.experiments import convert
from graphcast_fdl.experiments import tags

# WeatherBench 2 stores of HRES analyses (`hres_t0`), used by the operational
# model's extra fine-tune; reading it needs network access to that bucket.
HRES_T0_ZARR = "gs://weatherbench2/datasets/hres_t0/2016-2022-6h-1440x721.zarr"


def _experiment(name, model, task, data, schedule, num_devices, **kwargs):
  """An Experiment config with the resolution/device/batch tags attached."""
  cfg = convert.as_config(
      Experiment(
          name=name,
          model=model,
          task=task,
          data=data,
          schedule=schedule,
          mesh=train_config.MeshConfig(num_devices=num_devices),
          **kwargs,
      )
  )
  tag_dependent_fields(cfg)
  return cfg


def tag_dependent_fields(cfg: fdl.Config) -> None:
  """Tags every field a resolution or device-count change must touch."""
  fdl.add_tag(cfg.model, "resolution", tags.Resolution)
  fdl.add_tag(cfg.mesh, "num_devices", tags.DeviceCount)
  data_configs = [cfg.data] + [
      p.data for p in cfg.schedule.phases if isinstance(p.data, fdl.Config)
  ]
  for data in data_configs:
    fdl.add_tag(data, "resolution", tags.Resolution)
    fdl.add_tag(data, "global_batch_size", tags.GlobalBatchSize)


# The released GraphCast weights were trained with these graph settings (the
# values stored in their checkpoints); `finetune_from` refuses weights
# trained with others.
RELEASED_RADIUS_FRACTION = 0.5999912857713345
RELEASED_MESH2GRID_NORMALIZATION = 0.6180338738074472


def graphcast() -> fdl.Config:
  """GraphCast as published: 0.25 deg, 37 levels, mesh 6, on 32 TPU v4.

  Command: python -m graphcast_fdl.main estimate --config=config:graphcast
  Published cost: ~2 weeks of 1-step training + ~2 weeks of 2..12-step
  annealing on 32 TPU v4 (32 GB each), one example per chip. It fits 32 GB
  only with recomputation: every rollout step, every 3 processor steps, the
  whole encoder and decoder, and encoder/decoder edges in blocks. That
  published policy is kept here for every phase, with our rollout memory
  knobs (`model/rollout.py`): each rollout step keeps only its prediction,
  in host memory, and the targets and input frames wait in host memory (by
  XLA:TPU 79 -> 33 GiB per chip at 12 steps; rollouts are still over a v4
  chip's 32 GiB unsplit: benchmarks/RESULTS.md). Add
  `--config=fiddler:fit_memory()` to give each phase the fastest policy
  that fits, or `fiddler:devices(32, spatial=4)` to split each example.
  """
  model = ModelConfig(
      resolution=0.25,
      mesh_size=6,
      latent_size=512,
      gnn_msg_steps=16,
      radius_query_fraction_edge_length=RELEASED_RADIUS_FRACTION,
      mesh2grid_edge_normalization_factor=RELEASED_MESH2GRID_NORMALIZATION,
      precision="bfloat16",
      remat=RematConfig(
          rollout_step=True,
          processor_every_k=3,
          encoder_decoder=True,
          rollout_saves="prediction",
          offload_rollout=True,
          host_targets=True,
          host_inputs=True,
      ),
      edge_block_size=262_144,
  )
  data = DataConfig(source="era5", resolution=0.25, global_batch_size=32)
  return _experiment(
      "graphcast", model, task_lib.task_37(), data, schedule_lib.published(), num_devices=32
  )


def graphcast_small() -> fdl.Config:
  """GraphCast_small: 1 deg, 13 levels, mesh 5; about 1.5 days on 32 TPU v4.

  Command: python -m graphcast_fdl.main estimate --config=config:graphcast_small
  """
  model = ModelConfig(
      resolution=1.0,
      mesh_size=5,
      latent_size=512,
      gnn_msg_steps=16,
      radius_query_fraction_edge_length=RELEASED_RADIUS_FRACTION,
      mesh2grid_edge_normalization_factor=RELEASED_MESH2GRID_NORMALIZATION,
      precision="bfloat16",
      remat=RematConfig(rollout_step=True),
  )
  data = DataConfig(source="era5", resolution=1.0, global_batch_size=32)
  return _experiment(
      "graphcast_small", model, task_lib.task_13(), data, schedule_lib.published(), num_devices=32
  )


def graphcast_operational() -> fdl.Config:
  """GraphCast_operational: 0.25 deg, 13 levels, precipitation output only.

  Command: python -m graphcast_fdl.main estimate --config=config:graphcast_operational
  Same recipe as `graphcast` plus 30k 1-step steps on HRES analyses before the
  annealing (about one more day on 32 TPU v4).
  """
  cfg = graphcast()
  cfg.name = "graphcast_operational"
  cfg.task = convert.as_config(task_lib.task_13_precip_out())
  hres = DataConfig(source="zarr", path=HRES_T0_ZARR, resolution=0.25, global_batch_size=32)
  cfg.schedule = convert.as_config(schedule_lib.published(operational=True, finetune_data=hres))
  tag_dependent_fields(cfg)
  return cfg


def demo() -> fdl.Config:
  """A GraphCast small enough to train on a 2-core CPU in a few minutes.

  Command: python -m graphcast_fdl.main train --config=config:demo --workdir=/tmp/demo
  4 deg grid, mesh 3, latent 32, 4 processor steps, float32, on the locally
  built `synthetic_weather` dataset (13 levels, all GraphCast variables).
  Its schedule has the published shape at a tiny scale: 1-step training with
  warm-up and cosine decay, a 1-step fine-tune, then 2..4-step annealing.
  """
  model = ModelConfig(
      resolution=4.0, mesh_size=3, latent_size=32, gnn_msg_steps=4, precision="float32"
  )
  data = DataConfig(source="synthetic_weather", resolution=4.0, global_batch_size=2)
  schedule = schedule_lib.Schedule(
      phases=(
          schedule_lib.single_step(num_steps=300, warmup_steps=30, peak_lr=3e-3)
          + schedule_lib.finetune(num_steps=30, lr=3e-4)
          + schedule_lib.annealing(range(2, 5), steps_each=10, lr=3e-4)
      )
  )
  return _experiment(
      "demo",
      model,
      task_lib.task_13(),
      data,
      schedule,
      num_devices=1,
      checkpoint=train_config.CheckpointConfig(every_steps=100),
      eval=train_config.EvalConfig(every_steps=150, num_batches=4),
      log_every_steps=50,
  )
