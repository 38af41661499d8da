"""A day-of-year x hour-of-day climatology of the training split.

WeatherBench 2 uses a 1990-2019 ERA5 mean per day of year and hour, smoothed
with a 61-day window. This one follows it with two simplifications that keep
it small enough to compute on the fly and to store next to the data:
  * days of the year are grouped into bins of `days_per_bin` days (default 15;
    1 gives WB2's daily resolution, at 15 x the memory);
  * smoothing weighs days as WB2 does (its `create_window_weights`): 1 at the
    centre, falling linearly to 0 at `window_days // 2` days away (default 61
    days, so +-30), circular over the year, here between bin centres. It is
    applied to sums and counts, so a split shorter than a year still gives a
    weighted mean wherever the window saw data. Bins the window never saw
    fall back to that hour's mean over the split, then to the split's mean.
It is the reference of ACC (anomalies) and the climatology baseline forecast.

Memory: bins x 4 hours x channels x lat x lon; with the defaults
(25 bins) and 83 channels that is 35 MB at 4 deg, 0.5 GB at 1 deg.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Sequence

from absl import logging
import numpy as np
import pandas as pd
import xarray as xr

from graphcast_fdl import task as task_lib

# Times of day of the model's steps: 0, 6, 12, 18 UTC.
HOURS = tuple(range(0, 24, task_lib.TIME_STEP_HOURS))
# In cache keys and attributes: files smoothed another way are not reused.
WINDOW_WEIGHTS = "linear (WeatherBench 2)"


def num_bins(days_per_bin: int) -> int:
  return -(-366 // days_per_bin)


def day_bin(datetimes, days_per_bin: int) -> np.ndarray:
  """Bin index of each datetime's day of year (1..366), same shape."""
  datetimes = np.asarray(datetimes, "datetime64[ns]")
  doy = pd.DatetimeIndex(datetimes.reshape(-1)).dayofyear.values
  return ((doy - 1) // days_per_bin).reshape(datetimes.shape)


def hour_index(datetimes) -> np.ndarray:
  """Index into HOURS of each datetime's hour (nearest 6-hourly slot)."""
  datetimes = np.asarray(datetimes, "datetime64[ns]")
  hours = pd.DatetimeIndex(datetimes.reshape(-1)).hour.values
  return (np.round(hours / task_lib.TIME_STEP_HOURS).astype(int) % len(HOURS)).reshape(
      datetimes.shape
  )


def _smoothing_kernel(bins: int, days_per_bin: int, window_days: int) -> np.ndarray:
  """[bins, bins] weights: 1 - gap / half-window between bin centres
  (circularly), 0 beyond; a bin always weighs itself 1."""
  centres = (np.arange(bins) + 0.5) * days_per_bin
  gap = np.abs(centres[:, None] - centres[None, :])
  gap = np.minimum(gap, 366 - gap)
  half = window_days // 2
  if half == 0:
    return (gap == 0).astype(np.float64)
  return np.maximum(1.0 - gap / half, 0.0)


def compute(
    frames,
    variables: Sequence[str],
    levels: Sequence[int],
    days_per_bin: int = 15,
    window_days: int = 61,
    stride: int = 1,
) -> xr.Dataset:
  """Climatology of `variables` over the frames of one split.

  Args:
    frames: a `graphcast_fdl.data.frames.Frames` (datetimes, lat, lon,
      levels, atmospheric, frame(i) -> {name: [level, lat, lon] or [lat, lon]}).
    variables: which variables (each atmospheric or surface in `frames`).
    levels: pressure levels (hPa) to keep of the atmospheric ones.
    days_per_bin, window_days: see the module docstring.
    stride: read every `stride`-th frame (an odd stride keeps all hours).

  Returns:
    Dataset: atmospheric [dayofyear, hour, level, lat, lon], surface
    [dayofyear, hour, lat, lon]; `dayofyear` holds each bin's first day.
  """
  if days_per_bin < 1 or window_days < 1 or stride < 1:
    raise ValueError(
        f"climatology: days_per_bin={days_per_bin}, window_days="
        f"{window_days} and stride={stride} must be >= 1"
    )
  missing = [v for v in variables if v not in frames.variables]
  if missing:
    raise ValueError(f"climatology: variables {missing} are not in the data")
  level_idx = frames.level_indices(levels)
  bins = num_bins(days_per_bin)
  indices = np.arange(0, len(frames), stride)
  if not len(indices):
    raise ValueError("climatology: the training split has no frames")
  bin_of = day_bin(frames.datetimes[indices], days_per_bin)
  hour_of = hour_index(frames.datetimes[indices])
  sums, counts = {}, np.zeros((bins, len(HOURS)))
  for i, b, h in zip(indices, bin_of, hour_of):
    frame = frames.frame(i)
    for name in variables:
      value = np.asarray(frame[name], np.float64)
      if name in frames.atmospheric:
        value = value[level_idx]
      if name not in sums:
        sums[name] = np.zeros((bins, len(HOURS)) + value.shape)
      sums[name][b, h] += value
    counts[b, h] += 1

  kernel = _smoothing_kernel(bins, days_per_bin, window_days)
  smooth_counts = kernel @ counts  # [bins, hours]
  hour_counts = counts.sum(0)  # [hours]
  data_vars = {}
  for name, total in sums.items():
    extra = total.ndim - 2
    expand = lambda c: c.reshape(c.shape + (1,) * extra)
    smooth = np.tensordot(kernel, total, axes=1)  # [bins, hours, ...]
    hour_sum = total.sum(0)  # [hours, ...]
    overall = hour_sum.sum(0) / counts.sum()
    hour_mean = np.where(
        expand(hour_counts) > 0, hour_sum / np.maximum(expand(hour_counts), 1), overall
    )
    weight = expand(smooth_counts)  # Weighted counts: may be below 1.
    mean = np.where(weight > 0, smooth / np.where(weight > 0, weight, 1), hour_mean[None])
    dims = ("dayofyear", "hour") + (("level",) if extra == 3 else ()) + ("lat", "lon")
    data_vars[name] = (dims, mean.astype(np.float32))
  coords = {
      "dayofyear": 1 + days_per_bin * np.arange(bins),
      "hour": list(HOURS),
      "lat": np.asarray(frames.lat),
      "lon": np.asarray(frames.lon),
  }
  if any(v in frames.atmospheric for v in variables):
    coords["level"] = np.asarray(levels, np.int32)
  return xr.Dataset(
      data_vars,
      coords=coords,
      attrs={
          "days_per_bin": days_per_bin,
          "window_days": window_days,
          "window_weights": WINDOW_WEIGHTS,
          "stride": stride,
          "num_frames": int(len(indices)),
          "first_time": str(frames.datetimes[0]),
          "last_time": str(frames.datetimes[-1]),
      },
  )


def at(climatology: xr.Dataset, name: str, datetimes) -> np.ndarray:
  """The climatology of `name` at each valid time: [*datetimes.shape, (level,) lat, lon]."""
  datetimes = np.asarray(datetimes)
  b = day_bin(datetimes, int(climatology.attrs["days_per_bin"]))
  h = hour_index(datetimes)
  values = climatology[name].values
  return values[b, h]


def cache_path(directory: str, key: dict) -> str:
  """A file name under `directory` that changes with anything in `key`."""
  digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode())
  return os.path.join(directory, f"climatology_{digest.hexdigest()[:12]}.nc")


def load_or_compute(
    frames,
    variables: Sequence[str],
    levels: Sequence[int],
    cache_dir: str | None,
    key: dict,
    **kwargs,
) -> xr.Dataset:
  """`compute`, cached as netCDF in `cache_dir` under a name hashed from `key`.

  `key` should name the data source and split; the variables, levels and
  `kwargs` are added to it.
  """
  key = dict(
      key,
      variables=list(variables),
      levels=[int(x) for x in levels],
      window_weights=WINDOW_WEIGHTS,
      **kwargs,
  )
  path = cache_path(cache_dir, key) if cache_dir else None
  if path and os.path.exists(path):
    logging.info("Reading climatology from %s", path)
    with xr.open_dataset(path) as ds:
      return ds.load()
  logging.info("Computing climatology of %d frames", len(frames))
  clim = compute(frames, variables, levels, **kwargs)
  if path:
    os.makedirs(cache_dir, exist_ok=True)
    tmp = path + ".tmp"
    clim.attrs["key"] = json.dumps(key, sort_keys=True, default=str)
    clim.to_netcdf(tmp)
    os.replace(tmp, path)
    logging.info("Wrote climatology to %s", path)
  return clim
