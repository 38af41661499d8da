"""Equiangular latitude-longitude grids, as GraphCast and WeatherBench 2 use.

Latitudes ascend from the south; longitudes run [0, 360). With poles the
0.25 deg grid is 721 x 1440 (rows at +-90); without, rows sit half a step in.
"""

from __future__ import annotations

import numpy as np


def grid_coords(resolution: float, include_poles: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
  """([H] lat, [W] lon) in degrees, float32, for a spacing in degrees."""
  if resolution <= 0 or 180 / resolution != round(180 / resolution):
    raise ValueError(f"resolution={resolution}: 180 must be a multiple of it")
  num_lat = round(180 / resolution)
  if include_poles:
    lat = np.linspace(-90, 90, num_lat + 1)
  else:
    lat = -90 + resolution / 2 + resolution * np.arange(num_lat)
  lon = resolution * np.arange(round(360 / resolution))
  return lat.astype(np.float32), lon.astype(np.float32)


def is_regular(coords: np.ndarray, rtol: float = 1e-4) -> bool:
  """Whether a coordinate is evenly spaced (and has at least two points)."""
  coords = np.asarray(coords, np.float64)
  if coords.size < 2:
    return False
  steps = np.diff(coords)
  return bool(np.all(np.abs(steps - steps[0]) <= rtol * abs(steps[0])))
