"""Climatology, baselines and scorecard files on tiny hand-made data."""

import csv
import json
import os

import numpy as np
import pytest

from graphcast_fdl.evaluation import baselines
from graphcast_fdl.evaluation import climatology
from graphcast_fdl.evaluation import scorecard

LAT = np.array([-90.0, 0.0, 90.0])
LON = np.array([0.0, 180.0])


class ListFrames:
  """The part of `data.frames.Frames` the climatology reads."""

  def __init__(self, datetimes, fields, levels=(500, 850)):
    self.datetimes = np.asarray(datetimes, "datetime64[s]")
    self.lat, self.lon = LAT, LON
    self.levels = np.asarray(levels)
    self.atmospheric = ("geopotential",)
    self.surface = ("2m_temperature",)
    self.variables = self.atmospheric + self.surface
    self._fields = fields

  def __len__(self):
    return len(self.datetimes)

  def level_indices(self, levels):
    return np.array([list(self.levels).index(x) for x in levels])

  def frame(self, i):
    return self._fields[i]


def _frames(days=4, start="2020-01-01"):
  times = np.datetime64(start) + np.timedelta64(6, "h") * np.arange(4 * days)
  fields = []
  for i, t in enumerate(times):
    doy = (t - np.datetime64(start[:4] + "-01-01")) // np.timedelta64(1, "D") + 1
    hour = i % 4
    fields.append(
        {
            "2m_temperature": np.full((3, 2), 100.0 * doy + hour),
            "geopotential": np.stack([np.full((3, 2), 1000.0 * doy), np.full((3, 2), -1.0)]),
        }
    )
  return ListFrames(times, fields)


def test_daily_bins_without_smoothing_return_each_frame():
  frames = _frames()
  clim = climatology.compute(
      frames, ["2m_temperature", "geopotential"], [850, 500], days_per_bin=1, window_days=1
  )
  assert clim["geopotential"].dims == ("dayofyear", "hour", "level", "lat", "lon")
  got = climatology.at(clim, "2m_temperature", frames.datetimes[[1, 6]])
  np.testing.assert_array_equal(got[:, 0, 0], [101.0, 202.0])
  z = climatology.at(clim, "geopotential", frames.datetimes[[4]])
  np.testing.assert_array_equal(z[0, :, 0, 0], [-1.0, 2000.0])  # levels 850, 500


def test_smoothing_window_and_fallbacks():
  frames = _frames(days=4)  # days 1..4 of 2020
  # WB2's weights over 5 days: 0, 0.5, 1, 0.5, 0.
  clim = climatology.compute(frames, ["2m_temperature"], [], days_per_bin=1, window_days=5)
  at = lambda s: climatology.at(clim, "2m_temperature", np.array([s], "datetime64[s]"))[0, 0, 0]
  assert at("2021-01-02T06") == pytest.approx(201.0)  # days 1, 2, 3 at .5, 1, .5
  # Day 1 (1) and day 2 (.5); day 366 has no data: (102 + .5 x 202) / 1.5.
  assert at("2021-01-01T12") == pytest.approx(203.0 / 1.5)
  assert at("2021-01-05T18") == pytest.approx(403.0)  # day 4 only
  # Far from the data: that hour's mean over the split (days 1..4, hour 18).
  assert at("2021-07-01T18") == pytest.approx(253.0)


def test_window_weights_match_weatherbench2():
  """WB2's 61-day weights: linspace(0, 1, 31) then back down, per day."""
  kernel = climatology._smoothing_kernel(366, 1, 61)  # pylint: disable=protected-access
  half = np.linspace(0, 1, 31)
  wb2 = np.concatenate([half, half[::-1][1:]])
  row = np.roll(kernel[100], -70)[:61]  # days 70..130 around day 100
  np.testing.assert_allclose(row, wb2, atol=1e-12)
  assert kernel[100].sum() == pytest.approx(wb2.sum())


def test_bins_of_several_days():
  frames = _frames(days=4)
  clim = climatology.compute(frames, ["2m_temperature"], [], days_per_bin=2, window_days=1)
  assert clim.sizes["dayofyear"] == 183
  at = lambda s: climatology.at(clim, "2m_temperature", np.array([s], "datetime64[s]"))[0, 0, 0]
  assert at("2020-01-02T00") == pytest.approx(150.0)  # bin of days 1-2
  assert at("2020-01-03T06") == pytest.approx(351.0)  # bin of days 3-4


