"""Equiangular latitude-longitude grids, as GraphCast and WeatherBench 2 use.

The one definition of the grid, shared by the graphs (node positions), the
data (coordinates a store must match) and the estimator (node counts).
Latitudes ascend from the south; longitudes run [0, 360). With poles the
0.25 deg grid is 721 x 1440 (rows at +-90); without, rows sit half a step in
(720 x 1440).
"""

from __future__ import annotations

import numpy as np


def grid_shape(resolution: float, include_poles: bool) -> tuple[int, int]:
  """(num_lat, num_lon) of the grid, without building its coordinates.

  Raises:
    ValueError: naming `resolution` when it does not divide 180 degrees.
  """
  if (
      isinstance(resolution, bool)
      or not isinstance(resolution, (int, float, np.integer, np.floating))
      or not 0 < resolution <= 90
  ):
    raise ValueError(f"resolution={resolution!r}: must be a number in (0, 90]")
  count = 180 / resolution
  if abs(count - round(count)) > 1e-6 * count:
    raise ValueError(
        f"resolution={resolution!r}: must divide 180 and 360 degrees into a "
        "whole number of steps"
    )
  num_lat = int(round(count))
  return num_lat + (1 if include_poles else 0), 2 * num_lat


def grid_lat_lon(resolution: float, include_poles: bool) -> tuple[np.ndarray, np.ndarray]:
  """([H] lat, [W] lon) in degrees, float64, as the published graphs compute.

  Args:
    resolution: spacing in degrees; 180 / resolution must be a whole number.
    include_poles: True: lat = -90, -90 + res, ..., 90 (ERA5, 180/res + 1 rows).
      False: cell centres -90 + res/2, ..., 90 - res/2 (180/res rows).
  """
  num_lat, num_lon = grid_shape(resolution, include_poles)
  if include_poles:
    lat = np.linspace(-90.0, 90.0, num_lat)
  else:
    lat = np.linspace(-90.0 + resolution / 2, 90.0 - resolution / 2, num_lat)
  lon = np.linspace(0.0, 360.0, num_lon, endpoint=False)
  return lat, lon


def grid_coords(resolution: float, include_poles: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """([H] lat, [W] lon) in degrees, float32: the coordinates data carry."""
  lat, lon = grid_lat_lon(resolution, include_poles)
  return lat.astype(np.float32), lon.astype(np.float32)


def is_regular(coords: np.ndarray, rtol: float = 1e-4) -> bool:
  """Whether a coordinate is evenly spaced (and has at least two points)."""
  coords = np.asarray(coords, np.float64)
  if coords.size < 2:
    return False
  steps = np.diff(coords)
  return bool(np.all(np.abs(steps - steps[0]) <= rtol * abs(steps[0])))
