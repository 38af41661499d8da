"""Examples cut from frames: numpy for the loader, xarray for files.

`ExampleMaker` is the fast path the Grain pipelines read through; `window_dataset` cuts the
same window as xarray (the one place a window at an initial time is cut, for
training files, forecasts and evaluation) and `example_datasets` runs the
published extraction on it (`windowing.extract_inputs_targets_forcings`),
giving files with coordinates. Tests hold the two equal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_fdl import task as task_lib
from graphcast_fdl.data import assembly
from graphcast_fdl.data import forcings as forcings_lib
from graphcast_fdl.data import frames as frames_lib
from graphcast_fdl.data import solar_radiation
from graphcast_fdl.data import windowing
from graphcast_fdl.model.batch import Batch

DataError = frames_lib.DataError


def valid_starts(frames: frames_lib.Frames, length: int) -> np.ndarray:
  """First-frame indices of every window of `length` frames 6 h apart. [N]."""
  times = frames.datetimes
  if len(times) < length:
    return np.zeros((0,), np.int64)
  steps_ok = np.diff(times) == task_lib.TIME_STEP
  # A window starting at i needs steps i..i+length-2 all regular.
  bad = np.concatenate([[0], np.cumsum(~steps_ok)])
  starts = np.arange(len(times) - length + 1)
  return starts[bad[starts + length - 1] == bad[starts]]


def _check_sources(frames: frames_lib.Frames, task: task_lib.TaskConfig) -> None:
  available = set(frames.variables) | set(frames.statics) | set(forcings_lib.PROGRESS)
  available.add(forcings_lib.TOA)  # computed when absent
  needed = set(task.input_variables) | set(task.target_variables) | set(task.forcing_variables)
  missing = sorted(needed - available)
  if missing:
    raise DataError(
        f"variables {missing} are not in the data " f"(it has {sorted(frames.variables)})"
    )


class ExampleMaker:
  """Cuts windows of one rollout length from frames into Batch arrays."""

  def __init__(self, frames: frames_lib.Frames, task: task_lib.TaskConfig, rollout_steps: int):
    _check_sources(frames, task)
    self.frames = frames
    self.task = task
    self.rollout_steps = rollout_steps
    self.num_inputs = task_lib.input_frames(task)
    self.length = self.num_inputs + rollout_steps
    self.level_index = frames.level_indices(task.pressure_levels)
    self._levels_identity = np.array_equal(self.level_index, np.arange(len(frames.levels)))
    self.starts = valid_starts(frames, self.length)

  def _frame(self, index: int) -> dict[str, np.ndarray]:
    frame = self.frames.frame(index)
    if not self._levels_identity:
      frame = {
          k: (v[self.level_index] if k in self.frames.atmospheric else v) for k, v in frame.items()
      }
    return frame

  def example(self, start: int) -> Batch:
    """One example (no batch dim) whose first frame is `start`."""
    frames = [self._frame(i) for i in range(start, start + self.length)]
    datetimes = self.frames.datetimes[start : start + self.length]
    time_vars = {}
    for name in (
        set(self.task.input_variables)
        | set(self.task.target_variables)
        | set(self.task.forcing_variables)
    ):
      if name in frames[0]:
        time_vars[name] = np.stack([f[name] for f in frames])
    time_vars.update(forcings_lib.progress_features(datetimes, self.frames.lon))
    if forcings_lib.TOA not in time_vars and forcings_lib.TOA in (
        set(self.task.input_variables) | set(self.task.forcing_variables)
    ):
      time_vars[forcings_lib.TOA] = self._toa(datetimes)
    statics = self.frames.statics
    n = self.num_inputs

    def pick(names, times):
      out = {}
      for name in names:
        if name in statics:
          out[name] = np.asarray(statics[name], np.float32)
        else:
          out[name] = time_vars[name][times]
      return out

    return Batch(
        inputs=pick(self.task.input_variables, slice(0, n)),
        targets=pick(self.task.target_variables, slice(n, None)),
        forcings=pick(self.task.forcing_variables, slice(n, None)),
    )

  def _toa(self, datetimes):
    return solar_radiation.toa_incident_solar_radiation(datetimes, self.frames.lat, self.frames.lon)

  def batch(self, starts) -> Batch:
    """Examples stacked on a leading batch axis (read in place: `assembly`)."""
    return assembly.assemble(self, starts)

  def init_time(self, start: int) -> np.datetime64:
    """Datetime of the last input frame (lead time 0) of a window."""
    return self.frames.datetimes[start + self.num_inputs - 1]


def frames_dataset(frames: frames_lib.Frames, start: int, length: int, levels=None) -> xr.Dataset:
  """Frames [start, start+length) as a dataset in the published example layout.

  Dims (batch=1, time, level, lat, lon); time as timedeltas from the first frame;
  a `datetime` coordinate over (batch, time); statics over (lat, lon).
  """
  level_index = (
      frames.level_indices(levels) if levels is not None else np.arange(len(frames.levels))
  )
  loaded = [frames.frame(i) for i in range(start, start + length)]
  datetimes = frames.datetimes[start : start + length]
  data_vars = {}
  for name in frames.atmospheric:
    data = np.stack([f[name][level_index] for f in loaded])[None]
    data_vars[name] = (("batch", "time", "level", "lat", "lon"), data)
  for name in frames.surface:
    data_vars[name] = (("batch", "time", "lat", "lon"), np.stack([f[name] for f in loaded])[None])
  for name, value in frames.statics.items():
    data_vars[name] = (("lat", "lon"), np.asarray(value, np.float32))
  coords = {
      "time": pd.to_timedelta(datetimes - datetimes[0]).to_numpy(),
      "datetime": (("batch", "time"), datetimes.astype("datetime64[ns]")[None]),
      "lat": np.asarray(frames.lat, np.float32),
      "lon": np.asarray(frames.lon, np.float32),
      "level": np.asarray(frames.levels, np.int32)[level_index],
  }
  return xr.Dataset(data_vars, coords=coords)


def window_dataset(
    frames: frames_lib.Frames,
    task: task_lib.TaskConfig,
    init_index: int,
    rollout_steps: int,
    pad_past_end: bool = False,
) -> xr.Dataset:
  """The window whose last input frame is `init_index`, as `frames_dataset`.

  Args:
    frames: the split.
    task: for the input frames and levels.
    init_index: frame index of the initial time (lead time 0).
    rollout_steps: target frames after it.
    pad_past_end: target frames past the data's end become NaN frames with
      their datetimes (which the forcings need), as a forecast from the latest
      analysis has no targets; False: such a window is an error.

  Raises:
    DataError: naming the initial time when the window leaves the data or
      spans a time gap.
  """
  num_inputs = task_lib.input_frames(task)
  init_time = frames.datetimes[init_index]
  start = init_index - num_inputs + 1
  length = num_inputs + rollout_steps
  if start < 0:
    raise DataError(
        f"init time {init_time} has no {num_inputs - 1} earlier " "frame(s) in the data"
    )
  stored = min(length, len(frames) - start)
  if stored < length and not pad_past_end:
    raise DataError(
        f"init time {init_time} with rollout {rollout_steps} needs " "frames outside the data"
    )
  if start not in valid_starts(frames, stored):
    raise DataError(f"the window at init time {init_time} spans a time gap in " "the data")
  dataset = frames_dataset(frames, start, stored, task.pressure_levels)
  if stored < length:
    step = task_lib.TIME_STEP.astype("timedelta64[ns]")
    extra = np.arange(1, length - stored + 1)
    pad = dataset.isel(time=[-1] * (length - stored))
    pad = pad.map(lambda v: v * np.nan if "time" in v.dims else v)
    pad = pad.assign_coords(
        time=dataset.time.values[-1] + step * extra,
        datetime=(("batch", "time"), dataset.datetime.values[:, -1:] + step * extra),
    )
    dataset = xr.concat(
        [dataset, pad], dim="time", data_vars="minimal", coords="minimal", compat="override"
    )
  return dataset


def example_datasets(
    frames: frames_lib.Frames, task: task_lib.TaskConfig, rollout_steps: int, init_time
) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
  """(inputs, targets, forcings) datasets for the window whose last input is
  at `init_time`, via the published extraction."""
  init_time = np.datetime64(pd.Timestamp(init_time).to_datetime64(), "s")
  hits = np.flatnonzero(frames.datetimes == init_time)
  if not hits.size:
    raise DataError(
        f"init time {init_time} is not in the data "
        f"({frames.datetimes[0]} .. {frames.datetimes[-1]})"
    )
  dataset = window_dataset(frames, task, int(hits[0]), rollout_steps)
  return windowing.extract_inputs_targets_forcings(dataset, task, rollout_steps)
