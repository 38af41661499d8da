"""TFDS builder: synthetic 6-hourly weather with the full GraphCast variable set.

Made offline in seconds on any grid and level set (see `simulation.py` for
the dynamics), for the `demo` config, the tests and anyone without ERA5.
The validation split follows the training one in time, from an independent
random draw. Build from the command line (array_record needs no TensorFlow):

  python -c "from graphcast_fdl.datasets.synthetic_weather import \
      synthetic_weather_dataset_builder as b; b.make_builder(4.0).download_and_prepare()"
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from graphcast_fdl import task as task_lib
from graphcast_fdl import grid
from graphcast_fdl.data import frames as frames_lib
from graphcast_fdl.data import sources
from graphcast_fdl.data import tfds_layout
from graphcast_fdl.data.config import DataConfig
from graphcast_fdl.datasets.synthetic_weather import simulation

STATICS = ("geopotential_at_surface", "land_sea_mask")
SURFACE = (
    "2m_temperature",
    "mean_sea_level_pressure",
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    "total_precipitation_6hr",
    "toa_incident_solar_radiation",
)
ATMOSPHERIC = task_lib.ATMOSPHERIC


@dataclasses.dataclass(eq=False)
class SyntheticWeatherConfig(tfds.core.BuilderConfig):
  """Grid, levels and length of the synthetic record.

  Attributes:
    resolution: grid spacing in degrees (4 = 46 x 90 with poles).
    include_poles: rows at +-90 deg.
    pressure_levels: hPa, any set.
    train_days / validation_days: length of the splits (4 frames a day).
    start: first datetime of the training split.
    seed: random forcing of the trajectory.
  """

  resolution: float = 4.0
  include_poles: bool = True
  pressure_levels: tuple[int, ...] = task_lib.PRESSURE_LEVELS_13
  train_days: int = 120
  validation_days: int = 30
  start: str = "2016-01-01T00:00:00"
  seed: int = 0

  @property
  def num_frames(self) -> dict[str, int]:
    return {"train": 4 * self.train_days, "validation": 4 * self.validation_days}

  @property
  def split_starts(self) -> dict[str, np.datetime64]:
    start = np.datetime64(self.start, "s")
    return {"train": start, "validation": start + task_lib.TIME_STEP * self.num_frames["train"]}


def config_name(
    resolution: float,
    include_poles: bool,
    pressure_levels,
    train_days: int,
    validation_days: int,
    seed: int,
) -> str:
  """A readable, unique name, e.g. `4deg_13lev_f8e1_120d30d_s0`."""
  levels = ",".join(str(int(x)) for x in pressure_levels)
  digest = hashlib.sha1(levels.encode()).hexdigest()[:4]
  poles = "" if include_poles else "_nopoles"
  return (
      f"{resolution:g}deg{poles}_{len(pressure_levels)}lev_{digest}_"
      f"{train_days}d{validation_days}d_s{seed}"
  ).replace(".", "p")


def make_config(
    resolution: float = 4.0,
    include_poles: bool = True,
    pressure_levels=task_lib.PRESSURE_LEVELS_13,
    train_days: int = 120,
    validation_days: int = 30,
    seed: int = 0,
) -> SyntheticWeatherConfig:
  name = config_name(resolution, include_poles, pressure_levels, train_days, validation_days, seed)
  return SyntheticWeatherConfig(
      name=name,
      resolution=float(resolution),
      include_poles=include_poles,
      pressure_levels=tuple(int(x) for x in pressure_levels),
      train_days=train_days,
      validation_days=validation_days,
      seed=seed,
      description=f"synthetic weather, {name}",
  )


class Builder(tfds.core.GeneratorBasedBuilder):
  """Synthetic weather frames, one record per 6-hourly time."""

  name = "synthetic_weather"
  # This folder installs as `graphcast_fdl.datasets`: TFDS cannot infer it.
  pkg_dir_path = epath.Path(__file__).parent
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Advected two-mode anomalies on an analytic climate."}
  BUILDER_CONFIGS = [
      make_config(4.0),
      make_config(6.0, pressure_levels=(500, 850, 1000), train_days=10, validation_days=5),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    lat, lon = grid.grid_coords(cfg.resolution, cfg.include_poles)
    splits = {k: (str(cfg.split_starts[k]), cfg.num_frames[k]) for k in cfg.num_frames}
    return self.dataset_info_from_configs(
        features=tfds_layout.frame_features(
            len(lat), len(lon), len(cfg.pressure_levels), ATMOSPHERIC, SURFACE, STATICS
        ),
        metadata=tfds_layout.frame_metadata(
            lat, lon, cfg.pressure_levels, ATMOSPHERIC, SURFACE, STATICS, splits
        ),
        disable_shuffling=True,
    )

  def download_and_prepare(self, *args, **kwargs):
    with tfds_layout.uncompressed_array_record():
      super().download_and_prepare(*args, **kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing is downloaded.
    return {split: self._generate_examples(split) for split in ("train", "validation")}

  def _generate_examples(self, split):
    cfg = self.builder_config
    lat, lon = grid.grid_coords(cfg.resolution, cfg.include_poles)
    statics = simulation.statics(lat, lon)
    # Validation continues in time but from an independent draw (the
    # simulation starts in its stationary state, so it needs no spin-up).
    seed = cfg.seed if split == "train" else cfg.seed + 1000
    frames = simulation.simulate(
        lat, lon, cfg.pressure_levels, cfg.split_starts[split], cfg.num_frames[split], seed=seed
    )
    for index, (time, fields) in enumerate(frames):
      yield index, tfds_layout.frame_record(time, fields, statics)


def make_builder(
    resolution: float = 4.0,
    include_poles: bool = True,
    pressure_levels=task_lib.PRESSURE_LEVELS_13,
    data_dir: str | None = None,
    **kwargs,
) -> Builder:
  """The builder for one grid / level set (not yet prepared)."""
  config = make_config(resolution, include_poles, pressure_levels, **kwargs)
  # TFDS refuses a new config object named like a predefined one: pass the name.
  if config.name in {c.name for c in Builder.BUILDER_CONFIGS}:
    config = config.name
  return Builder(config=config, data_dir=data_dir, file_format="array_record")


def builder_for(data: DataConfig, task: task_lib.TaskConfig) -> Builder:
  """The builder of a DataConfig(source="synthetic_weather") and task."""
  train_days, validation_days = data.synthetic_days
  return make_builder(
      data.resolution,
      data.include_poles,
      task.pressure_levels,
      data_dir=data.data_dir,
      train_days=train_days,
      validation_days=validation_days,
  )


def _frames(data: DataConfig, task: task_lib.TaskConfig, split: str):
  builder = builder_for(data, task)
  builder.download_and_prepare()
  return frames_lib.TfdsFrames(builder, split)


# Built locally on first use, so prepare builds it.
sources.register(
    "synthetic_weather",
    sources.Source(
        frames=_frames,
        prepare=lambda data, task: builder_for(data, task).download_and_prepare(),
        stats_dir=lambda data, task: os.path.join(
            str(builder_for(data, task).data_dir), "stats", data.train_split
        ),
    ),
)
