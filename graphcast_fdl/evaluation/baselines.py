"""Reference forecasts scored on the same initial times as the model.

persistence  every lead repeats the analysis at the initial time (the last
             input frame): the skill any model must beat at short leads.
climatology  every lead is the training-split climatology at its valid time:
             the skill any model must beat at long leads (RMSE sqrt(2) times
             lower than a perfect but uncorrelated forecast's).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import xarray as xr

from graphcast_fdl.evaluation import climatology as climatology_lib


def persistence(
    inputs: Mapping[str, np.ndarray], variables: Sequence[str], num_steps: int
) -> dict[str, np.ndarray]:
  """{name: [B, num_steps, (level,) lat, lon]} for targets that are inputs.

  Args:
    inputs: {name: [B, frames, (level,) lat, lon]} (Batch layout).
    variables: the target variables; those the model does not read (e.g.
      precipitation in the operational task) have no persistence forecast.
    num_steps: lead times.
  """
  out = {}
  for name in variables:
    if name in inputs:
      last = np.asarray(inputs[name])[:, -1:]
      out[name] = np.repeat(last, num_steps, axis=1)
  return out


def climatology(
    clim: xr.Dataset, variables: Sequence[str], valid_times: np.ndarray
) -> dict[str, np.ndarray]:
  """{name: [*valid_times.shape, (level,) lat, lon]} from the climatology."""
  return {
      name: climatology_lib.at(clim, name, valid_times)
      for name in variables
      if name in clim.data_vars
  }
