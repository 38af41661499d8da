"""Rolling a model out to a lead time and writing what it predicts.

The rollout runs in chunks of `chunk_steps` steps, each jitted once and moved
to the host before the next, so a 10-day forecast at 0.25 deg never holds 40
steps of fields on the accelerator. Forecast files use the input data's
variable names and layout: dims (batch, time, level, lat, lon), `time` the
lead time, `datetime` the valid time, plus `init_time` over batch.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping

import jax
import numpy as np
import pandas as pd
import xarray as xr

from graphcast_fdl import task as task_lib
from graphcast_fdl.evaluation import metrics
from graphcast_fdl.evaluation import plot_style
from graphcast_fdl.model.batch import Batch
from graphcast_fdl.model.batch import arrays_to_dataset
from graphcast_fdl.task import TaskConfig

FORMATS = ("netcdf", "zarr")


def lead_time_steps(text: str) -> int:
  """Number of 6 h steps in a lead time like "10d" or "36h".

  Raises:
    ValueError: naming the value when it is not a positive multiple of 6 h.
  """
  return task_lib.duration_steps(text, "--lead_time")


def next_inputs(
    task: TaskConfig,
    inputs: Mapping[str, np.ndarray],
    predictions: Mapping[str, np.ndarray],
    forcings: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray]:
  """Inputs of the next chunk: the last input frames of inputs + predictions.

  Args:
    inputs: {name: [B, frames, ...]} (statics [B, lat, lon] pass through).
    predictions: {name: [B, k, ...]} of the chunk just run.
    forcings: {name: [B, k, ...]} at the chunk's target times (forcings that
      are also inputs, e.g. TOA radiation, come from here).
  """
  frames = task_lib.input_frames(task)
  out = dict(inputs)
  for name, value in inputs.items():
    new = predictions.get(name, forcings.get(name))
    if new is None:
      continue  # static
    joined = np.concatenate([np.asarray(value), np.asarray(new, value.dtype)], axis=1)
    out[name] = joined[:, -frames:]
  return out


def rollout(
    rollout_fn: Callable,
    params,
    task: TaskConfig,
    batch: Batch,
    num_steps: int,
    chunk_steps: int | None = 8,
) -> dict[str, np.ndarray]:
  """Predictions {name: [B, num_steps, (level,) lat, lon]} as host float32.

  Args:
    rollout_fn: `Predictor.rollout` (jitted with `num_steps` static).
    batch: inputs and at least `num_steps` forcing frames.
    chunk_steps: steps per call (None: all in one).
  """
  chunk = num_steps if not chunk_steps else min(chunk_steps, num_steps)
  inputs = {k: np.asarray(v) for k, v in batch.inputs.items()}
  outputs, done = [], 0
  while done < num_steps:
    k = min(chunk, num_steps - done)
    forcings = {n: np.asarray(v)[:, done : done + k] for n, v in batch.forcings.items()}
    predictions = jax.device_get(rollout_fn(params, inputs, forcings, k))
    predictions = {n: np.asarray(v, np.float32) for n, v in predictions.items()}
    outputs.append(predictions)
    done += k
    if done < num_steps:
      inputs = next_inputs(task, inputs, predictions, forcings)
  return {n: np.concatenate([o[n] for o in outputs], axis=1) for n in outputs[0]}


def to_dataset(
    predictions: Mapping[str, np.ndarray],
    template: xr.Dataset,
    valid_times: np.ndarray,
    init_times: np.ndarray,
) -> xr.Dataset:
  """Predictions in the targets' layout with valid and initial times.

  Args:
    predictions: {name: [B, T, (level,) lat, lon]}.
    template: targets dataset (dims batch, time = lead times, ...).
    valid_times: [B, T] datetimes. init_times: [B] datetimes.
  """
  ds = arrays_to_dataset(predictions, template[list(predictions)])
  return ds.assign_coords(
      datetime=(("batch", "time"), np.asarray(valid_times, "datetime64[ns]")),
      init_time=(("batch",), np.asarray(init_times, "datetime64[ns]")),
  )


def file_stem(init_time) -> str:
  return "forecast_" + pd.Timestamp(init_time).strftime("%Y%m%dT%H")


def write(ds: xr.Dataset, output_dir: str, fmt: str = "netcdf") -> list[str]:
  """Writes forecasts: one netCDF per initial time, or one zarr store
  (`forecasts.zarr`, appended along batch). Returns the paths written."""
  if fmt not in FORMATS:
    raise ValueError(f"--format={fmt!r}: must be one of {FORMATS}")
  os.makedirs(output_dir, exist_ok=True)
  if fmt == "zarr":
    path = os.path.join(output_dir, "forecasts.zarr")
    if os.path.exists(path):
      ds.to_zarr(path, append_dim="batch", zarr_format=2)
    else:
      ds.to_zarr(path, mode="w", zarr_format=2)
    return [path]
  paths = []
  for b in range(ds.sizes["batch"]):
    one = ds.isel(batch=[b])
    path = os.path.join(output_dir, file_stem(one.init_time.values[0]) + ".nc")
    one.to_netcdf(path)
    paths.append(path)
  return paths


def _field(ds: xr.Dataset, name: str, level) -> np.ndarray | None:
  """[time, lat, lon] of the first batch row, in display units; None if absent."""
  if name not in ds:
    return None
  field = ds[name].isel(batch=0)
  if level is not None:
    if "level" not in field.dims or level not in field.level.values:
      return None
    field = field.sel(level=level)
  return plot_style.to_display(name, field.transpose("time", "lat", "lon").values)


def plot_maps(
    ds: xr.Dataset,
    output_dir: str,
    max_panels: int = 3,
    prefix: str = "map",
    truth: xr.Dataset | None = None,
) -> dict[str, str]:
  """PNG maps of the headline fields of one forecast at a few lead times.

  Args:
    ds: a forecast dataset (first batch row is drawn).
    max_panels: lead times drawn: first, last and evenly between.
    truth: the verifying data, same layout (NaN past the end of the data);
      with it each map adds a truth row and a forecast-minus-truth row.
  """
  # Plotting only: matplotlib loads when a figure is drawn.
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  os.makedirs(output_dir, exist_ok=True)
  num_leads = ds.sizes["time"]
  picks = np.unique(np.linspace(0, num_leads - 1, min(max_panels, num_leads)).round().astype(int))
  lead_hours = pd.to_timedelta(ds.time.values) / pd.Timedelta(hours=1)
  init = pd.Timestamp(ds.init_time.values[0]).strftime("%Y-%m-%d %H UTC")
  paths = {}
  for short, (name, level) in metrics.HEADLINE.items():
    values = _field(ds, name, level)
    if values is None:
      continue
    rows = [("forecast", values)]
    known = _field(truth, name, level) if truth is not None else None
    if known is not None and np.isfinite(known[picks]).any():
      rows += [("truth", known), ("forecast - truth", values - known)]
    shared = plot_style.colour_range(name, np.concatenate([r[1][picks].ravel() for r in rows[:2]]))
    fig, axes = plt.subplots(
        len(rows),
        len(picks),
        figsize=(3.6 * len(picks) + 1.2, 2.5 * len(rows)),
        squeeze=False,
        layout="constrained",
    )
    for r, (what, data) in enumerate(rows):
      style = plot_style.error_range(data[picks]) if what == "forecast - truth" else shared
      for ax, t in zip(axes[r], picks):
        mesh = ax.pcolormesh(ds.lon.values, ds.lat.values, data[t], shading="nearest", **style)
        ax.set_title(f"{what} +{lead_hours[t]:g} h", fontsize=9)
      axes[r, 0].set_ylabel("latitude (°)")
      fig.colorbar(
          mesh,
          ax=axes[r].tolist(),
          shrink=0.9,
          label=plot_style.label(short if r < 2 else "error", name),
      )
    for ax in axes[-1]:
      ax.set_xlabel("longitude (°)")
    fig.suptitle(f"{name}{'' if level is None else f' {level} hPa'} from {init}", fontsize=9)
    path = os.path.join(output_dir, f"{prefix}_{short}.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    paths[f"map_{short}"] = path
  return paths
