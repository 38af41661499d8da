"""Tiny random graphs, stats and batches for fast model tests."""

import types

import numpy as np
import xarray as xr

from graphcast_fdl.model.batch import Batch
from graphcast_fdl.model.normalization_stats import NormalizationStats
from graphcast_fdl.task import TaskConfig

LEVELS = (500, 850)
TASK = TaskConfig(
    input_variables=(
        "2m_temperature",
        "temperature",
        "toa_incident_solar_radiation",
        "year_progress_sin",
        "day_progress_cos",
        "land_sea_mask",
    ),
    target_variables=("2m_temperature", "temperature", "total_precipitation_6hr"),
    forcing_variables=("toa_incident_solar_radiation", "year_progress_sin", "day_progress_cos"),
    pressure_levels=LEVELS,
)
N_LAT, N_LON, N_MESH = 7, 12, 12


def _edges(rng, num_senders, num_receivers, num_edges):
  return types.SimpleNamespace(
      senders=rng.integers(0, num_senders, num_edges),
      receivers=rng.integers(0, num_receivers, num_edges),
      features=rng.normal(size=(num_edges, 4)).astype(np.float32),
  )


def graphs(seed=0):
  """Random graphs on a 30 degree grid with poles (7 x 12) and 12 mesh nodes."""
  rng = np.random.default_rng(seed)
  n_grid = N_LAT * N_LON
  return types.SimpleNamespace(
      grid_lat=np.linspace(-90, 90, N_LAT),
      grid_lon=np.arange(N_LON) * 30.0,
      grid_node_features=rng.normal(size=(n_grid, 3)).astype(np.float32),
      mesh_node_features=rng.normal(size=(N_MESH, 3)).astype(np.float32),
      grid2mesh=_edges(rng, n_grid, N_MESH, 150),
      mesh=_edges(rng, N_MESH, N_MESH, 60),
      mesh2grid=_edges(rng, N_MESH, n_grid, 3 * n_grid),
  )


def stats(seed=0):
  rng = np.random.default_rng(seed)
  names = set(TASK.input_variables + TASK.target_variables)

  def dataset(low, high):
    data = {}
    for name in sorted(names):
      if name == "temperature":
        data[name] = ("level", rng.uniform(low, high, len(LEVELS)))
      else:
        data[name] = ((), rng.uniform(low, high))
    return xr.Dataset(data, coords={"level": list(LEVELS)})

  return NormalizationStats(
      mean=dataset(-1, 1), stddev=dataset(0.5, 2), diffs_stddev=dataset(0.2, 1)
  )


def _array(rng, name, batch, frames):
  if name == "land_sea_mask":
    return rng.normal(size=(batch, N_LAT, N_LON))
  if name.startswith("year_progress"):
    return rng.normal(size=(batch, frames))
  if name.startswith("day_progress"):
    return rng.normal(size=(batch, frames, N_LON))
  if name == "temperature":
    return rng.normal(size=(batch, frames, len(LEVELS), N_LAT, N_LON))
  return rng.normal(size=(batch, frames, N_LAT, N_LON))


def batch(steps=2, batch_size=2, seed=0) -> Batch:
  rng = np.random.default_rng(seed)
  make = lambda names, frames: {
      n: _array(rng, n, batch_size, frames).astype(np.float32) for n in names
  }
  return Batch(
      inputs=make(TASK.input_variables, 2),
      targets=make(TASK.target_variables, steps),
      forcings=make(TASK.forcing_variables, steps),
  )