def test_cache_is_read_back(tmp_path, monkeypatch):
  frames = _frames()
  kwargs = dict(days_per_bin=1, window_days=1)
  first = climatology.load_or_compute(
      frames, ["2m_temperature"], [], str(tmp_path), {"split": "train"}, **kwargs
  )
  assert len(os.listdir(tmp_path)) == 1

  def recompute(*args, **kwargs):
    raise RuntimeError("recomputed")

  monkeypatch.setattr(climatology, "compute", recompute)
  again = climatology.load_or_compute(
      frames, ["2m_temperature"], [], str(tmp_path), {"split": "train"}, **kwargs
  )
  np.testing.assert_array_equal(first["2m_temperature"].values, again["2m_temperature"].values)
  with pytest.raises(RuntimeError, match="recomputed"):  # another key: computed again
    climatology.load_or_compute(
        frames, ["2m_temperature"], [], str(tmp_path), {"split": "other"}, **kwargs
    )


def test_persistence_repeats_the_last_input_frame():
  inputs = {"2m_temperature": np.arange(2 * 2 * 3 * 2, dtype=float).reshape(2, 2, 3, 2)}
  out = baselines.persistence(inputs, ["2m_temperature", "total_precipitation_6hr"], 3)
  assert set(out) == {"2m_temperature"}
  assert out["2m_temperature"].shape == (2, 3, 3, 2)
  np.testing.assert_array_equal(out["2m_temperature"][1, 2], inputs["2m_temperature"][1, 1])


def _card():
  card = scorecard.Scorecard(LAT, levels=(500, 850), lead_hours=(6, 12))
  truth = {"2m_temperature": np.zeros((2, 2, 3, 2)), "geopotential": np.zeros((2, 2, 2, 3, 2))}
  forecast = {
      "2m_temperature": truth["2m_temperature"] + np.array([3.0, -4.0])[:, None, None, None],
      "geopotential": truth["geopotential"] + 1.0,
  }
  clim = {k: v - 1.0 for k, v in truth.items()}
  card.add("model", forecast, truth, clim)
  card.add("persistence", {"2m_temperature": truth["2m_temperature"]}, truth)
  return card


def test_scorecard_aggregates_as_wb2():
  ds = _card().dataset()
  t2m = ds["2m_temperature"].sel(model="model")
  np.testing.assert_allclose(t2m.sel(metric="rmse"), [np.sqrt(12.5)] * 2)
  np.testing.assert_allclose(t2m.sel(metric="rmse_per_forecast"), [3.5] * 2)
  np.testing.assert_allclose(t2m.sel(metric="bias"), [-0.5] * 2)
  z = ds["geopotential"].sel(model="model")
  assert z.dims == ("metric", "lead_time", "level")
  np.testing.assert_allclose(z.sel(metric="rmse"), 1.0)
  assert np.all(np.isnan(ds["geopotential"].sel(model="persistence")))
  assert np.all(np.isnan(ds["2m_temperature"].sel(model="persistence", metric="acc")))


def test_scorecard_files(tmp_path):
  paths = _card().write(str(tmp_path), metadata={"checkpoint": "x"})
  with open(paths["csv"]) as f:
    rows = list(csv.DictReader(f))
  assert tuple(rows[0]) == scorecard.COLUMNS
  # model: t2m x 2 leads + z at 2 levels x 2 leads; persistence: t2m x 2 leads.
  assert len(rows) == 2 + 4 + 2
  z500 = [r for r in rows if r["field"] == "z500"]
  assert [r["lead_hours"] for r in z500] == ["6", "12"]
  assert float(z500[0]["rmse"]) == pytest.approx(1.0)
  assert z500[0]["num_init_times"] == "2"
  with open(paths["json"]) as f:
    data = json.load(f)
  assert data["metadata"] == {"checkpoint": "x"}
  assert len(data["scores"]) == 8
  persistence = [r for r in data["scores"] if r["model"] == "persistence"]
  assert persistence[0]["rmse"] == 0.0 and persistence[0]["acc"] is None
  assert sorted(k for k in paths if k.startswith("png")) == ["png_t2m", "png_z500"]
  assert os.path.getsize(paths["png_z500"]) > 1000
