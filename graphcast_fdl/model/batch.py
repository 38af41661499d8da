"""The array layout every layer agrees on: one training example batch.

A batch holds three dicts of arrays keyed by variable name, in the dims order
of the published netCDF files: atmospheric `[batch, time, level, lat, lon]`,
surface `[batch, time, lat, lon]`, year progress `[batch, time]`, day progress
`[batch, time, lon]`. Static fields (no time dim in the files) are broadcast to
`[batch, lat, lon]` so that every array splits over the batch axis.
"""

from __future__ import annotations

from typing import Mapping

import flax.struct
import numpy as np
import xarray as xr

Arrays = Mapping[str, "np.ndarray"]
CANONICAL_DIMS = ("batch", "time", "level", "lat", "lon")


@flax.struct.dataclass
class Batch:
  """Inputs (2 frames), targets (k frames) and forcings at target times."""

  inputs: dict
  targets: dict
  forcings: dict


def dataset_to_arrays(dataset: xr.Dataset, batch_size: int | None = None) -> dict:
  """Arrays in canonical dims order; statics broadcast over the batch axis."""
  if batch_size is None:
    batch_size = dataset.sizes.get("batch", 1)
  arrays = {}
  for name, var in dataset.data_vars.items():
    dims = tuple(d for d in CANONICAL_DIMS if d in var.dims)
    unknown = set(var.dims) - set(CANONICAL_DIMS)
    if unknown:
      raise ValueError(f"variable {name!r} has unexpected dims {sorted(unknown)}")
    values = np.asarray(var.transpose(*dims).values)
    if "batch" not in dims:
      values = np.broadcast_to(values, (batch_size,) + values.shape)
    arrays[name] = values
  return arrays


def batch_from_datasets(inputs: xr.Dataset, targets: xr.Dataset, forcings: xr.Dataset) -> Batch:
  """A Batch from the published (inputs, targets, forcings) datasets."""
  batch_size = inputs.sizes.get("batch", 1)
  return Batch(
      inputs=dataset_to_arrays(inputs, batch_size),
      targets=dataset_to_arrays(targets, batch_size),
      forcings=dataset_to_arrays(forcings, batch_size),
  )


def arrays_to_dataset(arrays: Arrays, template: xr.Dataset) -> xr.Dataset:
  """Predictions as a dataset with the template's variables, dims and coords."""
  data_vars = {}
  for name, var in template.data_vars.items():
    if name not in arrays:
      raise KeyError(f"prediction for template variable {name!r} is missing")
    dims = tuple(d for d in CANONICAL_DIMS if d in var.dims)
    data = xr.DataArray(np.asarray(arrays[name]), dims=dims)
    data_vars[name] = data.transpose(*var.dims).astype(var.dtype)
  return xr.Dataset(data_vars, coords=template.coords, attrs=template.attrs)
