"""TFDS builder: ERA5 (or any WeatherBench-2-style store) as 6-hourly frames.

Reads a zarr store or netCDF file in place (see `graphcast_fdl.data.
xarray_frames` for the layouts and checks: regular grid, 6-hourly steps
without gaps, variables and levels present, no NaNs) and writes one
array_record record per time.

The full 0.25 deg record is terabytes, so a build covers one time range:
`shard_configs` splits a range into independent chunk configs (e.g. one per
year) that separate workers build in parallel, each into its own TFDS folder;
`DataConfig(source="era5", path="NAME1,NAME2,...")` reads the chunks as one
series. Users who cannot copy the store use `source="zarr"` instead.
"""

from __future__ import annotations

import dataclasses
import os

from etils import epath
import numpy as np
import pandas as pd
import tensorflow_datasets as tfds

from graphcast_fdl import task as task_lib
from graphcast_fdl.data import frames as frames_lib
from graphcast_fdl.data import solar_radiation
from graphcast_fdl.data import sources
from graphcast_fdl.data import tfds_layout
from graphcast_fdl.data import xarray_frames
from graphcast_fdl.data.config import DataConfig

VARIABLES = (
    task_lib.SURFACE_TARGETS
    + (task_lib.PRECIPITATION,)
    + task_lib.ATMOSPHERIC
    + ("toa_incident_solar_radiation",)
)


@dataclasses.dataclass(eq=False)
class Era5Config(tfds.core.BuilderConfig):
  """What to copy from which store.

  Attributes:
    path: zarr store or netCDF file.
    resolution / include_poles: target grid (a multiple of the store's spacing).
    pressure_levels: hPa levels to keep.
    variables: stored variables (TOA radiation is computed where absent).
    splits: {split name: "START/END" datetimes, inclusive}.
  """

  path: str = ""
  resolution: float = 1.0
  include_poles: bool = True
  pressure_levels: tuple[int, ...] = task_lib.PRESSURE_LEVELS_13
  variables: tuple[str, ...] = VARIABLES
  splits: tuple[tuple[str, str], ...] = (
      ("train", "1979-01-01/2017-12-31T18"),
      ("validation", "2018-01-01/2018-12-31T18"),
  )


def default_name(resolution, include_poles, pressure_levels) -> str:
  poles = "" if include_poles else "_nopoles"
  return f"{resolution:g}deg{poles}_{len(pressure_levels)}lev".replace(".", "p")


def shard_configs(base: Era5Config, start: str, end: str, freq: str = "YS") -> list[Era5Config]:
  """Independent chunk configs covering [start, end], one split "train" each."""
  edges = list(pd.date_range(start, end, freq=freq))
  if not edges or edges[0] > pd.Timestamp(start):
    edges.insert(0, pd.Timestamp(start))
  configs = []
  for i, first in enumerate(edges):
    last = (
        (edges[i + 1] - pd.Timedelta(task_lib.TIME_STEP))
        if i + 1 < len(edges)
        else pd.Timestamp(end)
    )
    name = f"{base.name}_{first:%Y%m%d}"
    configs.append(
        dataclasses.replace(
            base, name=name, splits=(("train", f"{first:%Y-%m-%dT%H}/{last:%Y-%m-%dT%H}"),)
        )
    )
  return configs


