"""`evaluate` and `forecast` end to end on a 6 deg random-init model.

Data: 6 days of smooth synthetic fields in a netCDF store (4 days train,
2 days eval) read in place (`data.source="zarr"`); checkpoints: the same
random parameters as a published-format `.npz` and as one of our Orbax runs.
"""

import csv
import json
import os

import jax
import numpy as np
import pytest
import xarray as xr

from graphcast_fdl import task as task_lib
from graphcast_fdl.cli.errors import UsageError
from graphcast_fdl import grid
from graphcast_fdl.evaluation import forecast
from graphcast_fdl.evaluation import metrics
from graphcast_fdl.evaluation import scorecard

RESOLUTION = 6.0
TRAIN = "2020-01-01T00/2020-01-04T18"
EVAL = "2020-01-05T00/2020-01-06T18"


def _write_data(path):
  rng = np.random.default_rng(0)
  lat, lon = grid.grid_coords(RESOLUTION)
  times = np.datetime64("2020-01-01") + np.timedelta64(6, "h") * np.arange(24)
  t = np.arange(len(times))[:, None, None]
  la, lo = np.deg2rad(lat)[None, :, None], np.deg2rad(lon)[None, None, :]

  def field(scale, offset, k):
    wave = np.cos(la) * np.sin(k * lo - 0.3 * t + k) + 0.3 * np.sin(2 * la + 0.1 * t)
    noise = 0.05 * rng.normal(size=(len(times), len(lat), len(lon)))
    return (offset + scale * (wave + noise)).astype(np.float32)

  data = {}
  for i, name in enumerate(task_lib.SURFACE_TARGETS + (task_lib.PRECIPITATION,)):
    data[name] = (("time", "lat", "lon"), np.abs(field(1.0 + i, 10.0 * i, i + 1)))
  levels = task_lib.PRESSURE_LEVELS_13
  for i, name in enumerate(task_lib.ATMOSPHERIC):
    stack = np.stack([field(1.0 + i, 5.0 * i + j, i + 1) for j in range(len(levels))], 1)
    data[name] = (("time", "level", "lat", "lon"), stack)
  data["geopotential_at_surface"] = (("lat", "lon"), field(1, 0, 3)[0])
  data["land_sea_mask"] = (("lat", "lon"), (field(1, 0, 2)[0] > 0).astype(np.float32))
  xr.Dataset(data, coords={"time": times, "lat": lat, "lon": lon, "level": list(levels)}).to_netcdf(
      path
  )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  from graphcast_fdl.checkpoints import npz_format
  from graphcast_fdl.model import predictor as predictor_lib
  from graphcast_fdl.model.config import ModelConfig
  from graphcast_fdl.train import checkpointing
  from graphcast_fdl.train import optimizer
  from graphcast_fdl.train import train_step
  from graphcast_fdl.train.config import CheckpointConfig, OptimizerConfig

  root = tmp_path_factory.mktemp("evaluate")
  data_path = str(root / "data.nc")
  _write_data(data_path)
  model = ModelConfig(
      resolution=RESOLUTION, mesh_size=2, latent_size=16, gnn_msg_steps=1, precision="float32"
  )
  task = task_lib.task_13()
  shapes = predictor_lib.param_shapes(model, task)
  leaves, treedef = jax.tree.flatten(shapes)
  rng = np.random.default_rng(1)
  params = jax.tree.unflatten(
      treedef, [(0.3 * rng.normal(size=s.shape)).astype(np.float32) for s in leaves]
  )
  npz = str(root / "random.npz")
  npz_format.save(npz, npz_format.Checkpoint(params=params, model=model, task=task))
  workdir = str(root / "run")
  tx = optimizer.make_optimizer(OptimizerConfig())
  checkpointer = checkpointing.Checkpointer(workdir, CheckpointConfig())
  checkpointer.save(train_step.create_state(params, tx, jax.random.PRNGKey(1)), {}, force=True)
  checkpointer.close()
  return {"root": root, "data": data_path, "npz": npz, "workdir": workdir}


def _config_args(files):
  return [
      "--config=config:demo",
      f"--config=fiddler:resolution(degrees={RESOLUTION}, mesh_size=2)",
      "--config=set:model.latent_size=16",
      "--config=set:model.gnn_msg_steps=1",
      "--config=set:data.source='zarr'",
      f"--config=set:data.path='{files['data']}'",
      f"--config=set:data.data_dir='{files['root'] / 'cache'}'",
      f"--config=set:data.train_split='{TRAIN}'",
      f"--config=set:data.eval_split='{EVAL}'",
  ]


def _evaluate(parse_flags, files, *args):
  from graphcast_fdl.cli import evaluate as evaluate_cli

  parse_flags(*_config_args(files), *args)
  evaluate_cli.main([])


def test_lead_time_parsing():
  assert forecast.lead_time_steps("10d") == 40
  assert forecast.lead_time_steps("36h") == 6
  for bad in ("7h", "0d", "ten days", "-6h"):
    with pytest.raises(ValueError, match="lead_time"):
      forecast.lead_time_steps(bad)


@pytest.fixture(scope="module")
def npz_evaluation(files):
  """Output folder of `evaluate` of the .npz: 3 initial times, 12 h."""
  from absl import flags
  from graphcast_fdl.cli import evaluate as evaluate_cli

  out = files["root"] / "eval_npz"
  flags.FLAGS.unparse_flags()
  flags.FLAGS(
      [
          "prog",
          *_config_args(files),
          f"--checkpoint={files['npz']}",
          "--lead_time=12h",
          "--num_init_times=3",
          "--batch_size=3",
          f"--output_dir={out}",
      ]
  )
  try:
    evaluate_cli.main([])
  finally:
    flags.FLAGS.unparse_flags()
  return out


