"""Normalisation statistics computed in one streaming pass over a split.

Per variable (and per level): mean and standard deviation over time, latitude
and longitude, and the standard deviation of 6-hourly differences (which
scales the residual targets). Only float64 running sums and the previous frame
are held, so memory does not grow with the record; `stride` subsamples
times for records too long to read whole (differences still use adjacent
frames). Output is the published `stats/` layout (`NormalizationStats`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from graphcast_fdl import task as task_lib
from graphcast_fdl.data import forcings as forcings_lib
from graphcast_fdl.data import frames as frames_lib
from graphcast_fdl.data import validation
from graphcast_fdl.data import solar_radiation
from graphcast_fdl.model.normalization_stats import NormalizationStats


class _Moments:
  """Running count, sum and sum of squares per leading (level) index."""

  def __init__(self):
    self.n = 0
    self.sum = 0.0
    self.sumsq = 0.0

  def add(self, values: np.ndarray, level_axis: bool) -> None:
    values = np.asarray(values, np.float64)
    axes = tuple(range(1, values.ndim)) if level_axis else None
    self.n += values[0].size if level_axis else values.size
    self.sum = self.sum + values.sum(axis=axes)
    self.sumsq = self.sumsq + np.square(values).sum(axis=axes)

  def mean(self):
    return self.sum / self.n

  def std(self):
    return np.sqrt(np.maximum(self.sumsq / self.n - np.square(self.mean()), 0.0))


def _time_fields(frames: frames_lib.Frames, index: int, toa_present: bool) -> dict:
  """Stored variables plus forcings derived from the time, at one frame."""
  fields = dict(frames.frame(index))
  time = frames.datetimes[index : index + 1]
  if not toa_present:
    fields[forcings_lib.TOA] = solar_radiation.toa_incident_solar_radiation(
        time, frames.lat, frames.lon
    )[0]
  fields["year_progress"] = forcings_lib.year_progress(time)
  fields["day_progress"] = forcings_lib.day_progress(time, frames.lon)[0]
  fields.update({k: v[0] for k, v in forcings_lib.progress_features(time, frames.lon).items()})
  return fields


def compute_stats(
    frames: frames_lib.Frames, stride: int = 1, max_frames: int | None = None
) -> NormalizationStats:
  """Mean, stddev and diffs stddev of every variable, forcing and static.

  Args:
    frames: the split to summarise.
    stride: use every `stride`-th frame (and its successor for differences).
    max_frames: stop after this many frames (None: all).
  """
  toa_present = forcings_lib.TOA in frames.variables
  moments, diff_moments = {}, {}
  indices = np.arange(0, len(frames), stride)
  if max_frames is not None:
    indices = indices[:max_frames]
  if not len(indices):
    raise frames_lib.DataError("cannot compute statistics of an empty split")
  times = frames.datetimes
  previous = None
  for index in map(int, indices):
    current = _time_fields(frames, index, toa_present)
    for name, value in current.items():
      moments.setdefault(name, _Moments()).add(value, name in frames.atmospheric)
    # A 6-hourly difference: with the previous frame when reading every frame,
    # else with the next one (read for this purpose only).
    pair = None
    if stride == 1:
      if previous is not None and times[index] - times[index - 1] == task_lib.TIME_STEP:
        pair = (previous, current)
      previous = current
    elif index + 1 < len(frames) and times[index + 1] - times[index] == task_lib.TIME_STEP:
      pair = (current, _time_fields(frames, index + 1, toa_present))
    if pair is not None:
      for name in current:
        diff_moments.setdefault(name, _Moments()).add(
            pair[1][name] - pair[0][name], name in frames.atmospheric
        )
  statics = frames.statics
  levels = np.asarray(frames.levels, np.int32)
  out = {"mean": {}, "stddev": {}, "diffs_stddev": {}}
  for name, m in moments.items():
    dims = ("level",) if name in frames.atmospheric else ()
    out["mean"][name] = (dims, np.float32(m.mean()) if not dims else m.mean().astype(np.float32))
    out["stddev"][name] = (dims, np.asarray(m.std(), np.float32))
    d = diff_moments.get(name)
    out["diffs_stddev"][name] = (
        dims,
        np.asarray(d.std() if d else np.ones_like(m.std()), np.float32),
    )
  for name, value in statics.items():
    value = np.asarray(value, np.float64)
    out["mean"][name] = ((), np.float32(value.mean()))
    out["stddev"][name] = ((), np.float32(value.std()))
    out["diffs_stddev"][name] = ((), np.float32(1.0))  # constant in time
  stats = NormalizationStats(**{k: xr.Dataset(v, coords={"level": levels}) for k, v in out.items()})
  validation.check_stats(stats)
  return stats