class Builder(tfds.core.GeneratorBasedBuilder):
  """ERA5 frames, one record per 6-hourly time."""

  name = "era5"
  pkg_dir_path = epath.Path(__file__).parent
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "One frame per record; grid/levels/splits in metadata."}

  def _task(self):
    cfg = self.builder_config
    return dataclasses.replace(task_lib.task_13(), pressure_levels=cfg.pressure_levels)

  def _open(self, split_range: str):
    cfg = self.builder_config
    return xarray_frames.open_frames(
        cfg.path,
        split_range,
        self._task(),
        cfg.resolution,
        cfg.include_poles,
        variables=tuple(
            v for v in cfg.variables if v != "toa_incident_solar_radiation" or _has(cfg.path, v)
        ),
    )

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    opened = {name: self._open(rng) for name, rng in cfg.splits}
    first = next(iter(opened.values()))
    statics = tuple(first.statics)
    splits = {name: (str(f.datetimes[0]), len(f)) for name, f in opened.items()}
    surface = first.surface + (
        () if "toa_incident_solar_radiation" in first.surface else ("toa_incident_solar_radiation",)
    )
    return self.dataset_info_from_configs(
        features=tfds_layout.frame_features(
            len(first.lat), len(first.lon), len(first.levels), first.atmospheric, surface, statics
        ),
        metadata=tfds_layout.frame_metadata(
            first.lat, first.lon, first.levels, first.atmospheric, surface, statics, splits
        ),
        disable_shuffling=True,
    )

  def download_and_prepare(self, *args, **kwargs):
    with tfds_layout.uncompressed_array_record():
      super().download_and_prepare(*args, **kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager
    return {name: self._generate_examples(rng) for name, rng in self.builder_config.splits}

  def _generate_examples(self, split_range):
    frames = self._open(split_range)
    statics = frames.statics
    for index, time in enumerate(frames.datetimes):
      fields = frames.frame(index)
      if "toa_incident_solar_radiation" not in fields:
        fields["toa_incident_solar_radiation"] = solar_radiation.toa_incident_solar_radiation(
            [time], frames.lat, frames.lon
        )[0]
      yield index, tfds_layout.frame_record(time, fields, statics)


def _has(path, variable):
  return variable in xarray_frames.open_store(path).data_vars


def make_builder(config: Era5Config, data_dir: str | None = None) -> Builder:
  return Builder(config=config, data_dir=data_dir, file_format="array_record")


class ConcatFrames(frames_lib.Frames):
  """Chunks built by separate workers, read as one time series."""

  def __init__(self, parts):
    self._parts = list(parts)
    first = self._parts[0]
    self.datetimes = np.concatenate([p.datetimes for p in self._parts])
    if np.any(np.diff(self.datetimes) <= np.timedelta64(0)):
      raise frames_lib.DataError("era5 chunks overlap or are out of time order")
    self.lat, self.lon, self.levels = first.lat, first.lon, first.levels
    self.atmospheric, self.surface = first.atmospheric, first.surface
    self._offsets = np.cumsum([0] + [len(p) for p in self._parts])

  @property
  def statics(self):
    return self._parts[0].statics

  def frame(self, index):
    part = int(np.searchsorted(self._offsets, index, side="right") - 1)
    return self._parts[part].frame(index - self._offsets[part])


def find_builder(data_dir, resolution, include_poles, pressure_levels, name=None):
  """The prepared dataset of one built config (clear error if absent)."""
  name = name or default_name(resolution, include_poles, pressure_levels)
  root = epath.Path(data_dir or tfds.core.constants.DATA_DIR) / "era5" / name
  versions = sorted(root.iterdir()) if root.exists() else []
  if not versions:
    raise frames_lib.DataError(
        f"era5 dataset {name!r} is not built under {root.parent}: build it with "
        "datasets/era5 (make_builder(Era5Config(name=..., path=STORE)).download_and_prepare()) "
        "or read the store directly with DataConfig(source='zarr', path=STORE)"
    )
  return tfds.builder_from_directory(str(versions[-1]))


def open_frames(data_dir, resolution, include_poles, pressure_levels, names, split):
  """Frames of one or more built configs ("NAME1,NAME2": chunks in time order)."""
  names = [n for n in (names or "").split(",") if n] or [None]
  builders = [find_builder(data_dir, resolution, include_poles, pressure_levels, n) for n in names]
  # Chunks built per year hold one split each: take those that have `split`.
  having = [b for b in builders if split in b.info.metadata["splits"]] or builders[:1]
  parts = [frames_lib.TfdsFrames(b, split) for b in having]
  return parts[0] if len(parts) == 1 else ConcatFrames(parts)


def _builder_for(data: DataConfig, task: task_lib.TaskConfig):
  """The first built config a DataConfig(source="era5") names."""
  name = (data.path or "").split(",")[0] or None
  return find_builder(
      data.data_dir, data.resolution, data.include_poles, task.pressure_levels, name=name
  )


def _check_built(data: DataConfig, task: task_lib.TaskConfig) -> None:
  """Built beforehand (a large download): prepare only checks it exists."""
  _builder_for(data, task)


sources.register(
    "era5",
    sources.Source(
        frames=lambda data, task, split: open_frames(
            data.data_dir,
            data.resolution,
            data.include_poles,
            task.pressure_levels,
            data.path,
            split,
        ),
        prepare=_check_built,
        stats_dir=lambda data, task: os.path.join(
            str(_builder_for(data, task).data_dir), "stats", data.train_split
        ),
    ),
)
