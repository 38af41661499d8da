"""Figures carry units, centred maps for signed fields, truth and error."""

import os

from matplotlib import image as mpimg
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from graphcast_fdl.analysis import plot as estimate_plot
from graphcast_fdl.evaluation import forecast
from graphcast_fdl.evaluation import plot_style
from graphcast_fdl.evaluation import scorecard


def test_units_and_display_values():
  assert plot_style.label("RMSE", "geopotential") == "RMSE (m²/s²)"
  assert plot_style.label("RMSE", "temperature") == "RMSE (K)"
  assert plot_style.label("RMSE", "mean_sea_level_pressure") == "RMSE (hPa)"
  assert plot_style.to_display("mean_sea_level_pressure", 101_325.0) == (pytest.approx(1013.25))


def test_signed_fields_get_a_centred_diverging_map():
  style = plot_style.colour_range("10m_u_component_of_wind", [-2.0, 5.0])
  assert style == {"cmap": "RdBu_r", "vmin": -5.0, "vmax": 5.0}
  style = plot_style.colour_range("2m_temperature", [250.0, 300.0])
  assert style == {"cmap": "viridis", "vmin": 250.0, "vmax": 300.0}


@pytest.mark.parametrize(
    "seconds,unit",
    [
        (37.9, "seconds"),
        (600.0, "minutes"),
        (3 * 3600.0, "hours"),
        (1.12 * 86_400, "hours"),
        (14 * 86_400.0, "days"),
    ],
)
def test_estimate_figure_time_unit(seconds, unit):
  assert estimate_plot.time_unit(seconds)[1] == unit


def _forecast(values, lead_hours=(6, 12, 18)):
  lat, lon = np.linspace(-80, 80, 5), np.arange(0, 360, 60.0)
  shape = (1, len(lead_hours), len(lat), len(lon))
  return xr.Dataset(
      {
          "mean_sea_level_pressure": (("batch", "time", "lat", "lon"), np.full(shape, values)),
          "10m_u_component_of_wind": (
              ("batch", "time", "lat", "lon"),
              np.full(shape, values / 1e4 - 10),
          ),
      },
      coords={
          "time": pd.to_timedelta(list(lead_hours), unit="h"),
          "lat": lat,
          "lon": lon,
          "init_time": ("batch", [np.datetime64("2020-01-01T00")]),
      },
  )


def test_forecast_maps_add_truth_and_error_rows(tmp_path):
  ds, truth = _forecast(101_000.0), _forecast(100_500.0)
  alone = forecast.plot_maps(ds, str(tmp_path / "a"))
  both = forecast.plot_maps(ds, str(tmp_path / "b"), truth=truth)
  assert set(alone) == set(both) == {"map_msl", "map_u10"}
  one_row = mpimg.imread(alone["map_msl"]).shape[0]
  three_rows = mpimg.imread(both["map_msl"]).shape[0]
  assert three_rows == pytest.approx(3 * one_row, rel=0.05)


def test_rmse_plot_names_unit_and_initial_times(tmp_path, monkeypatch):
  titles = []
  from matplotlib import axes  # pylint: disable=g-import-not-at-top

  original = axes.Axes.set

  def record(self, **kwargs):
    titles.append(kwargs)
    return original(self, **kwargs)

  monkeypatch.setattr(axes.Axes, "set", record)
  rows = [
      {"field": "msl", "model": m, "lead_hours": h, "rmse": 250.0 * h, "num_init_times": 4}
      for m in ("run", "persistence")
      for h in (6, 12)
  ]
  paths = scorecard.plot_rmse(rows, str(tmp_path))
  assert os.path.exists(paths["png_msl"])
  (kwargs,) = titles
  assert kwargs["ylabel"] == "RMSE (hPa)"
  assert kwargs["title"].endswith("mean over 4 initial times")
