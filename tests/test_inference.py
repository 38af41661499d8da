"""predict_to_file and the `predict` command on a golden folder."""

import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from graphcast_fdl.evaluation import inference
from conftest import golden_dir
from conftest import REPO


def test_predict_to_file_matches_golden(tmp_path):
  path = golden_dir("c_4deg_m3_l32_f32")
  out = str(tmp_path / "pred.nc")
  inference.predict_to_file(
      os.path.join(path, "checkpoint.npz"),
      os.path.join(path, "stats"),
      os.path.join(path, "inputs.nc"),
      os.path.join(path, "forcings.nc"),
      os.path.join(path, "targets.nc"),
      out,
      precision="float32",
  )
  ours = xr.load_dataset(out)
  template = xr.load_dataset(os.path.join(path, "targets.nc"))
  reference = xr.load_dataset(os.path.join(path, "predictions.nc"))
  assert set(ours.data_vars) == set(template.data_vars)
  for name, var in ours.data_vars.items():
    assert var.dims == template[name].dims, name
    np.testing.assert_array_equal(var.time, template[name].time)
    ref = reference[name].transpose(*var.dims)
    np.testing.assert_allclose(var, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))


def test_predict_command_names_a_missing_file(tmp_path):
  path = golden_dir("c_4deg_m3_l32_f32")
  result = subprocess.run(
      [
          sys.executable,
          "-m",
          "graphcast_fdl.main",
          "predict",
          f"--checkpoint={tmp_path}/missing.npz",
          f"--stats_dir={path}/stats",
          f"--inputs={path}/inputs.nc",
          f"--forcings={path}/forcings.nc",
          f"--targets_template={path}/targets.nc",
          f"--output={tmp_path}/p.nc",
      ],
      capture_output=True,
      text=True,
      cwd=REPO,
      timeout=120,
  )
  assert result.returncode == 2
  assert "missing.npz" in result.stderr.strip().splitlines()[-1]


def _without_poles(ds: xr.Dataset) -> xr.Dataset:
  """The 4 deg fields linearly interpolated to cell centres -88, ..., 88."""
  lat = np.arange(-88.0, 89.0, 4.0)
  return ds.interp(lat=lat)


def test_grid_comes_from_the_inputs():
  lon = np.arange(0.0, 360.0, 2.0)
  poles = xr.Dataset(coords={"lat": np.linspace(-90, 90, 91), "lon": lon})
  centres = xr.Dataset(coords={"lat": np.arange(-89.0, 90.0, 2.0), "lon": lon})
  assert inference.grid_of(poles) == (2.0, True)
  assert inference.grid_of(centres) == (2.0, False)
  bad = xr.Dataset(coords={"lat": np.linspace(90, -90, 91), "lon": lon})
  with pytest.raises(ValueError, match="not a regular global grid"):
    inference.grid_of(bad)


def test_predict_runs_on_a_grid_without_poles(tmp_path):
  """As the published code does: the inputs' grid, not the checkpoint's."""
  path = golden_dir("c_4deg_m3_l32_f32")
  load = lambda name: _without_poles(xr.load_dataset(os.path.join(path, name)))
  predictions = inference.predict_to_file(
      os.path.join(path, "checkpoint.npz"),
      os.path.join(path, "stats"),
      load("inputs.nc"),
      load("forcings.nc"),
      load("targets.nc"),
      str(tmp_path / "pred.nc"),
      precision="float32",
  )
  assert predictions.sizes["lat"] == 45 and predictions.sizes["lon"] == 90
  np.testing.assert_array_equal(predictions.lat, np.arange(-88.0, 89.0, 4.0))
  for name, var in predictions.data_vars.items():
    assert np.isfinite(var.values).all(), name
