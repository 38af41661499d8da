"""Scores of several forecast models, by variable, level and lead time.

Forecasts arrive a batch of initial times at a time; only per-forecast
numbers are kept ([init, lead, (level)] mse, bias and ACC), so an evaluation
over many initial times never holds more than one batch of fields. `dataset()`
aggregates them as WeatherBench 2 does (see `metrics`), and `write()` puts
them in `scorecard.csv`, `scorecard.json` and `rmse_<field>.png`.
"""

from __future__ import annotations

import collections
import csv
import json
import math
import os
from typing import Mapping, Sequence

import numpy as np
import xarray as xr

from graphcast_fdl.evaluation import metrics
from graphcast_fdl.evaluation import plot_style

METRICS = ("rmse", "rmse_per_forecast", "bias", "acc")
COLUMNS = ("model", "variable", "field", "level", "lead_hours") + METRICS + ("num_init_times",)


def _short_name(variable: str, level: int | None) -> str:
  for short, (name, lev) in metrics.HEADLINE.items():
    if name == variable and lev == level:
      return short
  return ""


class Scorecard:
  """Collects per-forecast scores; aggregates and writes them.

  Args:
    lat: [H] latitudes in degrees.
    levels: pressure levels of the level axis of atmospheric variables.
    lead_hours: [T] lead time of each forecast step in hours.
  """

  def __init__(self, lat: Sequence[float], levels: Sequence[int], lead_hours: Sequence[int]):
    self.lat = np.asarray(lat, np.float64)
    self.levels = tuple(int(x) for x in levels)
    self.lead_hours = tuple(int(x) for x in lead_hours)
    # model -> variable -> metric -> list of [B, T, (level)] arrays.
    self._scores = collections.defaultdict(
        lambda: collections.defaultdict(lambda: collections.defaultdict(list))
    )
    self._models = []

  def add(
      self,
      model: str,
      forecast: Mapping[str, np.ndarray],
      truth: Mapping[str, np.ndarray],
      clim: Mapping[str, np.ndarray] | None = None,
  ) -> None:
    """Scores one batch of forecasts.

    Args:
      model: label, e.g. "graphcast", "persistence", "climatology".
      forecast, truth: {name: [B, T, (level,) lat, lon]}; variables missing
        from `forecast` are not scored for this model.
      clim: the climatology at each valid time, same layout; without it
        ACC is NaN.
    """
    if model not in self._models:
      self._models.append(model)
    for name, pred in forecast.items():
      pred = np.asarray(pred, np.float64)
      obs = np.asarray(truth[name], np.float64)
      if pred.shape != obs.shape or pred.shape[1] != len(self.lead_hours):
        raise ValueError(
            f"forecast of {name!r} has shape {pred.shape}, truth {obs.shape}, "
            f"{len(self.lead_hours)} lead times expected"
        )
      scores = self._scores[model][name]
      scores["mse"].append(metrics.mse(pred, obs, self.lat))
      scores["bias"].append(metrics.spatial_mean(pred - obs, self.lat))
      if clim is not None and name in clim:
        with np.errstate(invalid="ignore", divide="ignore"):
          scores["acc"].append(
              metrics.acc_per_forecast(pred, obs, np.asarray(clim[name], np.float64), self.lat)
          )
      else:
        scores["acc"].append(np.full(pred.shape[:-2], np.nan))

  @property
  def models(self) -> tuple[str, ...]:
    return tuple(self._models)

  def dataset(self) -> xr.Dataset:
    """Aggregated scores: each variable [model, metric, lead_time, (level)].

    ACC of a forecast with no anomaly (the climatology itself) is NaN.
    """
    variables = sorted({v for m in self._scores.values() for v in m})
    data_vars = {}
    for name in variables:
      table = None
      for i, model in enumerate(self._models):
        if name not in self._scores[model]:
          continue
        scores = {k: np.concatenate(v, axis=0) for k, v in self._scores[model][name].items()}
        mse = scores["mse"]
        values = {
            "rmse": np.sqrt(mse.mean(0)),
            "rmse_per_forecast": np.sqrt(mse).mean(0),
            "bias": scores["bias"].mean(0),
            "acc": scores["acc"].mean(0),
        }
        if table is None:
          table = np.full((len(self._models), len(METRICS)) + mse.shape[1:], np.nan)
        for j, metric in enumerate(METRICS):
          table[i, j] = values[metric]
      dims = ("model", "metric", "lead_time") + (("level",) if table.ndim == 4 else ())
      data_vars[name] = (dims, table)
    coords = {
        "model": list(self._models),
        "metric": list(METRICS),
        "lead_time": np.array(self.lead_hours, "timedelta64[h]"),
        "level": np.array(self.levels, np.int32),
    }
    counts = {
        m: int(sum(len(a) for a in next(iter(v.values()))["mse"])) for m, v in self._scores.items()
    }
    return xr.Dataset(data_vars, coords=coords, attrs={"num_init_times": json.dumps(counts)})

  def records(self) -> list[dict]:
    """One row per (model, variable, level, lead), the metrics as columns."""
    ds = self.dataset()
    counts = json.loads(ds.attrs["num_init_times"])
    rows = []
    for model in ds.model.values:
      for name, var in ds.data_vars.items():
        levels = self.levels if "level" in var.dims else (None,)
        for level in levels:
          sel = var.sel(model=model)
          if level is not None:
            sel = sel.sel(level=level)
          if np.all(np.isnan(sel.values)):
            continue  # this model has no forecast of this variable
          for t, hours in enumerate(self.lead_hours):
            row = {
                "model": str(model),
                "variable": name,
                "field": _short_name(name, level),
                "level": "" if level is None else level,
                "lead_hours": hours,
            }
            for metric in METRICS:
              value = float(sel.sel(metric=metric).values[t])
              row[metric] = None if math.isnan(value) else value
            row["num_init_times"] = counts[str(model)]
            rows.append(row)
    return rows

  def write(self, output_dir: str, metadata: dict | None = None) -> dict[str, str]:
    """Writes scorecard.csv, scorecard.json and rmse_<field>.png; returns paths."""
    os.makedirs(output_dir, exist_ok=True)
    rows = self.records()
    paths = {
        "csv": os.path.join(output_dir, "scorecard.csv"),
        "json": os.path.join(output_dir, "scorecard.json"),
    }
    with open(paths["csv"], "w", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=COLUMNS)
      writer.writeheader()
      for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    with open(paths["json"], "w") as f:
      json.dump(
          {"metadata": metadata or {}, "columns": list(COLUMNS), "scores": rows},
          f,
          indent=1,
          default=_jsonable,
      )
      f.write("\n")
    paths.update(plot_rmse(rows, output_dir))
    return paths


