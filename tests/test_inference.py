"""predict_to_file and the `predict` command on a golden folder."""

import os
import subprocess
import sys

import numpy as np
import xarray as xr

from graphcast_fdl.evaluation import inference
from conftest import golden_dir
from conftest import REPO


def test_predict_to_file_matches_golden(tmp_path):
  path = golden_dir("c_4deg_m3_l32_f32")
  out = str(tmp_path / "pred.nc")
  inference.predict_to_file(
      os.path.join(path, "checkpoint.npz"), os.path.join(path, "stats"),
      os.path.join(path, "inputs.nc"), os.path.join(path, "forcings.nc"),
      os.path.join(path, "targets.nc"), out, precision="float32")
  ours = xr.load_dataset(out)
  template = xr.load_dataset(os.path.join(path, "targets.nc"))
  reference = xr.load_dataset(os.path.join(path, "predictions.nc"))
  assert set(ours.data_vars) == set(template.data_vars)
  for name, var in ours.data_vars.items():
    assert var.dims == template[name].dims, name
    np.testing.assert_array_equal(var.time, template[name].time)
    ref = reference[name].transpose(*var.dims)
    np.testing.assert_allclose(var, ref, rtol=1e-5,
                               atol=1e-5 * float(np.abs(ref).max()))


def test_predict_command_names_a_missing_file(tmp_path):
  path = golden_dir("c_4deg_m3_l32_f32")
  result = subprocess.run(
      [sys.executable, "-m", "graphcast_fdl.main", "predict",
       f"--checkpoint={tmp_path}/missing.npz", f"--stats_dir={path}/stats",
       f"--inputs={path}/inputs.nc", f"--forcings={path}/forcings.nc",
       f"--targets_template={path}/targets.nc", f"--output={tmp_path}/p.nc"],
      capture_output=True, text=True, cwd=REPO, timeout=120)
  assert result.returncode == 2
  assert "missing.npz" in result.stderr.strip().splitlines()[-1]
