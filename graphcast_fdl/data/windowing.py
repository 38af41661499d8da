"""Cutting a time series into (inputs, targets, forcings) for a rollout length.

An example for rollout k is `input_frames` consecutive 6-hourly frames followed
by k target frames. Times are relabelled as lead times from the last input
(inputs at -6h, 0h; targets at 6h..6k h), forcings are taken at target times,
exactly as the published `extract_inputs_targets_forcings` does, so the
outputs equal its `inputs.nc`, `targets.nc` and `forcings.nc`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_fdl import task as task_lib
from graphcast_fdl.data import forcings as forcings_lib


def window_length(task: task_lib.TaskConfig, rollout_steps: int) -> int:
  """Frames one example spans: inputs plus `rollout_steps` targets."""
  return task_lib.input_frames(task) + rollout_steps


def extract_inputs_targets_forcings(
    dataset: xr.Dataset,
    task: task_lib.TaskConfig,
    rollout_steps: int,
) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
  """Splits a dataset of input + target frames into the three model datasets.

  Args:
    dataset: dims (batch?, time, level?, lat, lon); `time` as timedeltas 6h
      apart with `window_length(task, rollout_steps)` entries (the last ones
      are used if there are more), a `datetime` coordinate over (batch?, time).
    task: variables and levels.
    rollout_steps: number of target frames k.

  Returns:
    inputs (time -6h..0h), targets and forcings (time 6h..6k h).
  """
  missing_levels = sorted(set(task.pressure_levels) - set(dataset.level.values.tolist()))
  if missing_levels:
    raise ValueError(f"pressure levels {missing_levels} are not in the dataset")
  dataset = dataset.sel(level=list(task.pressure_levels))
  if not set(task.forcing_variables) <= set(dataset.data_vars):
    dataset = forcings_lib.add_forcings(dataset)
  dataset = dataset.drop_vars("datetime")
  time = dataset.coords["time"]
  target_duration = rollout_steps * pd.Timedelta(task_lib.TIME_STEP)
  dataset = dataset.assign_coords(time=time + target_duration - time[-1])
  lead = pd.to_timedelta(dataset.coords["time"].values)
  input_duration = task_lib.input_frames(task) * pd.Timedelta(task_lib.TIME_STEP)
  is_input = (lead > -input_duration) & (lead <= pd.Timedelta(0))
  is_target = (lead > pd.Timedelta(0)) & (lead <= target_duration)
  inputs = dataset.isel(time=np.flatnonzero(is_input))
  targets = dataset.isel(time=np.flatnonzero(is_target))
  if overlap := set(task.forcing_variables) & set(task.target_variables):
    raise ValueError(f"forcing variables {sorted(overlap)} are also targets")
  _check_variables(dataset, task)
  return (
      inputs[list(task.input_variables)],
      targets[list(task.target_variables)],
      targets[list(task.forcing_variables)],
  )


def _check_variables(dataset: xr.Dataset, task: task_lib.TaskConfig) -> None:
  needed = set(task.input_variables) | set(task.target_variables) | set(task.forcing_variables)
  missing = sorted(needed - set(dataset.data_vars))
  if missing:
    raise ValueError(f"variables {missing} are not in the dataset")