def _jsonable(value):
  """numpy scalars/arrays (e.g. attributes read back from netCDF) for JSON."""
  if isinstance(value, (np.generic, np.ndarray)):
    return value.tolist()
  return str(value)


def plot_rmse(rows: Sequence[dict], output_dir: str) -> dict[str, str]:
  """One PNG per headline field: RMSE against lead time (days), per model,
  in the field's unit, saying how many initial times each curve averages."""
  # Plotting only: matplotlib loads when a figure is drawn.
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  paths = {}
  for field, (name, level) in metrics.HEADLINE.items():
    series = collections.defaultdict(list)
    counts = {}
    for row in rows:
      if row["field"] == field and row["rmse"] is not None:
        rmse = float(plot_style.to_display(name, row["rmse"]))
        series[row["model"]].append((row["lead_hours"] / 24, rmse))
        counts[row["model"]] = row.get("num_init_times")
    if not series:
      continue
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for model, points in series.items():
      days, values = zip(*sorted(points))
      ax.plot(
          days,
          values,
          marker="o",
          markersize=3,
          linestyle="--" if model in ("persistence", "climatology") else "-",
          label=model,
      )
    title = name if level is None else f"{name} {level} hPa"
    known = sorted({c for c in counts.values() if c is not None})
    over = (
        f"mean over {known[0]} initial time{'s' if known[0] != 1 else ''}"
        if len(known) == 1
        else "initial times: " + ", ".join(f"{m} {c}" for m, c in counts.items())
    )
    ax.set(
        title=f"{field}: {title}\n{over}",
        xlabel="lead time (days)",
        ylabel=plot_style.label("RMSE", name),
    )
    ax.title.set_fontsize(10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths[f"png_{field}"] = os.path.join(output_dir, f"rmse_{field}.png")
    fig.savefig(paths[f"png_{field}"], dpi=100)
    plt.close(fig)
  return paths
