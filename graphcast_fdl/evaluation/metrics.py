"""Deterministic forecast scores as WeatherBench 2 defines them.

All functions take arrays whose last two axes are `[lat, lon]` and an axis of
initial times (`time_axis`, default 0); they accept numpy or jax arrays and
compute with the same library (so they jit for the trainer).

Definitions (WB2 `metrics.py`, GraphCast paper eq. 20-22):
  w_i        cell area of latitude row i (sin of upper minus sin of lower
             cell bound, bounds halfway between rows and at +-90 deg), mean 1;
             a pole row's cell is the half-spacing cap around the pole.
  <x>        spatial mean sum_i,j w_i x_ij / (H W).
  mse        <(f - o)^2> per initial time.
  rmse       sqrt(mean over initial times of mse)      WB2's headline RMSE.
  rmse_per_forecast
             mean over initial times of sqrt(mse)      GraphCast's RMSE.
  bias       mean over initial times of <f - o>.
  acc        mean over initial times of
             <f' o'> / sqrt(<f'^2> <o'^2>), f' = f - c, o' = o - c with c
             the climatology at the valid time (uncentred, as WB2).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from graphcast_fdl import task as task_lib

# Short names of the headline fields: (variable, pressure level or None).
HEADLINE = {
    "z500": ("geopotential", 500),
    "t850": ("temperature", 850),
    "t2m": ("2m_temperature", None),
    "u10": ("10m_u_component_of_wind", None),
    "msl": ("mean_sea_level_pressure", None),
}


def _xp(*arrays):
  return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def latitude_weights(lat: Sequence[float]) -> np.ndarray:
  """[H] cell-area weights with mean 1 (WB2 `get_lat_weights`).

  Args:
    lat: [H] latitudes in degrees, ascending or descending, rows may sit on
      the poles or not; spacing need not be uniform.
  """
  lat = np.asarray(lat, np.float64)
  order = np.argsort(lat)
  rad = np.deg2rad(lat[order])
  if np.any(np.diff(rad) <= 0):
    raise ValueError(f"latitudes are not distinct: {lat}")
  if rad[0] < -np.pi / 2 - 1e-9 or rad[-1] > np.pi / 2 + 1e-9:
    raise ValueError(f"latitudes outside [-90, 90]: {lat}")
  bounds = np.concatenate([[-np.pi / 2], (rad[:-1] + rad[1:]) / 2, [np.pi / 2]])
  area = np.sin(bounds[1:]) - np.sin(bounds[:-1])
  weights = np.empty_like(area)
  weights[order] = area
  return weights / weights.mean()


def spatial_mean(x, lat: Sequence[float]):
  """Latitude-weighted mean over the last two axes `[..., lat, lon]`."""
  xp = _xp(x)
  w = latitude_weights(lat)
  if x.shape[-2] != w.shape[0]:
    raise ValueError(f"array has {x.shape[-2]} latitude rows, lat has {w.shape[0]}")
  w = xp.asarray(w, dtype=x.dtype)
  return xp.mean(x * w[:, None], axis=(-2, -1))


def mse(forecast, truth, lat):
  """Per initial time `<(f - o)^2>`: shape of the inputs less `[lat, lon]`."""
  return spatial_mean((forecast - truth) ** 2, lat)


def rmse(forecast, truth, lat, time_axis: int = 0):
  """WB2 RMSE: square root after the mean of `mse` over initial times."""
  xp = _xp(forecast, truth)
  return xp.sqrt(xp.mean(mse(forecast, truth, lat), axis=time_axis))


def rmse_per_forecast(forecast, truth, lat, time_axis: int = 0):
  """GraphCast RMSE: mean over initial times of each forecast's RMSE."""
  xp = _xp(forecast, truth)
  return xp.mean(xp.sqrt(mse(forecast, truth, lat)), axis=time_axis)


def bias(forecast, truth, lat, time_axis: int = 0):
  """Mean error `<f - o>` averaged over initial times."""
  xp = _xp(forecast, truth)
  return xp.mean(spatial_mean(forecast - truth, lat), axis=time_axis)


def acc_per_forecast(forecast, truth, climatology, lat):
  """Anomaly correlation of each forecast (no time mean).

  Args:
    forecast, truth: [..., lat, lon].
    climatology: broadcastable to them (the climatology at each valid time).
  """
  xp = _xp(forecast, truth, climatology)
  fa = forecast - climatology
  oa = truth - climatology
  return spatial_mean(fa * oa, lat) / xp.sqrt(spatial_mean(fa**2, lat) * spatial_mean(oa**2, lat))


def acc(forecast, truth, climatology, lat, time_axis: int = 0):
  """WB2 ACC: per-forecast anomaly correlation averaged over initial times."""
  xp = _xp(forecast, truth, climatology)
  return xp.mean(acc_per_forecast(forecast, truth, climatology, lat), axis=time_axis)


def headline_fields(
    arrays: Mapping[str, "np.ndarray"], levels: Sequence[int] | None = None
) -> dict:
  """{short name: [B, T, lat, lon]} of the headline fields present.

  Args:
    arrays: {variable: [B, T, (level,) lat, lon]} as `Predictor.rollout`
      returns and `Batch.targets` holds.
    levels: the pressure levels of the level axis (None: surface fields only).
  """
  out = {}
  for short, (name, level) in HEADLINE.items():
    if name not in arrays:
      continue
    if level is None:
      out[short] = arrays[name]
    elif levels is not None and level in tuple(levels):
      out[short] = arrays[name][:, :, tuple(levels).index(level)]
  return out


def headline_metrics(
    predictions: Mapping[str, "np.ndarray"],
    targets: Mapping[str, "np.ndarray"],
    lat: Sequence[float],
    levels: Sequence[int] | None = None,
) -> dict[str, float]:
  """Per-forecast RMSE and bias of the headline fields at each lead time.

  Meant for evaluation batches inside training: the per-forecast RMSE is a
  mean over forecasts, so averaging it over equal-sized batches (as
  `train.metrics.EvalMetrics` does) gives the value over all of them.

  Args:
    predictions, targets: {variable: [B, T, (level,) lat, lon]}, T lead times
      6 h apart.
    lat: [H] latitudes in degrees.
    levels: pressure levels of the level axis (needed for z500 and t850).

  Returns:
    {"rmse/z500/6h": ..., "bias/z500/6h": ..., ...} as floats.
  """
  preds = headline_fields(predictions, levels)
  truths = headline_fields(targets, levels)
  out = {}
  for short, pred in preds.items():
    pred = np.asarray(pred, np.float64)
    truth = np.asarray(truths[short], np.float64)
    rmse_t = rmse_per_forecast(pred, truth, lat, time_axis=0)  # [T]
    bias_t = bias(pred, truth, lat, time_axis=0)
    for t in range(pred.shape[1]):
      lead = f"{task_lib.TIME_STEP_HOURS * (t + 1)}h"
      out[f"rmse/{short}/{lead}"] = float(rmse_t[t])
      out[f"bias/{short}/{lead}"] = float(bias_t[t])
  return out
