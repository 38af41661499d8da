"""Forcings and windowing against the published GraphCast's own files."""

import numpy as np
import pytest
import xarray as xr

from conftest import golden_dir
from graphcast_fdl import task as task_lib
from graphcast_fdl.data import forcings
from graphcast_fdl.data import solar_radiation
from graphcast_fdl.data import windowing

CASES = [
    ("a_4deg_m3_l32", task_lib.task_13, 1),
    ("c_4deg_m3_l32_f32", task_lib.task_13, 1),
    ("d_4deg_m3_l32_ar3", task_lib.task_13, 3),
    ("e_4deg_precipout_b2", task_lib.task_13_precip_out, 1),
]


def _load(folder, name):
  return xr.load_dataset(f"{golden_dir(folder)}/{name}.nc")


@pytest.mark.parametrize("folder", ["a_4deg_m3_l32", "e_4deg_precipout_b2"])
def test_toa_solar_radiation_matches_golden(folder):
  batch = _load(folder, "example_batch")
  for b in range(batch.sizes["batch"]):
    ref = batch.toa_incident_solar_radiation.values[b]
    got = solar_radiation.toa_incident_solar_radiation(
        batch.datetime.values[b], batch.lat.values, batch.lon.values
    )
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * ref.max())


def test_toa_is_an_hourly_integral_of_a_sensible_flux():
  # Daily-mean TOA flux at the equator near equinox is ~1361/pi W/m^2.
  times = np.arange(
      np.datetime64("2020-03-20T01"), np.datetime64("2020-03-21T01"), np.timedelta64(1, "h")
  )
  toa = solar_radiation.toa_incident_solar_radiation(times, [0.0], [0.0], dtype=np.float64)
  daily_mean_flux = toa.sum() / 86400
  assert daily_mean_flux == pytest.approx(1361 / np.pi * 1.0, rel=0.02)
  coarse = solar_radiation.toa_incident_solar_radiation(
      times, [0.0], [0.0], num_bins=24, dtype=np.float64
  )
  np.testing.assert_allclose(coarse, toa, atol=1e-3 * toa.max())


def test_progress_features_shapes_and_range():
  times = np.array(["2022-01-01T00", "2022-07-02T06"], "datetime64[ns]")
  lon = np.arange(0, 360, 90.0)
  features = forcings.progress_features(times, lon)
  assert features["year_progress_sin"].shape == (2,)
  assert features["day_progress_cos"].shape == (2, 4)
  # At 06 UTC the local time at 90E is noon: day progress 0.5, cos = -1.
  assert features["day_progress_cos"][1, 1] == pytest.approx(-1.0, abs=1e-6)


@pytest.mark.parametrize("folder,task_fn,rollout", CASES)
def test_windowing_reproduces_golden_extraction(folder, task_fn, rollout):
  batch = _load(folder, "example_batch")
  outputs = windowing.extract_inputs_targets_forcings(batch, task_fn(), rollout)
  for name, got in zip(("inputs", "targets", "forcings"), outputs):
    ref = _load(folder, name)
    xr.testing.assert_identical(got, ref)
    assert list(got.data_vars) == list(ref.data_vars)
    for var in ref.data_vars:
      assert got[var].dtype == ref[var].dtype, (name, var)


def test_windowing_computes_missing_toa():
  folder = "d_4deg_m3_l32_ar3"
  batch = _load(folder, "example_batch").drop_vars("toa_incident_solar_radiation")
  _, _, got = windowing.extract_inputs_targets_forcings(batch, task_lib.task_13(), 3)
  ref = _load(folder, "forcings").toa_incident_solar_radiation
  np.testing.assert_allclose(
      got.toa_incident_solar_radiation, ref, rtol=1e-4, atol=1e-4 * float(ref.max())
  )


def test_windowing_names_missing_level_and_variable():
  batch = _load("a_4deg_m3_l32", "example_batch")
  with pytest.raises(ValueError, match=r"pressure levels \[1, 2, 3"):
    windowing.extract_inputs_targets_forcings(batch, task_lib.task_37(), 1)
  with pytest.raises(ValueError, match="specific_humidity"):
    windowing.extract_inputs_targets_forcings(
        batch.drop_vars("specific_humidity"), task_lib.task_13(), 1
    )
