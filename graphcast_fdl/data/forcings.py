"""Forcings known in advance: year and day progress, and TOA solar radiation.

Year progress is the phase of the mean tropical year, day progress the local
solar-clock phase at each longitude; the model reads their sin/cos. They are
computed from datetimes as the published GraphCast does, so values agree with
its files bit for bit (float32).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from graphcast_fdl.data import solar_radiation

SECONDS_PER_DAY = 86400
DAYS_PER_YEAR = 365.24219  # mean tropical year
TOA = "toa_incident_solar_radiation"
PROGRESS = ("year_progress_sin", "year_progress_cos", "day_progress_sin", "day_progress_cos")


def _seconds_since_epoch(datetimes) -> np.ndarray:
  return np.asarray(datetimes).astype("datetime64[s]").astype(np.int64)


def year_progress(datetimes) -> np.ndarray:
  """Fraction [0, 1) of the tropical year at each time, float32. Same shape."""
  seconds = _seconds_since_epoch(datetimes)
  years = seconds / SECONDS_PER_DAY / np.float64(DAYS_PER_YEAR)
  return np.mod(years, 1.0).astype(np.float32)


def day_progress(datetimes, lon: np.ndarray) -> np.ndarray:
  """Local-time fraction [0, 1) of the day, float32. [..., lon]."""
  seconds = _seconds_since_epoch(datetimes)
  greenwich = np.mod(seconds, SECONDS_PER_DAY) / SECONDS_PER_DAY
  offsets = np.deg2rad(np.asarray(lon)) / (2 * np.pi)
  return np.mod(greenwich[..., None] + offsets, 1.0).astype(np.float32)


def progress_features(datetimes, lon: np.ndarray) -> dict[str, np.ndarray]:
  """sin/cos of year progress [...] and of day progress [..., lon]."""
  year = year_progress(datetimes) * (2 * np.pi)
  day = day_progress(datetimes, lon) * (2 * np.pi)
  return {
      "year_progress_sin": np.sin(year),
      "year_progress_cos": np.cos(year),
      "day_progress_sin": np.sin(day),
      "day_progress_cos": np.cos(day),
  }


def add_forcings(dataset: xr.Dataset, toa_bins: int = 360) -> xr.Dataset:
  """Adds progress features and (if absent) TOA radiation from `datetime`.

  Args:
    dataset: dims (batch?, time, lat, lon, ...) with a `datetime` coordinate
      over (batch?, time).
    toa_bins: integration bins of the TOA radiation (360 as ERA5/published).

  Returns:
    A new dataset with the forcing variables added.
  """
  if "datetime" not in dataset.coords:
    raise ValueError("dataset has no 'datetime' coordinate: cannot compute forcings")
  datetimes = dataset.coords["datetime"]
  lon = dataset.coords["lon"].values
  time_dims = datetimes.dims
  out = dataset.copy()
  for name, values in progress_features(datetimes.values, lon).items():
    dims = time_dims + (("lon",) if name.startswith("day") else ())
    out[name] = (dims, values)
  if TOA not in out.data_vars:
    flat = datetimes.values.reshape(-1)
    toa = solar_radiation.toa_incident_solar_radiation(
        flat, dataset.coords["lat"].values, lon, num_bins=toa_bins
    )
    toa = toa.reshape(datetimes.shape + toa.shape[1:])
    out[TOA] = (time_dims + ("lat", "lon"), toa)
  return out
