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

STEP = pd.Timedelta(hours=6)


def num_input_frames(task: task_lib.TaskConfig) -> int:
  """Input frames the task reads: input_duration / 6h (2 for "12h")."""
  frames = pd.Timedelta(task.input_duration) / STEP
  if frames != int(frames) or frames < 1:
    raise ValueError(f"task.input_duration={task.input_duration!r}: must be a "
                     "positive multiple of 6h")
  return int(frames)


def window_length(task: task_lib.TaskConfig, rollout_steps: int) -> int:
  """Frames one example spans: inputs plus `rollout_steps` targets."""
  return num_input_frames(task) + rollout_steps


def extract_inputs_targets_forcings(
    dataset: xr.Dataset, task: task_lib.TaskConfig, rollout_steps: int,
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
  target_duration = rollout_steps * STEP
  dataset = dataset.assign_coords(time=time + target_duration - time[-1])
  lead = pd.to_timedelta(dataset.coords["time"].values)
  input_duration = pd.Timedelta(task.input_duration)
  is_input = (lead > -input_duration) & (lead <= pd.Timedelta(0))
  is_target = (lead > pd.Timedelta(0)) & (lead <= target_duration)
  inputs = dataset.isel(time=np.flatnonzero(is_input))
  targets = dataset.isel(time=np.flatnonzero(is_target))
  if overlap := set(task.forcing_variables) & set(task.target_variables):
    raise ValueError(f"forcing variables {sorted(overlap)} are also targets")
  _check_variables(dataset, task)
  return (inputs[list(task.input_variables)],
          targets[list(task.target_variables)],
          targets[list(task.forcing_variables)])


def _check_variables(dataset: xr.Dataset, task: task_lib.TaskConfig) -> None:
  needed = set(task.input_variables) | set(task.target_variables) | set(task.forcing_variables)
  missing = sorted(needed - set(dataset.data_vars))
  if missing:
    raise ValueError(f"variables {missing} are not in the dataset")