def test_evaluate_npz_writes_scorecard_and_forecasts(files, npz_evaluation):
  out = npz_evaluation
  with open(out / "scorecard.csv") as f:
    rows = list(csv.DictReader(f))
  assert tuple(rows[0]) == scorecard.COLUMNS
  assert {r["model"] for r in rows} == {"random", "persistence", "climatology"}
  assert {r["num_init_times"] for r in rows} == {"3"}
  assert {r["lead_hours"] for r in rows} == {"6", "12"}
  # 11 variables: 5 surface + 6 x 13 levels, 2 leads, 3 models.
  assert len(rows) == 3 * 2 * (5 + 6 * 13)
  for name in ("rmse_z500", "rmse_t850", "rmse_t2m", "rmse_u10", "rmse_msl"):
    assert os.path.getsize(out / f"{name}.png") > 1000
  with open(out / "scorecard.json") as f:
    card = json.load(f)
  init_times = card["metadata"]["init_times"]
  assert len(init_times) == 3 and card["metadata"]["lead_hours"] == [6, 12]

  # Persistence at 6 h, recomputed from the store by hand.
  data = xr.open_dataset(files["data"])
  inits = np.array(init_times, "datetime64[ns]")
  t2m = data["2m_temperature"]
  truth = t2m.sel(time=inits + np.timedelta64(6, "h")).values
  expected = metrics.rmse(t2m.sel(time=inits).values, truth, data.lat.values)
  row = next(
      r
      for r in rows
      if r["model"] == "persistence" and r["field"] == "t2m" and r["lead_hours"] == "6"
  )
  assert float(row["rmse"]) == pytest.approx(expected, rel=1e-5)
  clim_rows = [r for r in rows if r["model"] == "climatology"]
  assert all(r["acc"] == "" for r in clim_rows)  # no anomaly: undefined
  model_z500 = [r for r in rows if r["model"] == "random" and r["field"] == "z500"]
  assert all(-1 <= float(r["acc"]) <= 1 for r in model_z500)

  # Forecast files: the data's names and grid; lead times and valid times.
  paths = sorted(os.listdir(out / "forecasts"))
  assert paths == [forecast.file_stem(t) + ".nc" for t in inits]
  fc = xr.open_dataset(out / "forecasts" / paths[0])
  assert set(fc.data_vars) == set(task_lib.task_13().target_variables)
  assert fc["geopotential"].dims == ("batch", "time", "level", "lat", "lon")
  np.testing.assert_array_equal(fc.lat.values, data.lat.values)
  np.testing.assert_array_equal(
      fc.datetime.values[0], inits[0] + np.array([6, 12], "timedelta64[h]")
  )
  assert np.isfinite(fc["temperature"].values).all()
  # The scorecard's model RMSE at 12 h is that of these files.
  z = [
      xr.open_dataset(out / "forecasts" / p)["geopotential"].sel(level=500).values[0, 1]
      for p in paths
  ]
  z_true = data["geopotential"].sel(level=500, time=inits + np.timedelta64(12, "h")).values
  row = next(r for r in model_z500 if r["lead_hours"] == "12")
  assert float(row["rmse"]) == pytest.approx(
      metrics.rmse(np.stack(z), z_true, data.lat.values), rel=1e-4
  )


def test_evaluate_our_checkpoint_to_zarr(parse_flags, files, npz_evaluation):
  out = files["root"] / "eval_orbax"
  _evaluate(
      parse_flags,
      files,
      f"--checkpoint={files['workdir']}",
      "--lead_time=12h",
      "--num_init_times=2",
      "--batch_size=3",
      "--format=zarr",
      "--chunk_steps=1",
      f"--output_dir={out}",
  )
  with open(out / "scorecard.json") as f:
    rows = json.load(f)["scores"]
  assert {r["model"] for r in rows} == {"run", "persistence", "climatology"}
  store = xr.open_zarr(out / "forecasts" / "forecasts.zarr")
  assert store.sizes["batch"] == 2 and store.sizes["time"] == 2
  # Same parameters as the .npz, rolled out one step per call: same forecast.
  first = forecast.file_stem(store.init_time.values[0]) + ".nc"
  npz_forecast = xr.open_dataset(npz_evaluation / "forecasts" / first)
  np.testing.assert_allclose(
      store["2m_temperature"].values[0],
      npz_forecast["2m_temperature"].values[0],
      rtol=1e-4,
      atol=1e-4,
  )


def test_forecast_past_the_end_of_the_data(parse_flags, files):
  from graphcast_fdl.cli import forecast as forecast_cli

  out = files["root"] / "forecast"
  parse_flags(
      *_config_args(files),
      f"--checkpoint={files['npz']}",
      "--init_time=2020-01-06T18",
      "--lead_time=12h",
      f"--output_dir={out}",
  )
  forecast_cli.main([])
  fc = xr.open_dataset(out / "forecast_20200106T18.nc")
  assert str(fc.datetime.values[0, -1]).startswith("2020-01-07T06")
  assert np.isfinite(fc["geopotential"].values).all()
  for field in metrics.HEADLINE:
    assert os.path.getsize(out / f"map_{field}.png") > 1000


@pytest.mark.parametrize(
    "args,message",
    [
        (["--lead_time=7h"], "multiple of 6h"),
        (["--lead_time=10d"], "lead_time=10d on split"),
        (["--checkpoint=/nonexistent.npz"], "file not found"),
    ],
)
def test_evaluate_errors_name_the_flag(parse_flags, files, args, message):
  base = [f"--checkpoint={files['npz']}", f"--output_dir={files['root'] / 'bad'}"]
  with pytest.raises(UsageError, match=message):
    _evaluate(parse_flags, files, *base, *args)
