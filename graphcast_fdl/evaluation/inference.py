"""Roll a published-format checkpoint out on netCDF files, as the published demo.

The inputs, forcings and targets template are the datasets the published data
extraction writes (golden `inputs.nc`, `forcings.nc`, `targets.nc`); the output
has the template's variables, dims and coords, one step per template time.
As the published code, the grid is the inputs' own (with or without rows at
the poles, at any spacing): the checkpoint's `resolution` only names the grid
it was trained on.
The rollout is `forecast.rollout`'s, in one call.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np
import xarray as xr

from graphcast_fdl.checkpoints import npz_format
from graphcast_fdl.evaluation import forecast
from graphcast_fdl.grid import grid_lat_lon
from graphcast_fdl.model.batch import arrays_to_dataset
from graphcast_fdl.model.batch import Batch
from graphcast_fdl.model.batch import dataset_to_arrays
from graphcast_fdl.model.normalization_stats import NormalizationStats
from graphcast_fdl.model.predictor import Predictor


def _dataset(value, what: str) -> xr.Dataset:
  if isinstance(value, xr.Dataset):
    return value
  if not os.path.exists(value):
    raise FileNotFoundError(f"{what} file not found: {value}")
  with xr.open_dataset(value) as ds:
    return ds.load()


def grid_of(inputs: xr.Dataset) -> tuple[float, bool]:
  """(resolution, include_poles) of the inputs' regular lat/lon grid."""
  lat = np.asarray(inputs["lat"].values, np.float64)
  lon = np.asarray(inputs["lon"].values, np.float64)
  if lon.size > 1:
    resolution = float(lon[1] - lon[0])
    for include_poles in (True, False):
      try:
        want_lat, want_lon = grid_lat_lon(resolution, include_poles)
      except ValueError:
        break
      if (
          want_lat.shape == lat.shape
          and want_lon.shape == lon.shape
          and np.allclose(want_lat, lat, atol=1e-6)
          and np.allclose(want_lon, lon, atol=1e-6)
      ):
        return resolution, include_poles
  raise ValueError(
      f"inputs have a {lat.size}x{lon.size} lat/lon grid (lat {lat[:1]}..."
      f"{lat[-1:]}, lon {lon[:1]}...{lon[-1:]}) that is not a regular global "
      "grid ascending in lat from -90 (or -90 + spacing/2) and lon from 0"
  )


def predict(
    checkpoint,
    stats: NormalizationStats,
    inputs: xr.Dataset,
    forcings: xr.Dataset,
    targets_template: xr.Dataset,
    graphs=None,
) -> xr.Dataset:
  """Predictions shaped like targets_template.

  Args:
    checkpoint: a `checkpoints.npz_format.Checkpoint` (params and configs).
    stats, inputs, forcings, targets_template: as the published code takes.
    graphs: optional prebuilt graphs (default: from the checkpoint's config).
  """
  if "time" not in targets_template.dims:
    raise ValueError("targets template has no 'time' dim")
  num_steps = targets_template.sizes["time"]
  resolution, include_poles = grid_of(inputs)
  model = dataclasses.replace(checkpoint.model, resolution=resolution, include_poles=include_poles)
  predictor = Predictor(model, checkpoint.task, stats, graphs)
  grid = predictor.grid_shape
  got = (inputs.sizes.get("lat"), inputs.sizes.get("lon"))
  if got != grid:
    raise ValueError(
        f"inputs have a {got[0]}x{got[1]} lat/lon grid, the "
        f"graphs given are for {grid[0]}x{grid[1]}"
    )
  batch_size = inputs.sizes.get("batch", 1)
  batch = Batch(
      inputs=dataset_to_arrays(inputs, batch_size),
      targets={},
      forcings=dataset_to_arrays(forcings, batch_size),
  )
  predictions = forecast.rollout(
      jax.jit(predictor.rollout, static_argnums=3),
      checkpoint.params,
      checkpoint.task,
      batch,
      num_steps,
      chunk_steps=None,
  )
  return arrays_to_dataset(predictions, targets_template)


def predict_to_file(
    checkpoint,
    stats_dir: str,
    inputs,
    forcings,
    targets_template,
    output: str,
    precision: str | None = None,
) -> xr.Dataset:
  """Loads everything from files, rolls out, writes `output` (netCDF).

  Args:
    checkpoint: path of a published-format .npz, or a loaded Checkpoint.
    stats_dir: folder with mean_by_level.nc, stddev_by_level.nc,
      diffs_stddev_by_level.nc.
    inputs, forcings, targets_template: netCDF paths or datasets.
    output: netCDF file to write.
    precision: "bfloat16" (as published, default) or "float32".

  Returns:
    The predictions dataset that was written.
  """
  if isinstance(checkpoint, (str, os.PathLike)):
    overrides = {} if precision is None else {"precision": precision}
    checkpoint = npz_format.load(os.fspath(checkpoint), **overrides)
  elif precision is not None and precision != checkpoint.model.precision:
    checkpoint = dataclasses.replace(
        checkpoint, model=dataclasses.replace(checkpoint.model, precision=precision)
    )
  stats = NormalizationStats.load(stats_dir)
  predictions = predict(
      checkpoint,
      stats,
      _dataset(inputs, "inputs"),
      _dataset(forcings, "forcings"),
      _dataset(targets_template, "targets template"),
  )
  directory = os.path.dirname(os.fspath(output))
  if directory:
    os.makedirs(directory, exist_ok=True)
  predictions.to_netcdf(output)
  return predictions
