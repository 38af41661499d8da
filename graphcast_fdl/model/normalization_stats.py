"""Normalisation statistics in the published netCDF layout.

Three files in one folder, each a dataset over `level` (atmospheric variables
have a `level` dim, the rest are scalars): `mean_by_level.nc`,
`stddev_by_level.nc` (of the fields) and `diffs_stddev_by_level.nc` (of
6-hourly differences, used to scale residual targets).
"""

from __future__ import annotations

import dataclasses
import os

import xarray as xr

FILES = {
    "mean": "mean_by_level.nc",
    "stddev": "stddev_by_level.nc",
    "diffs_stddev": "diffs_stddev_by_level.nc",
}


@dataclasses.dataclass(frozen=True)
class NormalizationStats:
  """Per-variable (and per-level) mean, stddev and diffs stddev."""

  mean: xr.Dataset
  stddev: xr.Dataset
  diffs_stddev: xr.Dataset

  @classmethod
  def load(cls, directory: str) -> "NormalizationStats":
    """Reads the three files; names the first one that is missing."""
    loaded = {}
    for field, filename in FILES.items():
      path = os.path.join(directory, filename)
      if not os.path.exists(path):
        raise FileNotFoundError(f"normalisation stats file not found: {path}")
      with xr.open_dataset(path) as dataset:
        loaded[field] = dataset.load()
    return cls(**loaded)

  def save(self, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    for field, filename in FILES.items():
      getattr(self, field).to_netcdf(os.path.join(directory, filename))

  def select_levels(self, levels) -> "NormalizationStats":
    """The same stats restricted to `levels` (hPa), e.g. 13 of 37."""
    return NormalizationStats(**{f: getattr(self, f).sel(level=list(levels)) for f in FILES})
